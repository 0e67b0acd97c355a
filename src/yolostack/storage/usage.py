"""Exact bytes per account and category (``GET /api/storage``), and the plan quota uploads must fit in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.auth.dependencies import StorageAuth
from yolostack.config import Settings
from yolostack.core.db import DbSession
from yolostack.core.errors import PayloadTooLarge
from yolostack.core.responses import Body, both
from yolostack.core.timeutil import utcnow
from yolostack.storage.schemas import (
    ByCategory,
    CategoryUsage,
    StorageBreakdown,
    StorageResponse,
    StorageTotals,
    StorageUsage,
    TopItem,
    UsageEntry,
)
from yolostack.tables import (
    Account,
    Dataset,
    DatasetExport,
    DatasetImage,
    Deployment,
    Job,
    JobKind,
    Model,
    Plan,
    Project,
    UploadSession,
    UploadStatus,
)

router = APIRouter(tags=["storage"])

# Upload sessions whose bytes are still in storage.
HELD = (UploadStatus.uploaded, UploadStatus.completed)


@dataclass(frozen=True)
class Usage:
    dataset_bytes: int
    dataset_count: int
    image_count: int
    model_bytes: int
    model_count: int
    export_bytes: int
    export_count: int
    deployment_count: int = 0

    @property
    def total(self) -> int:
        return self.dataset_bytes + self.model_bytes + self.export_bytes


def quota(settings: Settings, account: Account) -> int:
    limits = settings.storage.quota
    return {Plan.free: limits.free, Plan.pro: limits.pro, Plan.enterprise: limits.enterprise}[Plan(account.plan)]


async def measure(session: AsyncSession, account_id: str) -> Usage:
    """What the account's files take: images once per distinct content (as stored), plus held uploads."""
    distinct_images = (
        select(DatasetImage.hash, DatasetImage.ext, func.max(DatasetImage.bytes).label("size"))
        .where(DatasetImage.owner_id == account_id)
        .group_by(DatasetImage.hash, DatasetImage.ext)
        .subquery()
    )
    image_bytes, image_count = (
        await session.execute(select(func.coalesce(func.sum(distinct_images.c.size), 0), func.count()))
    ).one()
    datasets = await session.scalar(select(func.count()).select_from(Dataset).where(Dataset.owner_id == account_id))
    held = (
        await session.execute(
            select(UploadSession.asset_type, func.coalesce(func.sum(UploadSession.size), 0), func.count())
            .where(UploadSession.account_id == account_id, UploadSession.status.in_(HELD))
            .group_by(UploadSession.asset_type)
        )
    ).all()
    by_type = {asset_type: (int(size or 0), int(count)) for asset_type, size, count in held}
    export_bytes, export_count = (
        await session.execute(
            select(func.coalesce(func.sum(DatasetExport.size), 0), func.count()).where(
                DatasetExport.owner_id == account_id
            )
        )
    ).one()
    # Model exports (jobs of kind export) whose artifact is stored.
    model_export_bytes, model_export_count = (
        await session.execute(
            select(func.coalesce(func.sum(Job.file_size), 0), func.count()).where(
                Job.owner_id == account_id, Job.kind == JobKind.export, Job.file_key.is_not(None)
            )
        )
    ).one()
    weights_bytes, weights_count = (
        await session.execute(
            select(func.coalesce(func.sum(Model.weights_size), 0), func.count(Model.weights_size)).where(
                Model.owner_id == account_id
            )
        )
    ).one()
    deployments = await session.scalar(
        select(func.count()).select_from(Deployment).where(Deployment.owner_id == account_id)
    )
    return Usage(
        deployment_count=int(deployments or 0),
        dataset_bytes=int(image_bytes) + by_type.get("datasets", (0, 0))[0],
        dataset_count=int(datasets or 0),
        image_count=int(image_count),
        model_bytes=int(weights_bytes or 0) + by_type.get("models", (0, 0))[0],
        model_count=int(weights_count),
        export_bytes=int(export_bytes) + int(model_export_bytes or 0) + by_type.get("exports", (0, 0))[0],
        export_count=int(export_count) + int(model_export_count),
    )


