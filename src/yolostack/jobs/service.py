"""Jobs: the short-lived keys runners call back with, the views the clients read, and every
transition with its side effects (model status, activity, outbound webhooks) recorded exactly once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from yolostack.activity.service import activity as activity_service
from yolostack.api_keys.service import api_key as api_key_service
from yolostack.auth.scopes import Scope
from yolostack.core.timeutil import isoformat, utcnow
from yolostack.jobs.repository import JobRepository
from yolostack.tables import (
    ACTIVE_STATUSES,
    Dataset,
    DatasetStatus,
    Job,
    JobKind,
    JobStatus,
    Model,
    ModelStatus,
)
from yolostack.webhooks.service import webhooks as webhook_service

JOB_KEY_SCOPES = (Scope.training, Scope.datasets, Scope.models, Scope.exports)
# A finished job's key keeps working a little longer: the trainer's late ``epoch_end`` and the final
# upload may still be on their way when the dispatcher sees the process exit.
KEY_AFTERLIFE = timedelta(minutes=5)
MODEL_STATUS = {
    JobStatus.queued: ModelStatus.starting,
    JobStatus.starting: ModelStatus.starting,
    JobStatus.running: ModelStatus.running,
    JobStatus.completed: ModelStatus.completed,
    JobStatus.failed: ModelStatus.failed,
    JobStatus.cancelled: ModelStatus.cancelled,
}


@dataclass(frozen=True)
class Outcome:
    status: JobStatus
    error: str | None = None
    code: str | None = None


class JobService:
    async def issue_key(self, session: AsyncSession, job: Job, lifetime: timedelta) -> str:
        """A key for the runner only: scoped, expiring, hidden from the key list; its plaintext is never stored."""
        scopes = [str(scope) for scope in JOB_KEY_SCOPES]
        return await api_key_service.issue_for_job(session, job.owner_id, job.id, scopes, utcnow() + lifetime)

    async def add_log(self, session: AsyncSession, job_id: str, source: str, content: str) -> None:
        await JobRepository(session).add_log(job_id, source, content)

    async def ingest_view(self, session: AsyncSession, owner_id: str, job_id: str) -> dict[str, Any] | None:
        """The view of a dataset ingest's ``jobId`` (None when it names no ingest of the caller's)."""
        repository = JobRepository(session)
        dataset = await repository.ingest_owned(owner_id, job_id)
        if dataset is not None:
            return ingest_view(dataset)
        return await repository.ended_ingest_owned(owner_id, job_id)

    async def mark_running(self, session: AsyncSession, job: Job) -> bool:
        now = utcnow()
        changed = await JobRepository(session).transition(
            job.id,
            (JobStatus.queued, JobStatus.starting),
            {"status": JobStatus.running, "started_at": job.started_at or now, "heartbeat_at": now},
        )
        if changed:
            await self._sync_model(session, job)
        return changed

    async def finish(self, session: AsyncSession, job: Job, outcome: Outcome, **values: Any) -> bool:
        """End an active job once; the side effects run only for the call that ended it."""
        now = utcnow()
        changed = await JobRepository(session).transition(
            job.id,
            ACTIVE_STATUSES,
            {
                "status": outcome.status,
                "error": outcome.error,
                "error_code": outcome.code,
                "completed_at": now,
                "heartbeat_at": now,
                **values,
            },
        )
        if not changed:
            return False
        await self._expire_keys(session, job.id, now + KEY_AFTERLIFE)
        await self._sync_model(session, job)
        await self._announce(session, job)
        return True

    async def request_cancel(self, session: AsyncSession, job: Job) -> bool:
        cancelled = await self.finish(
            session, job, Outcome(JobStatus.cancelled, "cancelled by the user", "CANCELLED"), cancel_requested=True
        )
        return cancelled

    async def cancel_all(self, session: AsyncSession, model_id: str, reason: str) -> int:
        """Cancel every active job of a model (it is being deleted)."""
        cancelled = 0
        for job in await JobRepository(session).active_for_model(model_id):
            outcome = Outcome(JobStatus.cancelled, reason, "CANCELLED")
            cancelled += await self.finish(session, job, outcome, cancel_requested=True)
        return cancelled

    async def _expire_keys(self, session: AsyncSession, job_id: str, when: datetime) -> None:
        await api_key_service.expire_job_keys(session, job_id, when)

    async def _sync_model(self, session: AsyncSession, job: Job) -> None:
        if job.kind != JobKind.training:
            return
        model = await session.get(Model, job.model_id)
        if model is not None:
            model.status = MODEL_STATUS[JobStatus(job.status)]

    async def _announce(self, session: AsyncSession, job: Job) -> None:
        model = await session.get(Model, job.model_id)
        name = model.name if model is not None else job.model_id
        what = "Training" if job.kind == JobKind.training else f"Export to {job.spec.get('format')}"
        status = JobStatus(job.status)
        message = f"{what} of model '{name}' {status.value}"
        if job.error and status == JobStatus.failed:
            message += f": {job.error}"
        await activity_service.record(
            session,
            job.owner_id,
            f"{job.kind}.{status.value}",
            resource_type="model",
            resource_id=job.model_id,
            resource_name=name,
            message=message,
            details={"jobId": job.id, **({"code": job.error_code} if job.error_code else {})},
        )
        event = _webhook_event(job)
        if event is not None:
            await webhook_service.emit(session, job.owner_id, event, webhook_data(job, model))

    async def announce_start(self, session: AsyncSession, job: Job, model: Model) -> None:
        await activity_service.record(
            session,
            job.owner_id,
            "training.started",
            resource_type="model",
            resource_id=model.id,
            resource_name=model.name,
            message=f"Training of model '{model.name}' started",
            details={"jobId": job.id},
        )
        await webhook_service.emit(session, job.owner_id, "training.started", webhook_data(job, model))

    async def announce_epoch(self, session: AsyncSession, job: Job, model: Model) -> None:
        await webhook_service.emit(session, job.owner_id, "training.epoch", webhook_data(job, model))


def wake_dispatcher(request: Request) -> None:
    """Start the jobs just queued now rather than at the dispatcher's next round (call it after the commit)."""
    task = getattr(request.app.state, "dispatch_task", None)
    if task is not None:
        task.wake()


