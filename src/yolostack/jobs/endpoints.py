"""``/api/jobs/{jobId}``: a job's state and logs for its owner, and the runner's callbacks (job key only)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from yolostack.auth.dependencies import AuthContext, JobsAuth
from yolostack.auth.scopes import Scope
from yolostack.core.db import DbSession
from yolostack.core.errors import BadRequest, Forbidden, NotFound
from yolostack.core.ids import new_id
from yolostack.core.responses import Body, both
from yolostack.core.timeutil import isoformat, utcnow
from yolostack.core.validation import INT32_MAX
from yolostack.jobs.repository import JobRepository
from yolostack.jobs.schemas import ArtifactStaged, ArtifactUpload, JobEvent, JobEventReply, JobLogs, JobRead
from yolostack.jobs.service import Outcome, error_view, training_view
from yolostack.jobs.service import jobs as job_service
from yolostack.storage.service import Files
from yolostack.tables import ACTIVE_STATUSES, Job, JobKind, JobStatus, UploadSession, UploadStatus

router = APIRouter(tags=["jobs"])


def job_view(job: Job) -> dict[str, Any]:
    if job.kind == JobKind.training:
        return {"kind": "training", "modelId": job.model_id, **training_view(job)}
    return {
        "id": job.id,
        "kind": "export",
        "modelId": job.model_id,
        "status": str(job.status),
        "format": job.spec.get("format"),
        "phase": (job.progress or {}).get("phase"),
        "error": error_view(job),
        "attempts": job.attempts,
        "createdAt": isoformat(job.created_at),
        "updatedAt": isoformat(job.updated_at),
    }


async def _owned(session: DbSession, auth: AuthContext, job_id: str) -> Job:
    job = await JobRepository(session).get_owned(auth.account_id, job_id)
    if job is None:
        raise NotFound(f"job '{job_id}' not found")
    auth.require(Scope.training if job.kind == JobKind.training else Scope.exports)
    return job


async def _runner_job(session: DbSession, auth: AuthContext, job_id: str) -> Job:
    """Only the job's own key may report for it."""
    job = await _owned(session, auth, job_id)
    if auth.key.job_id != job.id:
        raise Forbidden("only the job's runner may report its progress")
    return job


@router.get("/{job_id}", response_model=JobRead)
async def get_job(auth: JobsAuth, session: DbSession, job_id: str) -> Body:
    """A training run, an export, or a dataset ingest (the ``jobId`` its ingest answered)."""
    ingest = await job_service.ingest_view(session, auth.account_id, job_id)
    if ingest is not None:
        auth.require(Scope.datasets)
        return both(ingest, job=ingest)
    view = job_view(await _owned(session, auth, job_id))
    return both(view, job=view)


@router.get("/{job_id}/logs", response_model=JobLogs)
async def get_job_logs(
    auth: JobsAuth,
    session: DbSession,
    job_id: str,
    after: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Body:
    """Console output in order; pass the last ``id`` as ``after`` to follow along."""
    job = await _owned(session, auth, job_id)
    rows = await JobRepository(session).logs(job.id, after=after, limit=limit)
    entries = [
        {"id": row.id, "source": row.source, "content": row.content, "timestamp": isoformat(row.created_at)}
        for row in rows
    ]
    return both(entries, entries=entries, nextAfter=rows[-1].id if rows else after)


@router.post("/{job_id}/events", response_model=JobEventReply)
async def report_job_event(auth: JobsAuth, session: DbSession, files: Files, job_id: str, body: JobEvent) -> Body:
    """The runner's phases; ``completed`` (exports) attaches the uploaded artifact, ``failed`` records why."""
    job = await _runner_job(session, auth, job_id)
    phase = str(body.phase)
    if job.status not in ACTIVE_STATUSES:
        ended: dict[str, Any] = {"cancelled": job.status == JobStatus.cancelled, "status": str(job.status)}
        return both(ended, **ended)
    job.heartbeat_at = utcnow()
    if phase == "failed":
        message = (body.error or "the runner failed")[:2000]
        await JobRepository(session).add_log(job.id, "runner", message)
        await job_service.finish(session, job, Outcome(JobStatus.failed, message, "RUNNER_ERROR"))
    elif phase == "completed":
        await _complete_export(session, files, job, body.session_id)
    else:
        job.progress = {**(job.progress or {}), "phase": phase}
        await JobRepository(session).add_log(job.id, "runner", phase)
        if job.kind == JobKind.export:
            await job_service.mark_running(session, job)
    cancelled = job.cancel_requested or job.status == JobStatus.cancelled
    reply: dict[str, Any] = {"cancelled": cancelled, "status": str(job.status)}
    return both(reply, **reply)


@router.post("/{job_id}/artifact", response_model=ArtifactStaged)
async def stage_job_artifact(
    request: Request, auth: JobsAuth, session: DbSession, files: Files, job_id: str, body: ArtifactUpload
) -> Body:
    """A signed upload URL for an export's file (the runner PUTs it, then reports ``completed``)."""
    job = await _runner_job(session, auth, job_id)
    if job.kind != JobKind.export:
        raise BadRequest("only exports upload an artifact this way")
    filename = body.filename.rsplit("/", 1)[-1].strip()
    if not filename or filename.startswith("."):
        message = "filename must name a file (not a directory or a dot file)"
        raise BadRequest(message, details=[{"field": "filename", "message": message}])
    size = body.size
    ttl = request.app.state.settings.storage.upload_url_ttl_seconds
    upload_id = new_id("upload")
    upload = UploadSession(
        id=upload_id,
        account_id=job.owner_id,
        asset_type="exports",
        asset_id=job.id,
        filename=filename,
        content_type="application/octet-stream",
        declared_bytes=size,
        storage_key=f"uploads/{job.owner_id}/{upload_id}/{filename}",
        expires_at=utcnow() + timedelta(seconds=ttl),
    )
    session.add(upload)
    fields: dict[str, Any] = {"sessionId": upload.id, "uploadUrl": files.upload_url(upload.id, filename)}
    return both(fields, **fields)


async def _complete_export(session: DbSession, files: Files, job: Job, session_id: str | None) -> None:
    if job.kind != JobKind.export:
        raise BadRequest("training runs complete through their telemetry, not this event")
    upload = await session.get(UploadSession, session_id) if session_id else None
    if upload is None or upload.asset_id != job.id or upload.status != UploadStatus.uploaded:
        message = "sessionId must name this export's uploaded artifact"
        raise BadRequest(message, details=[{"field": "sessionId", "message": message}])
    key = f"models/{job.owner_id}/{job.model_id}/exports/{job.id}/{upload.filename}"
    await files.store.move(upload.storage_key, key)
    upload.status, upload.completed_at = UploadStatus.consumed, utcnow()
    await job_service.finish(
        session,
        job,
        Outcome(JobStatus.completed),
        file_key=key,
        file_name=upload.filename,
        file_size=upload.size,
        progress={**(job.progress or {}), "phase": "completed"},
    )
