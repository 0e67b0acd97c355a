"""Seed routes address models by id, client routes by ``{owner}/{project}/{model}``; a segment with ``_`` is an id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from yolostack.auth.dependencies import ModelsAuth
from yolostack.config import Settings
from yolostack.core.db import DbSession
from yolostack.core.errors import NotFound, PayloadTooLarge
from yolostack.core.files import on_commit
from yolostack.core.ids import is_id
from yolostack.core.limits import limit_body
from yolostack.core.pagination import MAX_LIMIT, PageMeta, PageParamsQuery
from yolostack.core.responses import Body, ClientResponse, SeedPage, SeedResponse, both, client, errors, link, seed
from yolostack.models.schemas import (
    ModelCreate,
    ModelCreated,
    ModelDetail,
    ModelFiles,
    ModelList,
    ModelRead,
    ModelSchema,
    ModelUpdate,
    ModelUpdated,
    ModelUpload,
    Task,
    Trashed,
)
from yolostack.models.service import download_files, model_detail, model_view
from yolostack.models.service import model as model_service
from yolostack.storage.service import FileLinks, Files
from yolostack.storage.usage import ensure_room

router = APIRouter(tags=["models"])
CHUNK = 1024 * 1024
RequestT = TypeVar("RequestT", bound=BaseModel)


def _region(request: Request) -> str:
    region: str = request.app.state.settings.region
    return region


def wake_conversions(request: Request) -> None:
    request.app.state.conversion_task.wake()


@router.get("", response_model=SeedPage[ModelSchema])
async def list_models(
    auth: ModelsAuth,
    session: DbSession,
    pagination: PageParamsQuery,
    project_id: Annotated[str | None, Query(alias="projectId", max_length=64)] = None,
    task: Task | None = None,
) -> Body:
    """The caller's models, newest first (seed)."""
    models, total = await model_service.list_models(session, auth.account, pagination, project_id=project_id, task=task)
    return seed(models, meta=PageMeta.of(pagination, total))


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A schema with its ``$defs`` resolved in place, for a request body FastAPI does not read itself."""
    schema = model.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            rest = {key: value for key, value in node.items() if key != "$ref"}
            return resolve({**definitions[ref.removeprefix("#/$defs/")], **rest})
        return {key: resolve(value) for key, value in node.items()}

    resolved: dict[str, Any] = resolve(schema)
    return resolved


# One route, two bodies: the handler reads it itself, so that an upload's larger cap is set before the
# form is read (``limit_body``); the document says which shapes it takes.
CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _inline_schema(ModelCreate)},
            "multipart/form-data": {"schema": _inline_schema(ModelUpload)},
        },
    }
}


# The fuzzer follows these from a created model to the routes that read, change, train, export and delete it.
_BY_SLUG = {"owner": "$response.body#/owner", "project": "$response.body#/project", "model": "$response.body#/model"}
_CREATED_LINKS = {
    "GetModelById": link("get_model_by_id", ref="$response.body#/id"),
    "ListProjectModels": link(
        "get_files_or_list_project", first="$response.body#/owner", second="$response.body#/project"
    ),
    "GetModel": link("get_model", **_BY_SLUG),
    "UpdateModel": link("update_model", **_BY_SLUG),
    "GetModelFiles": link("get_model_files", **_BY_SLUG),
    "GetTraining": link("get_training", **_BY_SLUG),
    "GetTrainingById": link("get_training_by_id", model_id="$response.body#/id"),
    "ListModelExports": link("list_model_exports", **_BY_SLUG),
    "CreateModelExport": link("create_model_export", **_BY_SLUG),
    "PredictModel": link("predict_by_slug", **_BY_SLUG),
    "PredictModelById": link("predict_by_id", model_id="$response.body#/id"),
    "PredictHubLegacy": link("predict_hub_legacy", model_id="$response.body#/id"),
    "CancelTrainingById": link("cancel_training_by_id", model_id="$response.body#/id"),
    "CancelTraining": link("cancel_training", **_BY_SLUG),
    "DeleteModel": link("delete_model", **_BY_SLUG),
    "DeleteModelById": link("delete_model_by_id", ref="$response.body#/id"),
}


@router.post(
    "",
    status_code=201,
    response_model=ModelCreated,
    responses={201: {"links": _CREATED_LINKS}, **errors(409)},
    openapi_extra=CREATE_BODY,
)
async def create_model(request: Request, auth: ModelsAuth, session: DbSession, links: Files) -> Body:
    """Multipart ``file`` + ``projectId`` + ``name`` uploads a .pt (seed); a JSON body creates an empty model (clients)."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        model, project = await _upload(request, auth.account, session, links)
        on_commit(session, lambda: wake_conversions(request))
    else:
        body = _validated(ModelCreate, await request.body())
        model, project = await model_service.create(session, auth.account, body)
    view = model_view(model, project, auth.account.username)
    return both(
        view,
        id=model.id,
        owner=auth.account.username,
        project=project.slug,
        model=model.slug,
        name=model.name,
        region=_region(request),
    )


