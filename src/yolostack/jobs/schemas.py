"""Jobs on the wire: a job's view and logs, and what its runner sends back (phases, an export's file)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from yolostack.core.responses import SeedResponse
from yolostack.core.schemas import RequestSchema, Schema
from yolostack.core.validation import NonNegativeInt64


class RunnerPhase(StrEnum):
    preparing = "preparing"
    downloading = "downloading"
    exporting = "exporting"
    uploading = "uploading"
    completed = "completed"
    failed = "failed"


class JobEvent(RequestSchema):
    """``POST /api/jobs/{jobId}/events``: ``completed`` names the staged artifact, ``failed`` says why."""

    phase: RunnerPhase
    error: str | None = Field(default=None, max_length=100_000, description="failed: what went wrong")
    session_id: str | None = Field(default=None, max_length=64, description="completed: the staged artifact")


class ArtifactUpload(RequestSchema):
    """``POST /api/jobs/{jobId}/artifact``: the export's file name (a path keeps only its last part)."""

    filename: str = Field(min_length=1, max_length=256)
    size: NonNegativeInt64 | None = Field(default=None, description="Bytes, when known")


class TrainingProgress(Schema):
    current_epoch: int
    total_epochs: int
    started_at: str | None
    completed_at: str | None
    percentage: float


class TrainingTiming(Schema):
    elapsed_ms: int
    time_per_epoch_ms: int
    eta_ms: int


class TrainingCompute(Schema):
    gpu_type: str | None
    gpu_display_name: str | None
    gpu_memory_gb: float | None


class JobError(Schema):
    message: str
    code: str | None = None
    timestamp: str | None = None


class TrainingJob(Schema):
    """The ``job`` of ``GET …/training`` (clients.md §1.4): what ``ul cloud train … watch`` polls."""

    id: str
    status: str = Field(description="queued, starting, running, completed, failed or cancelled")
    progress: TrainingProgress
    timing: TrainingTiming
    compute: TrainingCompute | None
    train_args: dict[str, Any] | None = Field(description="model, epochs, batch and imgsz of the run")
    epoch_metrics: dict[str, Any] | None = Field(description="The last epoch's metrics")
    error: JobError | None
    executor: str
    created_at: str | None
    updated_at: str | None


class TrainingJobView(TrainingJob):
    kind: Literal["training"]
    model_id: str | None


class ExportJobView(Schema):
    id: str
    kind: Literal["export"]
    model_id: str | None
    status: str
    format: str | None
    phase: str | None
    error: JobError | None
    attempts: int
    created_at: str | None
    updated_at: str | None


class IngestProgress(Schema):
    current: int = Field(description="Images imported so far")
    total: int = Field(description="Images in the upload (0 until it is read)")


class IngestJobView(Schema):
    """A dataset ingest, read by the ``jobId`` its ``POST …/ingest`` handed out (state of the dataset's row)."""

    id: str
    kind: Literal["ingest"]
    dataset_id: str
    status: str = Field(description="queued, running, completed or failed")
    phase: str | None = Field(description="queued, downloading, extracting, importing, completed or failed")
    progress: IngestProgress
    error: JobError | None
    attempts: int
    created_at: str | None
    updated_at: str | None


JobView = Annotated[TrainingJobView | ExportJobView | IngestJobView, Field(discriminator="kind")]


class JobRead(SeedResponse[JobView]):
    job: JobView


class JobLogEntry(Schema):
    id: int
    source: str
    content: str
    timestamp: str | None


class JobLogs(SeedResponse[list[JobLogEntry]]):
    entries: list[JobLogEntry]
    next_after: int = Field(description="Pass as after= to read what follows")


class JobEventState(Schema):
    cancelled: bool
    status: str


class JobEventReply(SeedResponse[JobEventState]):
    """Whether the runner should stop, and the job's status."""

    cancelled: bool
    status: str


class ArtifactStaging(Schema):
    session_id: str
    upload_url: str


class ArtifactStaged(SeedResponse[ArtifactStaging]):
    session_id: str
    upload_url: str
