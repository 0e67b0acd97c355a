"""Request bodies bounded while they stream, and strict JSON, for every route at once (an ASGI wrapper).

Every body is counted as the app reads it: past its cap the read fails and the client gets 413
``PAYLOAD_TOO_LARGE``, whether the length was declared (refused at the first read, before any byte is
handed on) or the body is chunked (refused at the chunk that passes the cap). The cap depends on what
the body is: multipart forms (predict's image or video) get ``form_bytes``, everything else
``json_bytes``, and a route that reads a large raw body itself (the signed-URL ``PUT``) or a larger form
(a model's multipart upload) says so with ``limit_body`` before it reads. Every body that is not a form
or a declared raw upload is held (it is small) and checked as strict JSON before the app sees its end,
so no route, typed or hand-parsed, reads a NaN, an overflowing number, a lone surrogate or a document
nested deeper than ``json_max_depth`` (422 ``VALIDATION_ERROR``); and the text of every form (a multipart
form's fields, names and file names, an url-encoded form's pairs) must be UTF-8, which the form parser would
otherwise read as Latin-1 or U+FFFD and the route store altered.

Unauthenticated requests never get here with a body read: the request middleware refuses them first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yolostack.core.errors import AppError, BadRequest, PayloadTooLarge, error_response
from yolostack.core.validation import (
    MultipartTextCheck,
    check_json_body,
    check_urlencoded_text,
    multipart_boundary,
)

SCOPE_KEY = "yolostack.body"
FORM_TYPES = ("multipart/form-data",)
URLENCODED = "application/x-www-form-urlencoded"
JSON_TYPES = ("application/json",)


@dataclass
class BodyBudget:
    """One request's body: its cap, what has arrived, and the refusal once there is one."""

    max_bytes: int
    strict_json: bool
    declared_json: bool
    max_depth: int
    declared: int | None
    received: int = 0
    started: bool = False
    # Form text must be UTF-8 (Starlette would decode other bytes as Latin-1 or U+FFFD, silently).
    multipart_text: MultipartTextCheck | None = None
    urlencoded: bool = False
    held: list[bytes] = field(default_factory=list)
    refusal: AppError | None = None

    def set_limit(self, max_bytes: int, *, raw: bool) -> None:
        if self.received:
            raise RuntimeError("limit_body must be called before the body is read")
        self.max_bytes = max_bytes
        if raw:
            self.strict_json, self.multipart_text, self.urlencoded = False, None, False

    def refuse(self, error: AppError) -> AppError:
        self.refusal = error
        self.held.clear()
        return error

    def too_large(self) -> AppError:
        return self.refuse(
            PayloadTooLarge(
                f"request body exceeds the limit of {self.max_bytes} bytes",
                details=[{"field": "", "message": f"at most {self.max_bytes} bytes"}],
            )
        )

    def before_read(self) -> None:
        """Raise the refusal there is, or the one a declared length earns, before the server reads a byte
        (an ``Expect: 100-continue`` client is not even told to send its body)."""
        if self.refusal is not None:
            raise self.refusal
        if not self.started:
            self.started = True
            if self.declared is not None and self.declared > self.max_bytes:
                raise self.too_large()

    def take(self, message: Message) -> None:
        """Count (and, for JSON, hold) one ``http.request`` message; raise the refusal past a rule."""
        chunk: bytes = message.get("body", b"")
        self.received += len(chunk)
        if self.received > self.max_bytes:
            raise self.too_large()
        try:
            if self.multipart_text is not None:
                self.multipart_text.feed(chunk)
            if not self.strict_json:
                return
            self.held.append(chunk)
            if not message.get("more_body", False):
                data, self.held = b"".join(self.held), []
                check_json_body(data, max_depth=self.max_depth, declared_json=self.declared_json)
                if self.urlencoded:
                    check_urlencoded_text(data)
        except BadRequest as error:
            raise self.refuse(error) from None


def limit_body(connection: HTTPConnection, max_bytes: int, *, raw: bool = False) -> None:
    """For a route that reads its body itself: allow ``max_bytes`` (more or less than the default for its
    content type); ``raw`` bodies are bytes, never JSON, so they are streamed on without being held."""
    budget = connection.scope.get(SCOPE_KEY)
    if isinstance(budget, BodyBudget):
        budget.set_limit(max_bytes, raw=raw)


class BodyLimits:
    """The ASGI wrapper: install it inside the middleware that authenticates (so anonymous bodies are
    never read) and outside the routes."""

    def __init__(self, app: ASGIApp, *, json_bytes: int, form_bytes: int, json_max_depth: int) -> None:
        self.app = app
        self.json_bytes = json_bytes
        self.form_bytes = form_bytes
        self.json_max_depth = json_max_depth

    def budget(self, scope: Scope) -> BodyBudget:
        headers = Headers(scope=scope)
        full_type = headers.get("content-type", "")
        content_type = full_type.split(";", 1)[0].strip().lower()
        is_form = content_type in FORM_TYPES
        boundary = multipart_boundary(full_type) if is_form else None
        return BodyBudget(
            max_bytes=self.form_bytes if is_form else self.json_bytes,
            strict_json=not is_form,
            declared_json=content_type in JSON_TYPES or content_type.endswith("+json"),
            max_depth=self.json_max_depth,
            declared=_declared_length(headers),
            multipart_text=MultipartTextCheck(boundary) if boundary else None,
            urlencoded=content_type == URLENCODED,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        budget = self.budget(scope)
        scope[SCOPE_KEY] = budget
        response_started = False

        async def counted_receive() -> Message:
            budget.before_read()
            message = await receive()
            if message["type"] == "http.request":
                budget.take(message)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if budget.refusal is not None and not response_started:
                # The app rendered our refusal its own way (FastAPI turns a failed body read into a 400):
                # the client gets the refusal itself, below.
                return
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if budget.refusal is None or response_started:
                raise
        if budget.refusal is not None and not response_started:
            await error_response(budget.refusal)(scope, receive, send)


def _declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None
