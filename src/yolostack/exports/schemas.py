from __future__ import annotations

from typing import Any

from pydantic import Field

from yolostack.core.schemas import RequestSchema, Schema


class ExportCreate(RequestSchema):
    """Seed ``{modelId, format}`` and the clients' ``{format, gpuType?, args?}`` (the model is in their path)."""

    model_id: str | None = None
    format: str = Field(min_length=1, max_length=64)
    args: dict[str, Any] | None = None
    gpu_type: str | None = Field(default=None, max_length=64)


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
