from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from yolostack.core.timeutil import utcnow
from yolostack.tables.base import IdMixin, Table, TimestampMixin, TrashableMixin
from yolostack.tables.project import Visibility


class DatasetStatus(StrEnum):
    ready = "ready"
    processing = "processing"
    failed = "failed"


class Dataset(IdMixin, TimestampMixin, TrashableMixin, Table):
    __tablename__ = "datasets"
    # Slugs are unique among an owner's live datasets; a trashed one never blocks re-creating its slug.
    __table_args__ = (
        Index(
            "uq_datasets_live_slug",
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
    task: Mapped[str] = mapped_column(String(16), default="detect")
    visibility: Mapped[Visibility] = mapped_column(String(16), default=Visibility.private)
    license: Mapped[str | None] = mapped_column(String(64), default=None)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    # {"0": "person", ...}: the NDJSON header's shape, which keeps gaps in class ids honest.
    class_names: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    kpt_shape: Mapped[list[int] | None] = mapped_column(JSON, default=None)
    flip_idx: Mapped[list[int] | None] = mapped_column(JSON, default=None)
    status: Mapped[DatasetStatus] = mapped_column(String(16), default=DatasetStatus.ready)
    processing_error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    processing_progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # The last ingest: {jobId, sessionId, targetSplit, conflictPolicy, queuedAt}. Kept on the row so that
    # an ingest interrupted by a restart is picked up again, and its outcome read back as a job.
    ingest: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # The ``jobId`` the ingest endpoint handed out for the last ingest (``GET /api/jobs/{jobId}``).
    ingest_job_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    # The ingest's lease (worker/leases.py): the worker running it renews it while it works; a lease that
    # ran out (a crashed server) lets another worker take the ingest over, up to a few attempts.
    ingest_lease_until: Mapped[datetime | None] = mapped_column(default=None)
    # Who holds it (``core.processes.owner_tag()``): a killed server's ingest is taken over at once.
    ingest_lease_holder: Mapped[str | None] = mapped_column(String(255), default=None)
    ingest_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped on every change of images or labels; the NDJSON export is cached per version.
    version: Mapped[int] = mapped_column(Integer, default=1)


class DatasetIngest(Table):
    """An ended ingest of a dataset, kept when the next one is queued (the dataset's row holds only its last
    ingest), so every ``jobId`` the ingest endpoint handed out still reads back at ``GET /api/jobs/{jobId}``."""

    __tablename__ = "dataset_ingests"

    job_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    # The job as ``GET /api/jobs/{jobId}`` answered it when the next ingest was queued (it had ended).
    view: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
