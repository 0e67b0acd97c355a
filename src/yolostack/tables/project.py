from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from yolostack.tables.base import IdMixin, Table, TimestampMixin, TrashableMixin


class Visibility(StrEnum):
    private = "private"
    public = "public"


class Project(IdMixin, TimestampMixin, TrashableMixin, Table):
    __tablename__ = "projects"
    # Slugs are unique among live rows only, so a trashed item never blocks re-creating its slug.
    __table_args__ = (
        Index(
            "uq_projects_live_slug",
            "owner_id",
            "slug",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    owner_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    visibility: Mapped[Visibility] = mapped_column(String(16), default=Visibility.private)
    license: Mapped[str | None] = mapped_column(String(64), default=None)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
