from datetime import datetime
from typing import Any

from pydantic import Field

from yolostack.core.responses import SeedPage, SeedResponse
from yolostack.core.schemas import RequestSchema, Schema


class ActivityEventSchema(Schema):
    id: str
    action: str
    resource_type: str
    resource_id: str | None
    resource_name: str | None
    message: str
    details: dict[str, Any]
    created_at: datetime
    seen_at: datetime | None
    archived_at: datetime | None


class ActivitySelection(RequestSchema):
    """Which events to mark: the listed ids, or every event when none are given."""

    event_ids: list[str] | None = Field(default=None, max_length=1000)
    ids: list[str] | None = Field(default=None, max_length=1000)
    all: bool = False

    def selected_ids(self) -> list[str] | None:
        if self.all:
            return None
        return self.event_ids if self.event_ids is not None else self.ids


class ActivityPage(SeedPage[ActivityEventSchema]):
    events: list[ActivityEventSchema]
    total: int
    unseen_count: int


class UpdatedCount(Schema):
    updated: int


class ActivityUpdated(SeedResponse[UpdatedCount], UpdatedCount):
    pass
