from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

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
    id_: str = Field(serialization_alias="_id")
    name: str
    slug: str


class TrashItem(Schema):
    # The SDK's trash rows name their id ``_id``; the seed's read ``id``. Both are sent.
    underscore_id: str = Field(serialization_alias="_id")
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