def _webhook_event(job: Job) -> str | None:
    if job.kind == JobKind.training and job.status in (JobStatus.completed, JobStatus.failed):
        return f"training.{job.status}"
    if job.kind == JobKind.export and job.status == JobStatus.completed:
        return "export.completed"
    return None


def webhook_data(job: Job, model: Model | None) -> dict[str, Any]:
    progress = job.progress or {}
    data: dict[str, Any] = {
        "jobId": job.id,
        "modelId": job.model_id,
        "modelName": model.name if model is not None else None,
        "status": str(job.status),
    }
    if job.kind == JobKind.training:
        data |= {
            "epoch": progress.get("currentEpoch", 0),
            "totalEpochs": progress.get("totalEpochs"),
            "metrics": progress.get("epochMetrics"),
        }
    else:
        data |= {"exportId": job.id, "format": job.spec.get("format"), "size": job.file_size}
    if job.error:
        data["error"] = {"message": job.error, "code": job.error_code}
    return data


def error_view(job: Job) -> dict[str, Any] | None:
    if job.error is None or job.status == JobStatus.completed:
        return None
    return {"message": job.error, "code": job.error_code, "timestamp": isoformat(job.completed_at or job.updated_at)}


def training_view(job: Job) -> dict[str, Any]:
    """The ``job`` object of ``GET …/training`` (clients.md §1.4)."""
    progress = job.progress or {}
    current, total = int(progress.get("currentEpoch") or 0), int(progress.get("totalEpochs") or 0)
    end = job.completed_at or utcnow()
    elapsed_ms = int((end - job.started_at).total_seconds() * 1000) if job.started_at else 0
    per_epoch = elapsed_ms // current if current else 0
    args = job.spec.get("trainArgs") or {}
    return {
        "id": job.id,
        "status": str(job.status),
        "progress": {
            "currentEpoch": current,
            "totalEpochs": total,
            "startedAt": isoformat(job.started_at),
            "completedAt": isoformat(job.completed_at),
            "percentage": round(100 * current / total, 1) if total else 0,
        },
        "timing": {
            "elapsedMs": elapsed_ms,
            "timePerEpochMs": per_epoch,
            "etaMs": per_epoch * max(total - current, 0) if job.status in ACTIVE_STATUSES else 0,
        },
        "compute": {"gpuType": job.gpu_type, "gpuDisplayName": job.gpu_type, "gpuMemoryGb": None}
        if job.gpu_type
        else None,
        "trainArgs": {key: args[key] for key in ("model", "epochs", "batch", "imgsz") if key in args} or None,
        "epochMetrics": progress.get("epochMetrics"),
        "error": error_view(job),
        "executor": str(job.executor),
        "createdAt": isoformat(job.created_at),
        "updatedAt": isoformat(job.updated_at),
    }


def ingest_status(dataset: Dataset) -> JobStatus:
    """A dataset's last ingest as a job status: waiting for a worker, held by one, or ended."""
    if dataset.status == DatasetStatus.ready:
        return JobStatus.completed
    if dataset.status == DatasetStatus.failed:
        return JobStatus.failed
    return JobStatus.running if dataset.ingest_lease_until is not None else JobStatus.queued


def ingest_view(dataset: Dataset) -> dict[str, Any]:
    """The ``job`` of ``GET /api/jobs/{jobId}`` for the ``jobId`` an ingest handed out (its dataset's row)."""
    status = ingest_status(dataset)
    request = dataset.ingest or {}
    progress = dataset.processing_progress or {}
    current, total = int(progress.get("current") or 0), int(progress.get("total") or 0)
    if status == JobStatus.completed:
        current = total = int(request.get("images") or 0)
    error = None
    if status == JobStatus.failed:
        failure = dataset.processing_error or {}
        message = str(failure.get("message") or "the ingest failed")
        error = {"message": message, "code": "INGEST_FAILED", "timestamp": failure.get("timestamp")}
    return {
        "id": dataset.ingest_job_id,
        "kind": "ingest",
        "datasetId": dataset.id,
        "status": str(status),
        "phase": str(status) if status in (JobStatus.completed, JobStatus.failed) else progress.get("phase"),
        "progress": {"current": current, "total": total},
        "error": error,
        "attempts": dataset.ingest_attempts,
        "createdAt": request.get("queuedAt"),
        "updatedAt": request.get("endedAt") or isoformat(dataset.updated_at),
    }


jobs = JobService()