async def ensure_room(session: AsyncSession, settings: Settings, account: Account, incoming: int) -> int:
    """Refuse an upload that would pass the plan's quota; returns the bytes still free."""
    used = (await measure(session, account.id)).total
    room = quota(settings, account) - used
    if incoming > room:
        raise PayloadTooLarge(
            f"Storage quota exceeded: {used} of {quota(settings, account)} bytes used, upload needs {incoming}",
            details={"used": used, "limit": quota(settings, account), "requested": incoming},
        )
    return room


TOP_ITEMS = 10


async def top_items(session: AsyncSession, account_id: str, limit: int = TOP_ITEMS) -> list[TopItem]:
    """The account's largest datasets (their images' bytes) and models (their weights), largest first; what
    is in the trash counts too (its files are still stored)."""
    dataset_sizes = (
        select(Dataset.id, Dataset.name, Dataset.slug, func.sum(DatasetImage.bytes).label("size"))
        .join(DatasetImage, DatasetImage.dataset_id == Dataset.id)
        .where(Dataset.owner_id == account_id)
        .group_by(Dataset.id, Dataset.name, Dataset.slug)
        .order_by(func.sum(DatasetImage.bytes).desc(), Dataset.id)
        .limit(limit)
    )
    model_sizes = (
        select(Model.id, Model.name, Model.slug, Model.weights_size, Project.name, Project.slug)
        .join(Project, Project.id == Model.project_id)
        .where(Model.owner_id == account_id, Model.weights_size > 0)
        .order_by(Model.weights_size.desc(), Model.id)
        .limit(limit)
    )
    items = [
        TopItem(id=row_id, name=name, slug=slug, size_bytes=int(size), type="dataset")
        for row_id, name, slug, size in (await session.execute(dataset_sizes)).all()
        if size
    ]
    items += [
        TopItem(
            id=row_id,
            name=name,
            slug=slug,
            size_bytes=int(size or 0),
            type="model",
            parent_name=project_name,
            parent_slug=project_slug,
        )
        for row_id, name, slug, size, project_name, project_slug in (await session.execute(model_sizes)).all()
    ]
    return sorted(items, key=lambda item: (-item.size_bytes, item.id))[:limit]


@router.get("", response_model=StorageResponse)
async def get_storage(
    request: Request,
    auth: StorageAuth,
    session: DbSession,
    details: Annotated[bool, Query(description="Also list the largest items (breakdown.topItems)")] = False,
) -> Body:
    """Bytes used by category against the plan's quota (seed ``{used, limit, percentage}`` + the clients' shape)."""
    settings: Settings = request.app.state.settings
    usage = await measure(session, auth.account_id)
    storage = UsageEntry.of(usage.total, quota(settings, auth.account))
    return both(
        StorageTotals(used=storage.current, limit=storage.limit, percentage=storage.percent),
        tier=auth.account.plan,
        username=auth.account.username,
        region=settings.region,
        updatedAt=utcnow(),
        usage=StorageUsage(
            datasets=UsageEntry.of(usage.dataset_count),
            models=UsageEntry.of(usage.model_count),
            images=UsageEntry.of(usage.image_count),
            deployments=UsageEntry.of(usage.deployment_count),
            storage=storage,
        ),
        breakdown=StorageBreakdown(
            by_category=ByCategory(
                datasets=CategoryUsage(bytes=usage.dataset_bytes, count=usage.dataset_count),
                models=CategoryUsage(bytes=usage.model_bytes, count=usage.model_count),
                exports=CategoryUsage(bytes=usage.export_bytes, count=usage.export_count),
            ),
            top_items=await top_items(session, auth.account_id) if details else [],
        ),
    )
