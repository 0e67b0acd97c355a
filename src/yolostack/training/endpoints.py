"""Training routes: start (seed and client bodies), status and cancel (by id and by slug), and the
trainer's inbound telemetry, which is never throttled by the general rate limit (spec §4)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.auth.dependencies import AuthContext, Authenticator
from yolostack.auth.scopes import Scope
from yolostack.config import Settings
from yolostack.core.db import DbSession
from yolostack.core.errors import NotFound
from yolostack.core.files import on_commit
from yolostack.core.responses import Body, both, errors, link
from yolostack.jobs.service import jobs as job_service
from yolostack.jobs.service import training_view, wake_dispatcher
from yolostack.models.service import ModelRow
from yolostack.models.service import model as model_service
from yolostack.storage.service import Files
from yolostack.tables import ACTIVE_STATUSES, Executor, JobStatus
from yolostack.training.repository import TrainingRepository
from yolostack.training.schemas import (
    CheckpointUpload,
    CheckpointUploadUrl,
    GpuAvailability,
    TelemetryReply,
    TrainingCancelled,
    TrainingMetrics,
    TrainingStart,
    TrainingStarted,
    TrainingStatus,
)
from yolostack.training.service import gpu_count
from yolostack.training.service import training as training_service
from yolostack.training.telemetry import telemetry

TrainingAuth = Annotated[AuthContext, Depends(Authenticator(Scope.training))]
TelemetryAuth = Annotated[AuthContext, Depends(Authenticator(Scope.training, rate_limited=False))]

router = APIRouter(tags=["training"])
models_router = APIRouter(tags=["training"])
telemetry_router = APIRouter(tags=["training"])


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


_STARTED_LINKS = {
    "GetTrainingJob": link("get_job", job_id="$response.body#/jobId"),
    "GetTrainingJobLogs": link("get_job_logs", job_id="$response.body#/jobId"),
    "GetTrainingById": link("get_training_by_id", model_id="$response.body#/modelId"),
    "CancelTrainingById": link("cancel_training_by_id", model_id="$response.body#/modelId"),
}


@router.post("/start", response_model=TrainingStarted, responses={200: {"links": _STARTED_LINKS}, **errors(400, 409)})
async def start_training(request: Request, auth: TrainingAuth, session: DbSession, body: TrainingStart) -> Body:
    """Queue a training run: seed ``{modelId, datasetId, epochs, imageSize, gpuType}`` or client
    ``{modelId, trainArgs, gpuType}``; it runs on this server's workers (or the Ray cluster)."""
    row = await model_service.get_by_id(session, auth.account, body.model_id)
    settings = _settings(request)
    executor = Executor(settings.jobs.executor)
    job = await training_service.start(session, auth.account, row, body, executor=executor)
    on_commit(session, lambda: wake_dispatcher(request))
    fields: dict[str, Any] = {
        "modelId": row[0].id,
        "jobId": job.id,
        "status": "starting",
        "gpuType": job.gpu_type or "cpu",
        "executor": str(executor),
        # Self-hosted: the compute is yours, so there is nothing to pay.
        "estimatedCost": {"pricePerHour": 0.0, "gpuMemoryGb": None},
        "billing": {"estimatedCostCents": 0, "estimatedCostDisplay": "$0.00", "balanceCents": 0},
    }
    return both({**fields, "job": training_view(job)}, **fields)


@router.get("/gpu-availability", response_model=GpuAvailability)
async def gpu_availability(request: Request, _: TrainingAuth) -> Body:
    """What this server's executor can run on."""
    settings = _settings(request)
    gpus = gpu_count() if settings.jobs.executor == "local" else None
    fields: dict[str, Any] = {
        "executor": settings.jobs.executor,
        "cpu": {"available": True, "cpusPerJob": settings.jobs.cpus_per_job},
        "gpus": {"count": gpus, "available": bool(gpus)} if gpus is not None else {"count": None, "available": None},
        "maxConcurrentJobs": settings.jobs.max_concurrent,
    }
    return both(fields, **fields)


