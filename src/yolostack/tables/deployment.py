"""Dedicated deployments: a model served by its own replicas at its own URL.

The row is the desired state (``desired``: running or stopped, the model, min/max instances) plus what
the backend last reported (``status``); a reconciler in the serving process drives one toward the other.
``deployment_logs`` holds lifecycle events and one line per request; ``deployment_metrics`` one row per
deployment and minute (request and error counts, a latency histogram, instance count, CPU and memory).
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from yolostack.core.timeutil import utcnow
from yolostack.tables.base import IdMixin, Table, TimestampMixin


class DeploymentStatus(StrEnum):
    creating = "creating"
    deploying = "deploying"
    ready = "ready"
    stopping = "stopping"
    stopped = "stopped"
    failed = "failed"


class DesiredState(StrEnum):
    running = "running"
    stopped = "stopped"


class Severity(StrEnum):
    debug = "DEBUG"
    info = "INFO"
    warning = "WARNING"
    error = "ERROR"


class Deployment(IdMixin, TimestampMixin, Table):
    """``deployment_…``: addressed by id (seed) or by ``owner/slug`` (clients)."""

    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("owner_id", "slug"),)

    owner_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(256))
    region: Mapped[str] = mapped_column(String(64))
    # local: replica processes of the serving process; ray: a Ray Serve application.
    backend: Mapped[str] = mapped_column(String(16), default="local")
    status: Mapped[DeploymentStatus] = mapped_column(String(16), default=DeploymentStatus.creating)
    status_message: Mapped[str | None] = mapped_column(Text, default=None)
    desired: Mapped[DesiredState] = mapped_column(String(16), default=DesiredState.running)
    # Bumped by every start, replace and resize: the backend rolls out a new generation of replicas.
    generation: Mapped[int] = mapped_column(Integer, default=1)
    min_instances: Mapped[int] = mapped_column(Integer, default=1)
    max_instances: Mapped[int] = mapped_column(Integer, default=1)
    cpu: Mapped[int] = mapped_column(Integer, default=1)
    memory_gi: Mapped[int] = mapped_column(Integer, default=2)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    instances: Mapped[int] = mapped_column(Integer, default=0)
    ready_at: Mapped[datetime | None] = mapped_column(default=None)
    stopped_at: Mapped[datetime | None] = mapped_column(default=None)


class DeploymentLog(Table):
    """One lifecycle event or one request, newest last (``id`` orders them)."""

    __tablename__ = "deployment_logs"
    __table_args__ = (Index("ix_deployment_logs_deployment_id_id", "deployment_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    timestamp: Mapped[datetime] = mapped_column(default=utcnow)
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    http_request: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class DeploymentMetric(Table):
    """One deployment's traffic and resources in one minute (``bucket`` is the minute's start, UTC)."""

    __tablename__ = "deployment_metrics"
    __table_args__ = (UniqueConstraint("deployment_id", "bucket"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    bucket: Mapped[datetime] = mapped_column()
    requests: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    latency_sum_ms: Mapped[float] = mapped_column(Float, default=0.0)
    # Counts per latency bucket (deployments.telemetry.LATENCY_BOUNDS_MS): merged to get percentiles.
    latency_histogram: Mapped[list[int]] = mapped_column(JSON, default=list)
    instances: Mapped[int] = mapped_column(Integer, default=0)
    # Averages over the minute's samples, in percent of what the deployment was given (cpu, memoryGi).
    cpu_utilization: Mapped[float | None] = mapped_column(Float, default=None)
    memory_utilization: Mapped[float | None] = mapped_column(Float, default=None)
    samples: Mapped[int] = mapped_column(Integer, default=0)
