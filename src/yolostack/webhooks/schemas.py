from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from yolostack.core.responses import SeedPage
from yolostack.core.schemas import RequestSchema, Schema
from yolostack.tables import DeliveryStatus


class WebhookEvent(StrEnum):
    """The events a webhook can subscribe to (seed: "Веб-хуки")."""

    training_started = "training.started"
    training_epoch = "training.epoch"
    training_completed = "training.completed"
    training_failed = "training.failed"
    export_completed = "export.completed"


class WebhookCreate(RequestSchema):
    url: str = Field(min_length=1, max_length=2048)
    # Plain strings: an unknown event name is the service's 400, naming the events that exist.
    events: list[str] = Field(max_length=100)
    description: str | None = Field(default=None, max_length=512)


class WebhookSchema(Schema):
    id: str
    url: str
    events: list[str]
    description: str | None
    is_active: bool
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookSchema):
    """Returned once, at creation: the only time the signing secret is shown."""

    secret: str


class WebhookAttemptSchema(Schema):
    number: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class WebhookDeliverySchema(Schema):
    id: str
    webhook_id: str
    event: str
    # The ``webhook-id`` header of every attempt of this delivery.
    message_id: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]
    attempts: list[WebhookAttemptSchema]


class WebhookDeleted(Schema):
    id: str
    deleted: bool


class WebhookPage(SeedPage[WebhookSchema]):
    webhooks: list[WebhookSchema]
    total: int
