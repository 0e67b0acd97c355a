"""Export routes: the seed's ``/api/exports[/{exportId}]`` by id, and the clients' exports nested under the
model, ``/api/models/{owner}/{project}/{model}/exports[/{exportId}]`` (clients.md §1.4, §1.6)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from yolostack.auth.dependencies import AuthContext, Authenticator
from yolostack.auth.scopes import Scope
from yolostack.config import Settings
from yolostack.core.db import DbSession
from yolostack.core.files import on_commit
from yolostack.core.pagination import MAX_LIMIT, PageMeta, PageParams, PageParamsQuery
from yolostack.core.responses import Body, SeedPage, both, client, errors, link, seed
from yolostack.exports.schemas import (
    ExportCreate,
    ExportCreated,
    ExportDeleted,
    ExportHolder,
    ExportList,
    ExportQueued,
    ExportRead,
    ExportRemoved,
    ExportSchema,
    SeedExportCreate,
)
from yolostack.exports.service import export_view, owned_model
from yolostack.exports.service import exports as export_service
from yolostack.jobs.service import wake_dispatcher
from yolostack.models.service import ModelRow
from yolostack.models.service import model as model_service
from yolostack.storage.service import Files
from yolostack.tables import Executor, Job
from yolostack.training.service import gpu_count

ExportsAuth = Annotated[AuthContext, Depends(Authenticator(Scope.exports))]

router = APIRouter(tags=["exports"])
models_router = APIRouter(tags=["exports"])


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _create(request: Request, auth: AuthContext, session: DbSession, row: ModelRow, body: ExportCreate) -> Job:
    executor = Executor(_settings(request).jobs.executor)
    gpus = gpu_count() if executor == Executor.local else 0
    job = await export_service.create(session, auth.account, row, body, executor=executor, gpus=gpus)
    on_commit(session, lambda: wake_dispatcher(request))
    return job


def _created(request: Request, job: Job) -> dict[str, Any]:
    """What ``ul cloud export`` reads back: ``id, status, gpuType?`` (and the SDK's ``region``)."""
    return {
        "id": job.id,
        "format": job.spec["format"],
        "status": str(job.status),
        "gpuType": job.gpu_type,
        "region": _settings(request).region,
    }


# -- seed routes: /api/exports ---------------------------------------------------------------------------


@router.get("", response_model=SeedPage[ExportSchema])
async def list_exports(
    auth: ExportsAuth,
    session: DbSession,
    links: Files,
    params: PageParamsQuery,
    model_id: Annotated[str | None, Query(alias="modelId")] = None,
    status: str | None = None,
) -> Body:
    """The caller's exports, newest first, optionally of one model or in one status."""
    jobs, total = await export_service.list(session, auth.account, params, model_id=model_id, status=status)
    return seed([export_view(job, links) for job in jobs], meta=PageMeta.of(params, total))


_SEED_LINKS = {
    "GetExport": link("get_export", export_id="$response.body#/id"),
    "DeleteExport": link("delete_export", export_id="$response.body#/id"),
    # An export is a job: its state and runner logs under /api/jobs too.
    "GetExportJob": link("get_job", job_id="$response.body#/id"),
    "GetExportJobLogs": link("get_job_logs", job_id="$response.body#/id"),
}
_NESTED = {"owner": "$request.path.owner", "project": "$request.path.project", "model": "$request.path.model"}
_CLIENT_LINKS = {
    "GetModelExport": link("get_model_export", export_id="$response.body#/id", **_NESTED),
    "DeleteModelExport": link("delete_model_export", export_id="$response.body#/id", **_NESTED),
}


@router.post(
    "", status_code=201, response_model=ExportCreated, responses={201: {"links": _SEED_LINKS}, **errors(400, 409)}
)
async def create_export(
    request: Request, auth: ExportsAuth, session: DbSession, links: Files, body: SeedExportCreate
) -> Body:
    """Seed ``{modelId, format}`` (plus ``args``, ``gpuType``): queue an export of one of the caller's models."""
    row = await model_service.get_by_id(session, auth.account, body.model_id)
    job = await _create(request, auth, session, row, body)
    return both(export_view(job, links), **_created(request, job))


@router.get("/{export_id}", response_model=ExportRead)
async def get_export(auth: ExportsAuth, session: DbSession, links: Files, export_id: str) -> Body:
    """One export's status; ``data.file.downloadUrl`` once it has completed."""
    view = export_view(await export_service.get(session, auth.account, export_id), links)
    return both(view, export=view)


@router.delete("/{export_id}", response_model=ExportRemoved)
async def delete_export(request: Request, auth: ExportsAuth, session: DbSession, export_id: str) -> Body:
    """Cancel an active export, or delete a finished one and its file."""
    action = await _remove(request, session, await export_service.get(session, auth.account, export_id))
    return both({"id": export_id, "action": action}, action=action)


async def _remove(request: Request, session: DbSession, job: Job) -> str:
    action = await export_service.remove(session, job)
    if action == "cancelled":  # the dispatcher stops a runner that outlives the grace period
        on_commit(session, lambda: wake_dispatcher(request))
    return action


# -- client routes: /api/models/{owner}/{project}/{model}/exports -----------------------------------------


async def _model(session: DbSession, auth: AuthContext, owner: str, project: str, model: str) -> ModelRow:
    return owned_model(auth.account, await model_service.get_by_slug(session, auth.account, owner, project, model))


@models_router.get("/{owner}/{project}/{model}/exports", response_model=ExportList)
async def list_model_exports(
    request: Request,
    auth: ExportsAuth,
    session: DbSession,
    links: Files,
    owner: str,
    project: str,
    model: str,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
) -> Body:
    """SDK ``exports.list``: ``{exports, region}``."""
    row = await _model(session, auth, owner, project, model)
    params = PageParams(page=1, limit=limit)
    jobs, _ = await export_service.list(session, auth.account, params, model_id=row[0].id, status=status)
    return client(exports=[export_view(job, links) for job in jobs], region=_settings(request).region)


@models_router.post(
    "/{owner}/{project}/{model}/exports",
    status_code=201,
    response_model=ExportQueued,
    responses={201: {"links": _CLIENT_LINKS}, **errors(400, 409)},
)
async def create_model_export(
    request: Request, auth: ExportsAuth, session: DbSession, owner: str, project: str, model: str, body: ExportCreate
) -> Body:
    """SDK ``exports.create`` and ``ul cloud export``: ``{format, gpuType?, args?}`` → ``{id, format, status, …}``."""
    row = await _model(session, auth, owner, project, model)
    job = await _create(request, auth, session, row, body)
    return client(**_created(request, job))


@models_router.get("/{owner}/{project}/{model}/exports/{export_id}", response_model=ExportHolder)
async def get_model_export(
    auth: ExportsAuth, session: DbSession, links: Files, owner: str, project: str, model: str, export_id: str
) -> Body:
    """What ``ul cloud export`` polls every 5 s: ``export.status``, then ``export.file.downloadUrl``."""
    row = await _model(session, auth, owner, project, model)
    job = await export_service.get(session, auth.account, export_id, model_id=row[0].id)
    return client(export=export_view(job, links))


@models_router.delete("/{owner}/{project}/{model}/exports/{export_id}", response_model=ExportDeleted)
async def delete_model_export(
    request: Request, auth: ExportsAuth, session: DbSession, owner: str, project: str, model: str, export_id: str
) -> Body:
    """SDK ``exports.delete``: ``{success, action: 'cancelled' | 'deleted'}``."""
    row = await _model(session, auth, owner, project, model)
    job = await export_service.get(session, auth.account, export_id, model_id=row[0].id)
    return client(action=await _remove(request, session, job))
