from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from yolostack.tables.base import IdMixin, Table, TimestampMixin, TrashableMixin
from yolostack.tables.project import Visibility


class ModelStatus(StrEnum):
    pending = "pending"
    untrained = "untrained"
    starting = "starting"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


class ServingStatus(StrEnum):
    """Where the model's weights are on their way to the inference engine."""

    none = "none"  # no weights yet
    pending = "pending"  # weights attached, conversion queued
    converting = "converting"
    ready = "ready"
    failed = "failed"


class Model(IdMixin, TimestampMixin, TrashableMixin, Table):
    """An ML model inside a project; its slug is unique within the project."""

    __tablename__ = "models"
    # Slugs are unique among live rows only, so a trashed item never blocks re-creating its slug.
    __table_args__ = (
        Index(
            "uq_models_live_slug",
            "project_id",
            "slug",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    owner_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    task: Mapped[str | None] = mapped_column(String(16), default=None)
    status: Mapped[ModelStatus] = mapped_column(String(16), default=ModelStatus.pending)
    visibility: Mapped[Visibility] = mapped_column(String(16), default=Visibility.private)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)

    train_args: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    epochs: Mapped[int | None] = mapped_column(default=None)
    # The checkpoint (.pt) as uploaded; it is only ever unpickled inside the conversion subprocess.
    weights_key: Mapped[str | None] = mapped_column(String(512), default=None)
    weights_name: Mapped[str | None] = mapped_column(String(256), default=None)
    weights_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    weights_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    # The converted serving artifacts (model.onnx, meta.json) under ``serving_key``; ``serving_info``
    # is meta.json: task, class names, image size, parameter count.
    serving_status: Mapped[ServingStatus] = mapped_column(String(16), default=ServingStatus.none, index=True)
    serving_error: Mapped[str | None] = mapped_column(Text, default=None)
    serving_key: Mapped[str | None] = mapped_column(String(512), default=None)
    serving_info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    serving_attempts: Mapped[int] = mapped_column(default=0)
    serving_lease_until: Mapped[datetime | None] = mapped_column(default=None)
    # Who holds the conversion's lease (``core.processes.owner_tag()``): a killed server's is taken over at once.
    serving_lease_holder: Mapped[str | None] = mapped_column(String(255), default=None)

    @property
    def has_weights(self) -> bool:
        return self.weights_key is not None