async def _status(session: AsyncSession, row: ModelRow) -> Body:
    view = await training_service.latest_view(session, row)
    return both({"job": view}, job=view)


async def _cancel(request: Request, session: AsyncSession, auth: AuthContext, row: ModelRow) -> Body:
    model, _, owner = row
    if owner.id != auth.account_id:
        raise NotFound(f"model '{model.id}' not found")
    job = await TrainingRepository(session).latest_training(model.id)
    if job is None:
        raise NotFound(f"model '{model.slug}' has no training run")
    fields: dict[str, Any] = {"status": str(job.status), "jobId": job.id}
    if job.status in ACTIVE_STATUSES:
        await job_service.request_cancel(session, job)
        fields["status"] = str(JobStatus.cancelled)
        on_commit(session, lambda: wake_dispatcher(request))
    else:
        fields["warning"] = f"training had already {job.status}"
    return both(fields, **fields)


@models_router.get("/{model_id}/training", response_model=TrainingStatus)
async def get_training_by_id(auth: TrainingAuth, session: DbSession, model_id: str) -> Body:
    """The model's latest training run (seed), ``{job: null}`` when it never trained."""
    return await _status(session, await model_service.get_by_id(session, auth.account, model_id))


@models_router.delete("/{model_id}/training", response_model=TrainingCancelled, response_model_exclude_unset=True)
async def cancel_training_by_id(request: Request, auth: TrainingAuth, session: DbSession, model_id: str) -> Body:
    """Cancel the run: the trainer stops at its next epoch end (seed)."""
    return await _cancel(request, session, auth, await model_service.get_by_id(session, auth.account, model_id))


@models_router.get("/{owner}/{project}/{model}/training", response_model=TrainingStatus)
async def get_training(auth: TrainingAuth, session: DbSession, owner: str, project: str, model: str) -> Body:
    """What ``ul cloud train … watch`` polls every 5 s."""
    return await _status(session, await model_service.get_by_slug(session, auth.account, owner, project, model))


@models_router.delete(
    "/{owner}/{project}/{model}/training", response_model=TrainingCancelled, response_model_exclude_unset=True
)
async def cancel_training(
    request: Request, auth: TrainingAuth, session: DbSession, owner: str, project: str, model: str
) -> Body:
    row = await model_service.get_by_slug(session, auth.account, owner, project, model)
    return await _cancel(request, session, auth, row)


@telemetry_router.post("/training/metrics", response_model=TelemetryReply, response_model_exclude_unset=True)
async def receive_training_metrics(
    request: Request, auth: TelemetryAuth, session: DbSession, files: Files, body: TrainingMetrics
) -> Body:
    """The trainer's events (clients.md §2.6); replies carry ``modelId``, ``runId`` and ``cancelled``."""
    reply = await telemetry.receive(session, files.store, auth, body, _settings(request).base_url)
    if session.info.pop("wake_conversion", False):
        on_commit(session, request.app.state.conversion_task.wake)
    return {"success": True, **reply}


@telemetry_router.post("/models/upload", response_model=CheckpointUploadUrl)
async def create_checkpoint_upload(
    request: Request, auth: TelemetryAuth, session: DbSession, files: Files, body: CheckpointUpload
) -> Body:
    """A signed URL for the trainer's checkpoint; ``checkpoint_saved`` with ``gcsPath`` then attaches it."""
    ttl = _settings(request).storage.upload_url_ttl_seconds
    model, session_id, filename = await telemetry.upload_url(session, auth, body, ttl=ttl)
    return {
        "success": True,
        "uploadUrl": files.upload_url(session_id, filename),
        "gcsPath": session_id,
        "uploadPath": session_id,
        "modelId": model.id,
        "headers": {"Content-Type": "application/octet-stream"},
    }
