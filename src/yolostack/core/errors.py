"""Typed errors and the one handler that renders every failure in the spec's error shape (spec §3)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


class AppError(Exception):
    """A failure the caller can act on; carries its HTTP status and the spec's error code."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL_ERROR"
    default_message: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = details
        self.headers = dict(headers or {})
        super().__init__(self.message)


class BadRequest(AppError):
    """A request the server understood but whose values break a rule: 422 like every validation error."""

    status_code = 422
    code = "VALIDATION_ERROR"
    default_message = "Invalid request"


class Unauthorized(AppError):
    status_code = 401
    code = "UNAUTHORIZED"
    default_message = "Invalid or missing API key"

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        super().__init__(message, details=details, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status_code = 403
    code = "FORBIDDEN"
    default_message = "Insufficient permissions"


class NotFound(AppError):
    status_code = 404
    code = "NOT_FOUND"
    default_message = "Resource not found"


class Conflict(AppError):
    status_code = 409
    code = "CONFLICT"
    default_message = "Resource already exists"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"
    default_message = "Payload too large"


class RateLimited(AppError):
    status_code = 429
    code = "RATE_LIMITED"
    default_message = "Too many requests"


class ServiceUnavailable(AppError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"
    default_message = "A service the server depends on is unavailable"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message, "details": details}}


def error_response(error: AppError) -> JSONResponse:
    return JSONResponse(
        error_body(error.code, error.message, error.details),
        status_code=error.status_code,
        headers=error.headers,
    )


_STATUS_CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
}


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        # Drop "body"/"query" prefixes so the field reads as the client sent it.
        location = [str(part) for part in err.get("loc", ()) if part not in ("body", "query", "path")]
        details.append({"field": ".".join(location), "message": str(err.get("msg", "invalid"))})
    return details


async def _handle_app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(exc)


async def _handle_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _validation_details(exc)
    first = details[0] if details else {"field": "", "message": "invalid"}
    message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return JSONResponse(error_body("VALIDATION_ERROR", message, details), status_code=422)


async def _handle_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    # Starlette's own 400 is a body it could not parse (malformed multipart): a validation error, so 422.
    status = 422 if exc.status_code == 400 else exc.status_code
    code = _STATUS_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "ERROR")
    return JSONResponse(
        error_body(code, str(exc.detail)),
        status_code=status,
        headers=dict(exc.headers or {}),
    )


# PostgreSQL refuses text it cannot store (a NUL character: SQLSTATE 22021, 22P05) wherever the value came
# from (a path, a query, a form field; JSON bodies are refused earlier): the caller's value, so a 422.
_UNSTORABLE_TEXT = frozenset({"22021", "22P05"})


async def _handle_database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    if getattr(exc.orig, "sqlstate", None) in _UNSTORABLE_TEXT:
        message = "A value holds a character that cannot be stored (NUL, \\u0000)"
        return JSONResponse(error_body("VALIDATION_ERROR", message, []), status_code=422)
    return await handle_unexpected_error(request, exc)


async def handle_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: log it with its traceback, answer ``INTERNAL_ERROR`` with neither traceback nor path."""
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("INTERNAL_ERROR", "Internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _handle_app_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_error)
    app.add_exception_handler(DBAPIError, _handle_database_error)
    app.add_exception_handler(Exception, handle_unexpected_error)
