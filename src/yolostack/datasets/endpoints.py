"""Seed routes address datasets by id, client routes by ``{owner}/{slug}``; a segment with ``_`` is an id."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from yolostack.auth.dependencies import DatasetsAuth
from yolostack.core.db import DbSession
from yolostack.core.errors import NotFound
from yolostack.core.files import on_commit
from yolostack.core.ids import is_id
from yolostack.core.pagination import MAX_LIMIT, PageMeta, PageParams, PageParamsQuery
from yolostack.core.responses import Body, ClientResponse, SeedPage, SeedResponse, both, client, errors, link, seed
from yolostack.datasets import images as image_service
from yolostack.datasets.export import ensure_export
from yolostack.datasets.repository import DatasetRow
from yolostack.datasets.schemas import (
    DatasetCreate,
    DatasetCreated,
    DatasetDetail,
    DatasetExportResponse,
    DatasetList,
    DatasetResponse,
    DatasetSchema,
    DatasetUpdate,
    DatasetUpdated,
    ImagePage,
    IngestRequest,
    IngestResponse,
    Task,
    TrashedDataset,
)
from yolostack.datasets.service import dataset as dataset_service
from yolostack.datasets.service import dataset_view
from yolostack.storage.service import Files

router = APIRouter(tags=["datasets"])


def _region(request: Request) -> str:
    region: str = request.app.state.settings.region
    return region


@router.get("", response_model=SeedPage[DatasetSchema])
async def list_datasets(
    auth: DatasetsAuth, session: DbSession, pagination: PageParamsQuery, task: Task | None = None
) -> Body:
    """The caller's datasets, newest first (seed)."""
    datasets, total = await dataset_service.list_for(session, auth.account, None, pagination, task)
    return seed(datasets, meta=PageMeta.of(pagination, total))


# The fuzzer follows these from a created dataset to the routes that read, change and delete it.
_BY_SLUG = {"owner": "$response.body#/owner", "slug": "$response.body#/dataset"}
_CREATED_LINKS = {
    "GetDatasetById": link("get_dataset_or_list_owner", ref="$response.body#/id"),
    "ListOwnersDatasets": link("get_dataset_or_list_owner", ref="$response.body#/owner"),
    "GetDataset": link("get_dataset", **_BY_SLUG),
    "UpdateDataset": link("update_dataset", **_BY_SLUG),
    "ListImages": link("list_dataset_images", **_BY_SLUG),
    "ExportDataset": link("export_dataset", **_BY_SLUG),
    "ExportDatasetById": link("export_dataset_by_id", ref="$response.body#/id"),
    "IngestDataset": link("ingest_dataset", **_BY_SLUG),
    "DeleteDataset": link("delete_dataset", **_BY_SLUG),
    "DeleteDatasetById": link("delete_dataset_by_id", ref="$response.body#/id"),
}


@router.post(
    "", status_code=201, response_model=DatasetCreated, responses={201: {"links": _CREATED_LINKS}, **errors(409)}
)
async def create_dataset(request: Request, auth: DatasetsAuth, session: DbSession, data: DatasetCreate) -> Body:
    """Create an empty dataset; an existing slug is a 409."""
    dataset = await dataset_service.create(session, auth.account, data)
    view = dataset_view(dataset, auth.account.username, None)
    return both(
        view,
        id=dataset.id,
        owner=auth.account.username,
        dataset=dataset.slug,
        name=dataset.name,
        region=_region(request),
    )


@router.get("/{ref}", response_model=SeedResponse[DatasetDetail] | DatasetList)
async def get_dataset_or_list_owner(
    request: Request,
    auth: DatasetsAuth,
    session: DbSession,
    ref: str,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    task: Task | None = None,
) -> Body:
    """``/api/datasets/{datasetId}`` (seed) or ``/api/datasets/{owner}`` (clients' list)."""
    if is_id(ref):
        row = await dataset_service.get_by_id(session, auth.account, ref)
        return seed(await dataset_service.detail(session, row))
    datasets, total = await dataset_service.list_for(session, auth.account, ref, PageParams(1, limit), task)
    return client(datasets=datasets, total=total, region=_region(request))


@router.delete("/{ref}", response_model=SeedResponse[TrashedDataset])
async def delete_dataset_by_id(auth: DatasetsAuth, session: DbSession, ref: str) -> Body:
    """Move a dataset to the trash (seed)."""
    if not is_id(ref):
        raise NotFound("dataset not found: address it by id or by /{owner}/{slug}")
    row = await dataset_service.get_by_id(session, auth.account, ref)
    await dataset_service.delete(session, auth.account, row)
    return both({"id": ref, "trashed": True})


