from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, text
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
