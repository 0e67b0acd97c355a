"""The two response dialects (spec §3), built here so no endpoint hand-builds an envelope, and typed here
so ``/openapi.json`` describes what each route really sends.

- ``seed``: the seed documents' ``{success, data, meta?}`` envelope.
- ``client``: the real clients' bare top-level fields (plus ``success``).
- ``both``: routes both use carry the envelope and the top-level fields at once.

Typing a route (the how-to; docs/development.md "Typed routes" says the same at more length):

1. Build the body as before with ``seed()``, ``client()`` or ``both()`` and declare its type on the route::

       @router.get("", response_model=SeedPage[DatasetSchema])            # seed list: data + meta
       @router.get("/{id}", response_model=SeedResponse[DatasetSchema])   # seed one: data
       @router.get("/{owner}", response_model=DatasetList)                # client: a ClientResponse subclass
       @router.post("", response_model=DatasetCreated, status_code=201)   # both: SeedResponse[X] subclass
       @router.get("/{ref}", response_model=SeedResponse[X] | XList)      # one of two shapes: a Union

   where ``class DatasetList(ClientResponse): datasets: list[DatasetSchema]; total: int`` and
   ``class DatasetCreated(SeedResponse[DatasetSchema]): id: str; slug: str``. Field names are snake_case,
   wire names camelCase (the ``Schema`` alias generator), exactly the keys the dict carries.
2. FastAPI validates the returned dict against that model and sends only what it declares. The envelope
   classes here forbid unknown top-level keys, so a field the route sends but the model forgets fails the
   route's tests loudly (a 500) instead of vanishing; nested objects must be ``Schema`` instances or be
   declared as schemas too (a hand-built nested dict loses its undeclared keys silently).
3. A body that must not be filtered or re-validated (a file, a stream, a hot path such as predict) keeps
   ``response_model=None`` and documents itself with ``responses={200: {"model": X}}`` (or
   ``{"content": {...}}`` for non-JSON).
4. Errors: 401/403/404/429 (routes that need a key), 422 (routes with parameters or a body), 404 (routes
   with a path parameter) and 413 (routes with a body) are documented on every operation by ``core/openapi.py``.
   Declare the others per route: ``responses=errors(409)`` (they all use ``ErrorResponse``).
5. Every route has a tag (its router's ``tags=[...]``); ``tests/contract`` checks the whole document.
"""

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from yolostack.core.pagination import PageMeta
from yolostack.core.schemas import Schema

Body = dict[str, Any]
T = TypeVar("T")


def dump(value: Any) -> Any:
    """Render schemas (camelCase wire names) and containers of them as plain JSON data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list | tuple):
        return [dump(item) for item in value]
    if isinstance(value, dict):
        return {key: dump(item) for key, item in value.items()}
    return value


def seed(data: Any, *, meta: PageMeta | None = None) -> Body:
    body: Body = {"success": True, "data": dump(data)}
    if meta is not None:
        body["meta"] = meta.as_dict()
    return body


def client(**fields: Any) -> Body:
    return {"success": True, **{key: dump(value) for key, value in fields.items()}}


def both(data: Any, *, meta: PageMeta | None = None, **fields: Any) -> Body:
    return {**seed(data, meta=meta), **client(**fields)}


class Envelope(Schema):
    """Base of every success body: unknown top-level keys are an error, never silently dropped."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True, extra="forbid")

    success: Literal[True] = True

    @model_validator(mode="before")
    @classmethod
    def _ignore_computed(cls, data: Any) -> Any:
        # A computed field (``keyId``) is in the body the route built and is computed again on the way out.
        computed = cls.model_computed_fields
        if not computed or not isinstance(data, dict):
            return data
        names = set(computed) | {field.alias for field in computed.values() if field.alias}
        return {key: value for key, value in data.items() if key not in names}


class PageMetaSchema(Schema):
    page: int = Field(description="Page number, from 1")
    limit: int = Field(description="Items per page")
    total: int = Field(description="Items on every page together")


class SeedResponse(Envelope, Generic[T]):
    """The seed envelope: ``{success, data}``."""

    data: T


class SeedPage(Envelope, Generic[T]):
    """A seed list: ``{success, data: [...], meta: {page, limit, total}}``."""

    data: list[T]
    meta: PageMetaSchema


class ClientResponse(Envelope):
    """The clients' dialect: subclasses declare the bare top-level fields beside ``success``."""


class ErrorDetail(BaseModel):
    field: str = Field(description="The field at fault, as the client sent it (dotted for nested ones)")
    message: str


class ErrorInfo(BaseModel):
    code: str = Field(description="VALIDATION_ERROR, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, CONFLICT, …")
    message: str
    details: Any = Field(
        default=None, description="For VALIDATION_ERROR a list of {field, message}; otherwise route-specific"
    )


class ErrorResponse(BaseModel):
    """The one error shape (spec §3) every failure answers with."""

    success: Literal[False] = False
    error: ErrorInfo


ERROR_DESCRIPTIONS = {
    400: "The request cannot be served as asked (a domain rule; the error code says which)",
    401: "Missing, invalid, revoked or expired API key (UNAUTHORIZED)",
    403: "The API key lacks the scope this route needs, or a signed link is invalid or expired (FORBIDDEN)",
    404: "No such resource (named in the path or the body), or it is another account's (NOT_FOUND)",
    409: "The resource already exists or is in a state that forbids this (CONFLICT)",
    413: "The body is larger than the server accepts (PAYLOAD_TOO_LARGE)",
    416: "The requested byte range lies outside the file (RANGE_NOT_SATISFIABLE)",
    422: "A body, query, form or path value is invalid (VALIDATION_ERROR; details name the fields)",
    429: "Rate limit exceeded (RATE_LIMITED; Retry-After says when to retry)",
    503: "A service the server depends on is unavailable (SERVICE_UNAVAILABLE)",
}


def link(operation_id: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link: which fields of this response address another operation (the fuzzer follows them).

    ``parameters`` maps that operation's parameter names to expressions such as ``$response.body#/id``.
    """
    return {"operationId": operation_id, "parameters": parameters}


def errors(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route's own error statuses, each with the one error schema."""
    return {
        code: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS.get(code, "Error")} for code in status_codes
    }
