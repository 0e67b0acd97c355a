"""Pages of an account's resources: the datasets list and upload, and the pages at the URLs the clients print
(``/{owner}/{project}``, ``/{owner}/{project}/{model}``, ``/{owner}/datasets/{dataset}``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import Field, ValidationError

from yolostack.auth.scopes import Scope
from yolostack.core.db import DbSession
from yolostack.core.files import on_commit
from yolostack.core.pagination import PageParams
from yolostack.core.schemas import RequestSchema
from yolostack.core.validation import NonNegativeInt64
from yolostack.datasets.schemas import DatasetCreate, IngestRequest
from yolostack.datasets.service import dataset as dataset_service
from yolostack.jobs.service import ingest_view
from yolostack.models.service import download_files, model_view
from yolostack.models.service import model as model_service
from yolostack.projects.service import project as project_service
from yolostack.storage.service import Files
from yolostack.storage.usage import ensure_room
from yolostack.training.service import training as training_service
from yolostack.uploads.schemas import SignedUrlRequest
from yolostack.uploads.service import upload as upload_service
from yolostack.web.auth import (
    PageAction,
    PageUser,
)
from yolostack.web.pages import PageRoute, first_problem, render, settings_of
from yolostack.web.service import SignedIn

router = APIRouter(route_class=PageRoute, include_in_schema=False, default_response_class=HTMLResponse)

# --- datasets: list, create, upload from the browser, ingest -------------------------------------------------------


@router.get("/datasets")
async def datasets_page(request: Request, session: DbSession, user: PageUser) -> HTMLResponse:
    return await _datasets(request, session, user)


async def _datasets(
    request: Request, session: DbSession, user: SignedIn, status_code: int = 200, **context: Any
) -> HTMLResponse:
    datasets, total = await dataset_service.list_for(session, user.auth.account, None, PageParams(page=1, limit=200))
    return render(request, "datasets.html", status_code, nav="datasets", datasets=datasets, total=total, **context)


@router.post("/datasets")
async def create_dataset(
    request: Request,
    session: DbSession,
    user: PageAction,
    name: Annotated[str, Form(max_length=1024)] = "",
    task: Annotated[str, Form(max_length=16)] = "detect",
) -> Response:
    user.auth.require(Scope.datasets)
    try:
        data = DatasetCreate.model_validate({"name": name, "task": task})
    except ValidationError as error:
        return await _datasets(request, session, user, 422, error=first_problem(error))
    dataset = await dataset_service.create(session, user.auth.account, data)
    return RedirectResponse(f"/{user.auth.account.username}/datasets/{dataset.slug}", status_code=303)


class UploadOpen(RequestSchema):
    filename: str = Field(min_length=1, max_length=255)
    total_bytes: NonNegativeInt64


@router.post("/{owner}/datasets/{dataset}/upload", response_class=JSONResponse)
async def open_dataset_upload(
    request: Request, session: DbSession, files: Files, user: PageAction, owner: str, dataset: str, body: UploadOpen
) -> JSONResponse:
    """The browser's first step of an upload: a signed URL to PUT the archive to (with progress), as the API's
    ``POST /api/upload/signed-url`` gives a client."""
    user.auth.require(Scope.datasets)
    found = dataset_service.require_owner(
        user.auth.account, await dataset_service.get_by_slug(session, user.auth.account, owner, dataset)
    )
    settings = settings_of(request)
    await ensure_room(session, settings, user.auth.account, body.total_bytes)
    opened = SignedUrlRequest(
        asset_type="datasets", asset_id=found.id, filename=body.filename, total_bytes=body.total_bytes
    )
    upload = await upload_service.open(
        session,
        user.auth.account_id,
        opened,
        ttl=settings.storage.upload_url_ttl_seconds,
        max_bytes=settings.storage.max_upload_bytes,
    )
    return JSONResponse({"sessionId": upload.id, "uploadUrl": files.upload_url(upload.id, upload.filename)})


@router.post("/{owner}/datasets/{dataset}/ingest")
async def ingest_dataset(
    request: Request, session: DbSession, user: PageAction, owner: str, dataset: str, body: IngestRequest
) -> HTMLResponse:
    """Ingest what the browser uploaded; answers the ingest's status block, which then polls itself."""
    user.auth.require(Scope.datasets)
    row = await dataset_service.get_by_slug(session, user.auth.account, owner, dataset)
    await dataset_service.queue_ingest(session, user.auth.account, row, body)
    on_commit(session, request.app.state.ingest_task.wake)
    return render(request, "ingest_status.html", dataset=_view_of(row), ingest=ingest_view(row[0]))


@router.get("/{owner}/datasets/{dataset}/status")
async def ingest_status(request: Request, session: DbSession, user: PageUser, owner: str, dataset: str) -> HTMLResponse:
    row = await dataset_service.get_by_slug(session, user.auth.account, owner, dataset)
    return render(request, "ingest_status.html", dataset=_view_of(row), ingest=ingest_view(row[0]))


def _view_of(row: tuple[Any, ...]) -> dict[str, str]:
    dataset, owner = row
    return {"owner": owner.username, "slug": dataset.slug}


# --- an owner's resources, at the URLs the clients print -------------------------------------------------------------


@router.get("/{owner}/datasets/{dataset}")
async def dataset_page(request: Request, session: DbSession, user: PageUser, owner: str, dataset: str) -> HTMLResponse:
    row = await dataset_service.get_by_slug(session, user.auth.account, owner, dataset)
    detail = await dataset_service.detail(session, row)
    ingest = ingest_view(row[0]) if row[0].ingest_job_id else None
    is_owner = row[1].id == user.auth.account_id
    return render(request, "dataset.html", nav="datasets", dataset=detail, ingest=ingest, is_owner=is_owner)


@router.get("/{owner}/{project}/{model}/live")
async def model_live(
    request: Request, session: DbSession, links: Files, user: PageUser, owner: str, project: str, model: str
) -> HTMLResponse:
    """The model page's changing part, polled by htmx every 5 s while a run is active."""
    context = await _model_context(session, links, user, owner, project, model)
    return render(request, "model_live_poll.html", **context)


@router.get("/{owner}/{project}/{model}")
async def model_page(
    request: Request, session: DbSession, links: Files, user: PageUser, owner: str, project: str, model: str
) -> HTMLResponse:
    return render(request, "model.html", **await _model_context(session, links, user, owner, project, model))


async def _model_context(
    session: DbSession, links: Files, user: SignedIn, owner: str, project: str, model: str
) -> dict[str, Any]:
    row = await model_service.get_by_slug(session, user.auth.account, owner, project, model)
    found, found_project, found_owner = row
    training = await training_service.latest_view(session, row)
    live = training is not None and training["status"] in ("queued", "starting", "running")
    return {
        "model": model_view(found, found_project, found_owner.username),
        "training": training,
        "files": download_files(links, row),
        "live": live,
    }


@router.get("/{owner}/{project}")
async def project_page(request: Request, session: DbSession, user: PageUser, owner: str, project: str) -> HTMLResponse:
    row = await project_service.get_by_slug(session, user.auth.account, owner, project)
    view, models = await project_service.detail(session, user.auth.account, row)
    found, found_owner = row
    views = [model_view(model, found, found_owner.username) for model in models]
    return render(request, "project.html", project=view, models=views)
