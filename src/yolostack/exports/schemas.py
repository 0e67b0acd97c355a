from __future__ import annotations

from typing import Any

from pydantic import Field

from yolostack.core.responses import ClientResponse, SeedResponse
from yolostack.core.schemas import RequestSchema, Schema


class ExportCreate(RequestSchema):
    """The clients' ``{format, gpuType?, args?}`` (the model is in their path)."""

    format: str = Field(
        min_length=1,
        max_length=64,
        description="onnx, torchscript, openvino, engine (tensorrt), coreml, litert (tflite), saved_model, …",
    )
    args: dict[str, Any] | None = Field(default=None, description="ultralytics export arguments (imgsz, quantize…)")
    gpu_type: str | None = Field(default=None, max_length=64, description="A GPU to export on (engine needs one)")


class SeedExportCreate(ExportCreate):
    """The seed's ``{modelId, format}`` (plus ``args`` and ``gpuType``)."""

    model_id: str = Field(min_length=1, max_length=64)


class ExportFile(Schema):
    size: int | None
    download_url: str
    download_filename: str


class ExportError(Schema):
    message: str
    code: str | None = None
    timestamp: str | None = None


class ExportSchema(Schema):
    """``Export`` as the SDK and the ``ul`` CLI read it (clients.md §1.4), plus the seed's ``modelId``."""

    id: str
    model_id: str
    status: str
    format: str
    # The name the caller sent (``tensorrt``, ``tflite``…) when it differs from ultralytics' ``format``.
    requested_format: str
    args: dict[str, Any] | None
    gpu_type: str | None
    # downloading, exporting, uploading, completed: what the runner is doing now.
    phase: str | None
    file: ExportFile | None
    error: ExportError | None
    attempts: int
    # ISO 8601 with ``Z``, as the job views write them.
    started_at: str | None
    completed_at: str | None
    created_at: str | None
    updated_at: str | None


class ExportAction(Schema):
    id: str
    action: str = Field(description="cancelled (it was running) or deleted (with its file)")


class ExportCreated(SeedResponse[ExportSchema]):
    """Both dialects: the seed's ``data`` and what ``ul cloud export`` reads (``id, status, gpuType?``)."""

    id: str
    format: str
    status: str
    gpu_type: str | None
    region: str


class ExportRead(SeedResponse[ExportSchema]):
    export: ExportSchema


class ExportRemoved(SeedResponse[ExportAction]):
    action: str


class ExportList(ClientResponse):
    exports: list[ExportSchema]
    region: str


class ExportQueued(ClientResponse):
    id: str
    format: str
    status: str
    gpu_type: str | None
    region: str


class ExportHolder(ClientResponse):
    """What ``ul cloud export`` polls: ``export.status``, then ``export.file.downloadUrl``."""

    export: ExportSchema


class ExportDeleted(ClientResponse):
    action: str = Field(description="cancelled or deleted")
