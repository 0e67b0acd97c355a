"""Durable jobs: one row per training run or export; the database is the source of truth for each."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from yolostack.core.timeutil import utcnow
from yolostack.tables.base import IdMixin, Table, TimestampMixin


class JobKind(StrEnum):
    training = "training"
    export = "export"


class JobStatus(StrEnum):
    queued = "queued"
    starting = "starting"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def is_active(self) -> bool:
        return self in (JobStatus.queued, JobStatus.starting, JobStatus.running)


ACTIVE_STATUSES = (JobStatus.queued, JobStatus.starting, JobStatus.running)
FINISHED_STATUSES = (JobStatus.completed, JobStatus.failed, JobStatus.cancelled)


class Executor(StrEnum):
    local = "local"  # a child process of this server
    ray = "ray"  # a Ray job on the cluster at YOLOSTACK_RAY_ADDRESS
    remote = "remote"  # a user's own training run that reports telemetry; nothing of ours runs it


class Job(IdMixin, TimestampMixin, Table):
    """``job_…`` (training) or ``export_…``; ``spec`` says what to run, ``progress`` how far it got."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_created", "status", "created_at"),)

    owner_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    kind: Mapped[JobKind] = mapped_column(String(16))
    status: Mapped[JobStatus] = mapped_column(String(16), default=JobStatus.queued)
    executor: Mapped[Executor] = mapped_column(String(16), default=Executor.local)
    # The executor's handle on the running work: a pid, a Ray submission id.
    handle: Mapped[str | None] = mapped_column(String(256), default=None)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    gpu_type: Mapped[str | None] = mapped_column(String(64), default=None)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    # The telemetry ``runId`` the trainer echoes back; a stale one belongs to a superseded instance.
    run_id: Mapped[int | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    # An export's artifact.
    file_key: Mapped[str | None] = mapped_column(String(512), default=None)
    file_name: Mapped[str | None] = mapped_column(String(256), default=None)
    file_size: Mapped[int | None] = mapped_column(BigInteger, default=None)


class JobLog(Table):
    """Console output of a job, in the order it arrived: the trainer's chunks, the runner's own lines."""

    __tablename__ = "job_logs"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
