from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from yolostack.auth.dependencies import TrashAuth
from yolostack.core.db import DbSession
from yolostack.core.errors import BadRequest
from yolostack.core.pagination import PageMeta, PageParamsQuery
from yolostack.core.responses import Body, both, errors
from yolostack.trash.schemas import (
    TrashDelete,
    TrashDeleted,
    TrashItem,
    TrashItemRef,
    TrashPage,
    TrashPreview,
    TrashRestored,
)
from yolostack.trash.service import DeleteResult
from yolostack.trash.service import trash as trash_service

router = APIRouter(tags=["trash"])


def _summary(items: list[TrashItem]) -> dict[str, object]:
    def count(kind: str) -> int:
        return sum(1 for item in items if item.type == kind)

    return {
        "totalItems": len(items),
        "totalSizeBytes": sum(item.size_bytes for item in items),
        "byType": {
            "projects": {"count": count("project")},
            "datasets": {"count": count("dataset"), "sizeBytes": 0},
            "models": {"count": count("model"), "sizeBytes": 0},
            "exports": {"count": 0, "sizeBytes": 0},
        },
    }


@router.get("", response_model=TrashPage | TrashPreview)
async def list_trash(
    request: Request,
    auth: TrashAuth,
    session: DbSession,
    pagination: PageParamsQuery,
    type: Annotated[Literal["all", "project", "dataset", "model"] | None, Query()] = None,
    id: Annotated[str | None, Query(max_length=40)] = None,
) -> Body:
    """Trashed items (kept 30 days); with ``id`` and ``type``, a preview of what deleting that item takes."""
    if id is not None:
        if type in (None, "all"):
            raise BadRequest("'type' (project, dataset or model) is required with 'id'")
        assert type is not None
        resources = await trash_service.preview(session, auth.account_id, type, id)
        return both(resources, resources=resources)
    items = await trash_service.list_items(session, auth.account_id, type)
    meta = PageMeta.of(pagination, len(items))
    page = items[pagination.offset : pagination.offset + pagination.limit]
    return both(
        page,
        meta=meta,
        items=page,
        total=meta.total,
        page=meta.page,
        limit=meta.limit,
        totalPages=meta.total_pages,
        summary=_summary(items),
        region=request.app.state.settings.region,
    )


@router.post("", response_model=TrashRestored, responses=errors(409))
async def restore_trash_item(auth: TrashAuth, session: DbSession, item: TrashItemRef) -> Body:
    """Restore an item and everything that was trashed with it."""
    result = await trash_service.restore(session, auth.account_id, item.type, item.ref)
    restored_models = result.restored.get("model", 0)
    return both(
        {"id": item.ref, "type": item.type, "slug": result.slug, "restoredModels": restored_models},
        restoredModels=restored_models,
        slug=result.slug,
    )


def _deleted(result: DeleteResult) -> Body:
    cascaded_models = result.cascaded.get("model", 0)
    return both(
        {"deletedCount": result.deleted, "cascadedModels": cascaded_models},
        deletedCount=result.deleted,
        cascadedModels=cascaded_models,
    )


@router.post("/empty", response_model=TrashDeleted)
async def empty_trash(auth: TrashAuth, session: DbSession) -> Body:
    """Permanently delete everything in the trash (seed route)."""
    return _deleted(await trash_service.empty(session, auth.account_id))


@router.delete("", response_model=TrashDeleted)
async def delete_trash(auth: TrashAuth, session: DbSession, body: TrashDelete) -> Body:
    """Permanently delete one item (``{id, type}``) or the whole trash (``{all: true}``)."""
    if body.all:
        return _deleted(await trash_service.empty(session, auth.account_id))
    assert body.type is not None
    return _deleted(
        await trash_service.delete_forever(session, auth.account_id, body.type, body.id or body.item_id or "")
    )
