from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from yolostack.core.responses import SeedPage, SeedResponse
from yolostack.core.schemas import RequestSchema, Schema

TrashType = Literal["project", "dataset", "model"]


class TrashItemRef(RequestSchema):
    """Restore / delete one item: the SDK sends ``{id, type}``, the seed ``{itemId, type}``."""

    id: str | None = Field(default=None, max_length=40)
    item_id: str | None = Field(default=None, max_length=40)
    type: TrashType

    @model_validator(mode="after")
    def _one_id(self) -> "TrashItemRef":
        if not (self.id or self.item_id):
            raise ValueError("give 'id' (or 'itemId') of the trashed item")
        return self

    @property
    def ref(self) -> str:
        return self.id or self.item_id or ""


class TrashDelete(RequestSchema):
    """``DELETE /api/trash`` body: ``{id, type}`` for one item or ``{all: true}`` for everything."""

    id: str | None = Field(default=None, max_length=40)
    item_id: str | None = Field(default=None, max_length=40)
    type: TrashType | None = None
    all: bool = False

    @model_validator(mode="after")
    def _one_or_all(self) -> "TrashDelete":
        if self.all == bool(self.id or self.item_id):
            raise ValueError("give either {id, type} or {all: true}")
        if not self.all and self.type is None:
            raise ValueError("'type' is required with 'id'")
        return self


class ParentProject(Schema):
    id_: str = Field(alias="_id")
    name: str
    slug: str


class TrashItem(Schema):
    # The SDK's trash rows name their id ``_id``; the seed's read ``id``. Both are sent.
    underscore_id: str = Field(alias="_id")
    id: str
    type: TrashType
    name: str
    slug: str
    trashed_at: datetime
    days_remaining: int
    cascaded_count: int
    parent_project: ParentProject | None = None
    size_bytes: int = 0


class TrashResource(Schema):
    id: str
    type: Literal["project", "model", "deployment", "dataset"]
    name: str


class TypeCount(Schema):
    count: int
    size_bytes: int | None = None


class TrashSummary(Schema):
    total_items: int
    total_size_bytes: int
    by_type: dict[str, TypeCount]


class TrashPage(SeedPage[TrashItem]):
    """The seed's page and the SDK's ``{items, total, page, limit, totalPages, summary, region}``."""

    items: list[TrashItem]
    total: int
    page: int
    limit: int
    total_pages: int
    summary: TrashSummary
    region: str


class TrashPreview(SeedResponse[list[TrashResource]]):
    """``?id=&type=``: what deleting that item forever takes with it."""

    resources: list[TrashResource]


class RestoredItem(Schema):
    id: str
    type: TrashType
    slug: str = Field(description="The slug it came back under (a new one when its old slug was taken)")
    restored_models: int


class TrashRestored(SeedResponse[RestoredItem]):
    restored_models: int
    slug: str


class DeletedItems(Schema):
    deleted_count: int
    cascaded_models: int


class TrashDeleted(SeedResponse[DeletedItems], DeletedItems):
    pass