async def _export(request: Request, session: DbSession, files: Files, row: DatasetRow) -> Body:
    dataset, owner = row
    key, cached = await ensure_export(session, files, dataset, owner.username, request.app.state.settings.base_url)
    url = files.download_url(key, key.rsplit("/", 1)[-1])
    fields: dict[str, Any] = {"downloadUrl": url, "version": dataset.version, "cached": cached}
    return both(fields, **fields)


@router.post("/{ref}/export", response_model=DatasetExportResponse)
async def export_dataset_by_id(
    request: Request, auth: DatasetsAuth, session: DbSession, files: Files, ref: str
) -> Body:
    """A signed download URL of the dataset as Ultralytics NDJSON (seed)."""
    if not is_id(ref):
        raise NotFound("dataset not found")
    return await _export(request, session, files, await dataset_service.get_by_id(session, auth.account, ref))


@router.get("/{owner}/{slug}", response_model=DatasetResponse)
async def get_dataset(auth: DatasetsAuth, session: DbSession, owner: str, slug: str) -> Body:
    """A dataset with its status and ingest progress (clients; ``ul`` polls this while processing)."""
    row = await dataset_service.get_by_slug(session, auth.account, owner, slug)
    return client(dataset=await dataset_service.detail(session, row))


@router.patch("/{owner}/{slug}", response_model=DatasetUpdated, responses=errors(409))
async def update_dataset(auth: DatasetsAuth, session: DbSession, owner: str, slug: str, data: DatasetUpdate) -> Body:
    """Change a dataset; a new name also changes its slug."""
    row = await dataset_service.get_by_slug(session, auth.account, owner, slug)
    dataset = await dataset_service.update(session, auth.account, row, data)
    return both(await dataset_service.detail(session, (dataset, row[1])), dataset=dataset.slug)


@router.delete("/{owner}/{slug}", response_model=ClientResponse)
async def delete_dataset(auth: DatasetsAuth, session: DbSession, owner: str, slug: str) -> Body:
    """Move a dataset to the trash for 30 days (clients)."""
    row = await dataset_service.get_by_slug(session, auth.account, owner, slug)
    await dataset_service.delete(session, auth.account, row)
    return client()


@router.get("/{owner}/{slug}/export", response_model=DatasetExportResponse)
async def export_dataset(
    request: Request, auth: DatasetsAuth, session: DbSession, files: Files, owner: str, slug: str
) -> Body:
    """``{downloadUrl, version}``: what ``YOLO(...).train(data="ul://owner/datasets/slug")`` downloads."""
    return await _export(request, session, files, await dataset_service.get_by_slug(session, auth.account, owner, slug))


@router.post("/{owner}/{slug}/ingest", status_code=202, response_model=IngestResponse, responses=errors(409))
async def ingest_dataset(
    request: Request, auth: DatasetsAuth, session: DbSession, owner: str, slug: str, data: IngestRequest
) -> Body:
    """Queue the ingest of a completed upload; poll the dataset's ``status`` and ``processingProgress``."""
    row = await dataset_service.get_by_slug(session, auth.account, owner, slug)
    job_id = await dataset_service.queue_ingest(session, auth.account, row, data)
    on_commit(session, request.app.state.ingest_task.wake)
    return both({"jobId": job_id, "status": "queued"}, jobId=job_id, status="queued")


@router.get("/{owner}/{slug}/images", response_model=ImagePage)
async def list_dataset_images(
    auth: DatasetsAuth,
    session: DbSession,
    files: Files,
    owner: str,
    slug: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
    split: Literal["train", "val", "test"] | None = None,
    has_label: Annotated[bool | None, Query(alias="hasLabel")] = None,
    has_error: Annotated[bool | None, Query(alias="hasError")] = None,
    include_labels: Annotated[bool, Query(alias="includeLabels")] = False,
    include_image_urls: Annotated[bool, Query(alias="includeImageUrls")] = False,
) -> Body:
    """Images with cursor paging (``nextCursor``) and split / label / error filters."""
    row = await dataset_service.get_by_slug(session, auth.account, owner, slug)
    page = await image_service.list_images(
        session,
        files,
        row[0],
        limit=limit,
        cursor=cursor,
        split=split,
        has_label=has_label,
        has_error=has_error,
        include_labels=include_labels,
        include_urls=include_image_urls,
    )
    return client(**page)
