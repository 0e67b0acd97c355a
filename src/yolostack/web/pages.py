"""How the web app answers: templates rendered with the signed-in caller, and ``PageRoute``, which turns every
failure into a page (a missing session redirects to the sign-in page; another account's resource is a 404 page)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from yolostack.config import Settings
from yolostack.core.errors import AppError
from yolostack.web.auth import (
    SignInRequired,
    login_url,
)

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
STATIC_DIR = Path(__file__).parent / "static"
# First segments of the API and of signed links: an unknown path there is the API's JSON 404, never a page.
NOT_PAGES = ("/api/", "/v1/", "/d/", "/files/", "/static/")
TITLES = {401: "Sign in required", 403: "Not allowed", 404: "Not found", 422: "Check the form", 429: "Slow down"}


def filesize(value: int) -> str:
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


TEMPLATES.env.filters["filesize"] = filesize


class PageRoute(APIRoute):
    """A route that answers in HTML when it fails: a missing session redirects to ``/login?next=…``; any
    other error is an error page with its status (the API's JSON shape is for API clients)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # A path under the API that no API route took is the API's JSON 404, never a page (nor a 405 because a
        # page's /{owner}/{project}/{model} has the path but not the method).
        if scope.get("type") == "http" and str(scope.get("path", "")).startswith(NOT_PAGES):
            return Match.NONE, {}
        return super().matches(scope)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handle(request)
            except SignInRequired:
                return RedirectResponse(login_url(request), status_code=303)
            except AppError as error:
                return error_page(request, error.status_code, error.message)
            except (RequestValidationError, ValidationError) as error:
                return error_page(request, 422, first_problem(error))
            except StarletteHTTPException as error:
                return error_page(request, error.status_code, str(error.detail))

        return page_handler


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("user", getattr(request.state, "page_user", None))
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    title = TITLES.get(status, "Something went wrong")
    return render(request, "error.html", status, status=status, title=title, message=message)


def first_problem(error: RequestValidationError | ValidationError) -> str:
    problems = error.errors()
    if not problems:
        return "Check the form"
    first = problems[0]
    field = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path"))
    return f"{field}: {first.get('msg', 'invalid')}" if field else str(first.get("msg", "invalid"))


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings
