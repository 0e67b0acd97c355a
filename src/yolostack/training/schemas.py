"""Training request bodies: the seed's and the clients' start, and the trainer's inbound telemetry (clients.md §2.6)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator

from yolostack.core.responses import ClientResponse, SeedResponse
from yolostack.core.schemas import RequestSchema, Schema
from yolostack.core.validation import NonNegativeInt64
from yolostack.jobs.schemas import TrainingJob
from yolostack.uploads.schemas import check_file_name


class TrainingStart(RequestSchema):
    """Seed ``{modelId, datasetId, epochs, imageSize, gpuType}`` or client ``{modelId, trainArgs, gpuType?,
    captureDatasetVersion?}``; the seed's fields are folded into ``trainArgs`` (``imageSize`` is ``imgsz``)."""

    model_id: str = Field(min_length=1, max_length=64, description="The model to train (its id)")
    train_args: dict[str, Any] = Field(
        default_factory=dict,
        description="ultralytics training arguments (data: ul://owner/datasets/slug, epochs, imgsz, batch, model…)",
    )
    gpu_type: str | None = Field(default=None, max_length=64, description="A GPU to train on; omit (or cpu) for CPU")
    capture_dataset_version: bool | None = Field(default=None, description="Accepted; datasets are not versioned here")
    dataset_id: str | None = Field(default=None, max_length=64, description="Seed: the dataset (else trainArgs.data)")
    epochs: int | None = Field(default=None, description="Seed: trainArgs.epochs")
    image_size: int | None = Field(default=None, description="Seed: trainArgs.imgsz")
    batch_size: int | None = Field(default=None, description="Seed: trainArgs.batch")

    def args(self) -> dict[str, Any]:
        """``trainArgs`` with the seed's top-level fields folded in (they win, as they are the explicit ones)."""
        args = dict(self.train_args)
        for value, name in ((self.epochs, "epochs"), (self.image_size, "imgsz"), (self.batch_size, "batch")):
            if value is not None:
                args[name] = value
        return args


class TelemetryEvent(StrEnum):
    """The trainer's events; ``training_progress``, ``system_metrics`` and ``training_failed`` only from the SDK."""

    training_started = "training_started"
    training_progress = "training_progress"
    epoch_end = "epoch_end"
    system_metrics = "system_metrics"
    console_output = "console_output"
    checkpoint_saved = "checkpoint_saved"
    training_complete = "training_complete"
    training_failed = "training_failed"


class TrainingMetrics(RequestSchema):
    """``POST /api/webhooks/training/metrics``: ``modelId`` once ``training_started`` returned one, else
    ``project`` (``owner/slug``) and ``name`` register the run."""

    event: TelemetryEvent
    data: dict[str, Any] | None = Field(default=None, description="The event's payload (clients.md §2.6)")
    model_id: str | None = Field(default=None, max_length=64)
    project: str | None = Field(default=None, max_length=256, description="owner/project, when there is no modelId")
    name: str | None = Field(default=None, max_length=256, description="The run's name, when there is no modelId")


class CheckpointUpload(RequestSchema):
    """``POST /api/webhooks/models/upload``: where to PUT a checkpoint (``checkpoint_saved`` then attaches it)."""

    filename: str = Field(default="best.pt", min_length=1, max_length=256)
    model_id: str | None = Field(default=None, max_length=64)
    run_id: int | None = Field(default=None, description="The run training_started returned")
    project: str | None = Field(default=None, max_length=256, description="owner/project, when there is no modelId")
    name: str | None = Field(default=None, max_length=256, description="The run's name, when there is no modelId")
    size: NonNegativeInt64 | None = Field(default=None, description="Bytes (ultralytics never sends it)")

    @field_validator("filename")
    @classmethod
    def _stored_name(cls, value: str) -> str:
        """The trainer may send a path; its last part is the name the checkpoint is stored under."""
        check_file_name(value.rsplit("/", 1)[-1] or "best.pt")
        return value


class EstimatedCost(Schema):
    price_per_hour: float = Field(description="Always 0: the compute is this server's")
    gpu_memory_gb: float | None


class Billing(Schema):
    estimated_cost_cents: int
    estimated_cost_display: str
    balance_cents: int


class TrainingStartData(Schema):
    model_id: str
    job_id: str
    status: str = Field(description="starting")
    gpu_type: str = Field(description="The GPU asked for, or cpu")
    executor: str = Field(description="local or ray: where the run executes")
    estimated_cost: EstimatedCost
    billing: Billing
    job: TrainingJob


class TrainingStarted(SeedResponse[TrainingStartData]):
    """Both dialects: what ``ul cloud train`` prints (``gpuType``, ``estimatedCost``, ``billing``) at the top."""

    model_id: str
    job_id: str
    status: str
    gpu_type: str
    executor: str
    estimated_cost: EstimatedCost
    billing: Billing


class CpuAvailability(Schema):
    available: bool
    cpus_per_job: int


class GpuCount(Schema):
    count: int | None = Field(description="GPUs this server sees (null on a Ray cluster: the cluster decides)")
    available: bool | None


class GpuAvailabilityData(Schema):
    executor: str
    cpu: CpuAvailability
    gpus: GpuCount
    max_concurrent_jobs: int


class GpuAvailability(SeedResponse[GpuAvailabilityData]):
    executor: str
    cpu: CpuAvailability
    gpus: GpuCount
    max_concurrent_jobs: int


class TrainingJobHolder(Schema):
    job: TrainingJob | None


class TrainingStatus(SeedResponse[TrainingJobHolder]):
    """``{job: null}`` for a model that never trained."""

    job: TrainingJob | None


class CancelOutcome(Schema):
    status: str
    job_id: str
    warning: str | None = Field(default=None, description="Only when the run had already ended")


class TrainingCancelled(SeedResponse[CancelOutcome]):
    status: str
    job_id: str
    warning: str | None = Field(default=None, description="Only when the run had already ended")


class TelemetryReply(ClientResponse):
    """What the trainer reads back (clients.md §2.6); each key only where the event has it."""

    received: bool
    event: str
    mode: str | None = Field(default=None, description="remote (a user's own run) or cloud (this server's job)")
    model_id: str | None = Field(default=None, description="Send it with every later event")
    run_id: int | None = None
    model_slug: str | None = None
    model_url: str | None = None
    cancelled: bool | None = Field(default=None, description="true: stop training")
    ignored: str | None = Field(default=None, description="stale_instance: the event is of an older run")
    model_path: str | None = Field(default=None, description="checkpoint_saved: the attached checkpoint")
    weights_attached: bool | None = None
    size: int | None = None
    status: str | None = Field(default=None, description="training_complete/failed: the run's final status")


class CheckpointUploadUrl(ClientResponse):
    upload_url: str = Field(description="PUT the checkpoint's bytes here (no auth, application/octet-stream)")
    gcs_path: str = Field(description="Send as data.modelPath with checkpoint_saved")
    upload_path: str
    model_id: str
    headers: dict[str, str]