def _validated(schema: type[RequestT], given: bytes | dict[str, Any]) -> RequestT:
    """The body validated as FastAPI validates the bodies it reads (the same 422 and field names)."""
    try:
        if isinstance(given, bytes):
            return schema.model_validate_json(given or b"{}")
        return schema.model_validate(given)
    except ValidationError as error:
        errors = [{**item, "loc": ("body", *item["loc"])} for item in error.errors(include_url=False)]
        raise RequestValidationError(errors) from None


async def _upload(request: Request, account: Any, session: DbSession, links: FileLinks) -> Any:
    settings: Settings = request.app.state.settings
    declared = int(request.headers.get("content-length") or 0)
    if declared > settings.storage.max_upload_bytes:
        raise PayloadTooLarge(f"upload exceeds the limit of {settings.storage.max_upload_bytes} bytes")
    room = await ensure_room(session, settings, account, declared)
    limit_body(request, settings.storage.max_upload_bytes)  # a checkpoint may pass the default form cap
    form = await request.form(max_files=1, max_fields=10)
    fields = {key: value for key, value in form.items() if value != ""}
    body = _validated(ModelUpload, fields)
    upload = body.file

    async def chunks() -> AsyncIterator[bytes]:
        while chunk := await upload.read(CHUNK):
            yield chunk

    return await model_service.upload(
        session,
        links.store,
        account,
        project_id=body.project_id,
        name=body.name,
        filename=upload.filename,
        chunks=chunks(),
        max_bytes=min(room, settings.storage.max_upload_bytes),
    )


@router.get("/{ref}", response_model=SeedResponse[ModelDetail])
async def get_model_by_id(auth: ModelsAuth, session: DbSession, ref: str) -> Body:
    """One model by id (seed)."""
    if not is_id(ref):
        raise NotFound("model not found: address it by id or by /{owner}/{project}/{model}")
    model, project, owner = await model_service.get_by_id(session, auth.account, ref)
    return seed(model_detail(model, project, owner.username))


@router.delete("/{ref}", response_model=SeedResponse[Trashed])
async def delete_model_by_id(auth: ModelsAuth, session: DbSession, ref: str) -> Body:
    """Move a model to the trash (seed)."""
    if not is_id(ref):
        raise NotFound("model not found: address it by id or by /{owner}/{project}/{model}")
    row = await model_service.get_by_id(session, auth.account, ref)
    await model_service.delete(session, auth.account, row)
    return seed({"id": ref, "trashed": True})


@router.get("/{first}/{second}", response_model=ModelFiles | ModelList)
async def get_files_or_list_project(
    request: Request,
    auth: ModelsAuth,
    session: DbSession,
    links: Files,
    first: str,
    second: str,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> Body:
    """``/api/models/{modelId}/files`` (seed) or ``/api/models/{owner}/{project}`` (clients' list)."""
    if is_id(first) and second == "files":
        row = await model_service.get_by_id(session, auth.account, first)
        files = download_files(links, row)
        return both(files, files=files)
    models = await model_service.list_in_project(session, auth.account, first, second, limit)
    return client(models=models, total=len(models), region=_region(request))


@router.get("/{owner}/{project}/{model}", response_model=ModelRead)
async def get_model(
    request: Request, auth: ModelsAuth, session: DbSession, owner: str, project: str, model: str
) -> Body:
    """A model with its metadata (clients)."""
    row = await model_service.get_by_slug(session, auth.account, owner, project, model)
    found, found_project, found_owner = row
    return client(
        model=model_detail(found, found_project, found_owner.username),
        isOwner=found_owner.id == auth.account_id,
        region=_region(request),
    )


@router.patch("/{owner}/{project}/{model}", response_model=ModelUpdated, responses=errors(409))
async def update_model(
    auth: ModelsAuth, session: DbSession, owner: str, project: str, model: str, data: ModelUpdate
) -> Body:
    """Change a model; a new name also changes its slug."""
    row = await model_service.get_by_slug(session, auth.account, owner, project, model)
    updated = await model_service.update(session, auth.account, row, data)
    detail = model_detail(updated, row[1], row[2].username)
    return both(detail, model=detail, slug=updated.slug)


@router.delete("/{owner}/{project}/{model}", response_model=ClientResponse)
async def delete_model(auth: ModelsAuth, session: DbSession, owner: str, project: str, model: str) -> Body:
    """Move a model to the trash for 30 days (clients)."""
    row = await model_service.get_by_slug(session, auth.account, owner, project, model)
    await model_service.delete(session, auth.account, row)
    return client()


@router.get("/{owner}/{project}/{model}/files", response_model=ModelFiles)
async def get_model_files(
    auth: ModelsAuth, session: DbSession, links: Files, owner: str, project: str, model: str
) -> Body:
    """Signed download links, the .pt first: ``YOLO("ul://owner/project/model")`` reads ``files[0]``."""
    row = await model_service.get_by_slug(session, auth.account, owner, project, model)
    files = download_files(links, row)
    return both(files, files=files)
