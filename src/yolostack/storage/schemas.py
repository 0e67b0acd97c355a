"""``GET /api/storage``: the seed's ``{used, limit, percentage}`` and the clients' usage and breakdown."""

from datetime import datetime
from typing import Literal

from pydantic import Field

from yolostack.core.responses import SeedResponse
from yolostack.core.schemas import Schema

UNLIMITED = 0


class StorageTotals(Schema):
    used: int = Field(description="Bytes stored")
    limit: int = Field(description="The plan's quota in bytes")
    percentage: float


class UsageEntry(Schema):
    current: int
    limit: int = Field(description=f"The plan's limit; {UNLIMITED} when this server sets none")
    percent: float = Field(description="current / limit × 100 (0 without a limit)")

    @classmethod
    def of(cls, current: int, limit: int = UNLIMITED) -> "UsageEntry":
        return cls(current=current, limit=limit, percent=round(100 * current / limit, 4) if limit else 0.0)


class StorageUsage(Schema):
    datasets: UsageEntry
    models: UsageEntry
    images: UsageEntry
    deployments: UsageEntry
    storage: UsageEntry = Field(description="Bytes against the plan's quota")


class CategoryUsage(Schema):
    bytes: int
    count: int


class ByCategory(Schema):
    datasets: CategoryUsage
    models: CategoryUsage
    exports: CategoryUsage


class TopItem(Schema):
    """One of the account's largest items (``?details=true``): a dataset (its images) or a model (its weights)."""

    id: str = Field(alias="_id")
    name: str
    slug: str
    size_bytes: int
    type: Literal["dataset", "model"]
    parent_name: str | None = Field(default=None, description="A model's project")
    parent_slug: str | None = None


class StorageBreakdown(Schema):
    by_category: ByCategory
    top_items: list[TopItem] = Field(description="The largest items, largest first; only with ?details=true")


class StorageResponse(SeedResponse[StorageTotals]):
    tier: str
    username: str
    region: str
    updated_at: datetime
    usage: StorageUsage
    breakdown: StorageBreakdown
