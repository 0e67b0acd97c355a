"""Inbound training telemetry (clients.md §2.6): the ``ultralytics`` trainer's events, event by event.

The same path serves a user's own ``model.train(project="owner/proj")`` and our own workers (which
run that very trainer with a job key), so there is one way progress arrives, not two.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.auth.dependencies import AuthContext
from yolostack.core.errors import BadRequest, NotFound
from yolostack.core.ids import is_id, new_id
from yolostack.core.slugs import slugify
from yolostack.core.timeutil import isoformat, utcnow
from yolostack.jobs.service import Outcome
from yolostack.jobs.service import jobs as job_service
from yolostack.models.service import model as model_service
from yolostack.projects.service import project as project_service
from yolostack.storage.backends import ObjectStore
from yolostack.tables import (
    ACTIVE_STATUSES,
    Account,
    Executor,
    Job,
    JobKind,
    JobStatus,
    Model,
    ModelStatus,
    Project,
    UploadStatus,
)
from yolostack.training.repository import TrainingRepository
from yolostack.training.schemas import CheckpointUpload, TrainingMetrics
from yolostack.uploads.service import upload as upload_service

# A training_started re-sent after a timed-out attempt arrives within this window with the same arguments.
RETRY_WINDOW = timedelta(minutes=10)
MAX_CONSOLE_CHARS = 64 * 1024


class TelemetryService:
    async def receive(
        self, session: AsyncSession, store: ObjectStore, auth: AuthContext, body: TrainingMetrics, base_url: str
    ) -> dict[str, Any]:
        event, data = str(body.event), body.data or {}
        reply: dict[str, Any] = {"received": True, "event": event}
        if event == "training_started":
            started, model = await self._started(session, auth, body, data)
            return reply | self._identity(started, model, base_url) | {"cancelled": _is_cancelled(started)}
        model, job = await self._current(session, auth, body.model_id)
        run_id = data.get("runId")
        if job is None or (isinstance(run_id, int) and job.run_id is not None and run_id != job.run_id):
            return reply | {"modelId": model.id, "ignored": "stale_instance"}
        reply |= {"modelId": model.id, "runId": job.run_id, "mode": _mode(job)}
        if job.status in ACTIVE_STATUSES:
            job.heartbeat_at = utcnow()
        handler = getattr(self, f"_on_{event}")
        extra: dict[str, Any] = await handler(session, store, job, model, data)
        return reply | extra | {"cancelled": _is_cancelled(job)}

    def _identity(self, job: Job, model: Model, base_url: str) -> dict[str, Any]:
        owner, project = job.spec["project"].split("/", 1)
        return {
            "modelId": model.id,
            "runId": job.run_id,
            "modelSlug": model.slug,
            "modelUrl": f"{base_url}/{owner}/{project}/{model.slug}",  # the model's page in the web app
            "mode": _mode(job),
        }

    # -- training_started -------------------------------------------------------------------------

    async def _started(
        self, session: AsyncSession, auth: AuthContext, body: TrainingMetrics, data: dict[str, Any]
    ) -> tuple[Job, Model]:
        if auth.key.job_id is not None:
            return await self._worker_started(session, auth, data)
        model_id = body.model_id
        if model_id:
            model, latest = await self._current(session, auth, model_id)  # resume: 404 when gone
            if latest is not None and latest.status in ACTIVE_STATUSES and latest.executor == Executor.remote:
                return latest, model
            project = await session.get(Project, model.project_id)
            assert project is not None
            return await self._new_run(session, auth.account, project, model, data), model
        project = await self._project(session, auth.account, body.project)
        slug = slugify(body.name or "train") or "train"
        model = await self._model(session, auth.account, project, slug, data)
        latest = await TrainingRepository(session).latest_training(model.id)
        if latest is not None and self._is_retry(latest, data):
            return latest, model
        return await self._new_run(session, auth.account, project, model, data), model

    async def _worker_started(
        self, session: AsyncSession, auth: AuthContext, data: dict[str, Any]
    ) -> tuple[Job, Model]:
        job = await session.get(Job, auth.key.job_id)
        model = None if job is None else await session.get(Model, job.model_id)
        if job is None or model is None:
            raise NotFound("this job no longer exists")
        if job.run_id is None:
            job.run_id = await TrainingRepository(session).next_run_id(model.id)
        total = _int(data.get("epochs")) or job.progress.get("totalEpochs")
        job.progress = {**job.progress, "totalEpochs": total, "device": data.get("device")}
        if await job_service.mark_running(session, job):
            await job_service.announce_start(session, job, model)
        return job, model

    def _is_retry(self, job: Job, data: dict[str, Any]) -> bool:
        """The same start sent again (its first attempt timed out): same arguments, no epoch yet, recent."""
        return (
            job.executor == Executor.remote
            and job.status in ACTIVE_STATUSES
            and int(job.progress.get("currentEpoch") or 0) == 0
            and not job.progress.get("epochMetrics")
            and job.spec.get("trainArgs") == data.get("trainArgs")
            and utcnow() - job.created_at < RETRY_WINDOW
        )

    async def _project(self, session: AsyncSession, account: Account, given: str | None) -> Project:
        """``owner/slug`` names a project of the caller's; any other path is a project of the caller's too."""
        text = str(given or "").strip()
        prefix, _, rest = text.partition("/")
        if rest and prefix == account.username:
            slug = slugify(rest.replace("/", "-"))
        else:
            slug = slugify(text.replace("/", "-"))
        if not slug:
            raise BadRequest("project must name a project, e.g. 'owner/my-project'")
        return await project_service.ensure_own(session, account, slug)

    async def _model(
        self, session: AsyncSession, account: Account, project: Project, slug: str, data: dict[str, Any]
    ) -> Model:
        """The model named ``slug`` when it is still empty (or this is a retried start), else ``slug-2``…"""
        for model in await project_service.models(session, account, project):
            if model.slug != slug:
                continue
            latest = await TrainingRepository(session).latest_training(model.id)
            if latest is None and not model.has_weights:
                return model
            if latest is not None and self._is_retry(latest, data):
                return model
        created = await model_service.insert(session, account, project, slug, slug, None)
        return created

    async def _new_run(
        self, session: AsyncSession, account: Account, project: Project, model: Model, data: dict[str, Any]
    ) -> Job:
        now = utcnow()
        args = data.get("trainArgs") if isinstance(data.get("trainArgs"), dict) else {}
        total = _int(data.get("epochs")) or _int((args or {}).get("epochs")) or 0
        job = Job(
            id=new_id("job"),
            owner_id=account.id,
            model_id=model.id,
            kind=JobKind.training,
            status=JobStatus.running,
            executor=Executor.remote,
            spec={"project": f"{account.username}/{project.slug}", "name": model.slug, "trainArgs": args},
            progress={"currentEpoch": 0, "totalEpochs": total, "device": data.get("device")},
            run_id=await TrainingRepository(session).next_run_id(model.id),
            started_at=now,
            heartbeat_at=now,
        )
        await TrainingRepository(session).add(job)
        model.status, model.epochs = ModelStatus.running, total or None
        model.train_args = args
        await job_service.announce_start(session, job, model)
        return job

    async def _current(self, session: AsyncSession, auth: AuthContext, model_id: Any) -> tuple[Model, Job | None]:
        if not isinstance(model_id, str) or not is_id(model_id):
            raise BadRequest("modelId is required for this event (training_started returns it)")
        model = await session.get(Model, model_id)
        if model is None or model.owner_id != auth.account_id or model.deleted_at is not None:
            raise NotFound(f"model '{model_id}' not found")
        if auth.key.job_id is not None:
            job = await session.get(Job, auth.key.job_id)
            return model, job if job is not None and job.model_id == model.id else None
        return model, await TrainingRepository(session).latest_training(model.id)

    # -- the other events -------------------------------------------------------------------------

    async def _on_console_output(
        self, session: AsyncSession, _store: ObjectStore, job: Job, _model: Model, data: dict[str, Any]
    ) -> dict[str, Any]:
        content = str(data.get("content") or "")[:MAX_CONSOLE_CHARS]
        if content:
            await job_service.add_log(session, job.id, "console", content)
        return {}

    async def _on_epoch_end(
        self, session: AsyncSession, _store: ObjectStore, job: Job, model: Model, data: dict[str, Any]
    ) -> dict[str, Any]:
        epoch = _int(data.get("epoch"))
        if epoch is None:
            raise BadRequest("epoch_end needs data.epoch")
        metrics = _clean(data.get("metrics") or {})
        total = int(job.progress.get("totalEpochs") or 0)
        # The final validation's extra epoch_end: its epoch is the number trained, and it may follow training_complete.
        late = (bool(total) and epoch >= total) or job.status == JobStatus.completed
        progress = dict(job.progress)
        if not late:
            progress["currentEpoch"] = max(int(progress.get("currentEpoch") or 0), epoch + 1)
        progress["epochMetrics"] = metrics
        if data.get("modelInfo"):
            progress["modelInfo"] = _clean(data["modelInfo"])
        job.progress = progress
        if not late:
            row = {
                "epoch": epoch,
                "metrics": metrics,
                "fitness": _finite(data.get("fitness")),
                "timestamp": isoformat(utcnow()),
            }
            details = dict(model.metrics or {})
            details["train_results"] = [*(details.get("train_results") or []), row]
            details["metrics"] = metrics
            model.metrics = details
            if job.status in ACTIVE_STATUSES:
                await job_service.announce_epoch(session, job, model)
        return {}

    async def _on_checkpoint_saved(
        self, session: AsyncSession, store: ObjectStore, job: Job, model: Model, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Promote the staged upload (``modelPath`` is the ``gcsPath`` we handed out) to the model's weights."""
        path = data.get("modelPath")
        upload = None if not isinstance(path, str) else await upload_service.find_owned(session, job.owner_id, path)
        if upload is None or upload.asset_id != model.id:
            raise NotFound(f"checkpoint '{path}' not found")
        if upload.status == UploadStatus.uploaded:
            upload.status, upload.completed_at = UploadStatus.completed, utcnow()
            await model_service.attach_upload(session, store, upload)
            session.info["wake_conversion"] = True
        return {"modelPath": path, "weightsAttached": True, "size": model.weights_size}

    async def _on_training_complete(
        self, session: AsyncSession, _store: ObjectStore, job: Job, model: Model, data: dict[str, Any]
    ) -> dict[str, Any]:
        results = _clean(data.get("results") or {})
        details = dict(model.metrics or {})
        if results.get("metrics"):
            details["metrics"] = results["metrics"]
        for source, target in (("bestEpoch", "best_epoch"), ("bestFitness", "best_fitness")):
            if results.get(source) is not None:
                details[target] = results[source]
        if data.get("plots"):
            details["plots"] = _clean(data["plots"])
        model.metrics = details
        names = data.get("classNames")
        if isinstance(names, list):
            model.metadata_ = {**(model.metadata_ or {}), "classNames": [str(name) for name in names]}
        result = {
            "metrics": results.get("metrics"),
            "bestEpoch": results.get("bestEpoch"),
            "bestFitness": results.get("bestFitness"),
        }
        # Epoch ends are sent once, without retries: some may have been lost (a server restart), yet the
        # run did complete, so its progress is whole.
        progress = {
            **job.progress,
            "currentEpoch": max(int(job.progress.get("currentEpoch") or 0), int(job.progress.get("totalEpochs") or 0)),
        }
        completed = await job_service.finish(
            session, job, Outcome(JobStatus.completed), result=result, progress=progress
        )
        if not completed and job.status == JobStatus.cancelled:
            model.status = ModelStatus.cancelled  # partial results of a cancelled run are kept
        return {"status": str(job.status)}

    async def _on_training_failed(
        self, session: AsyncSession, _store: ObjectStore, job: Job, _model: Model, data: dict[str, Any]
    ) -> dict[str, Any]:
        message = str(data.get("error") or "training failed")[:2000]
        code = str(data.get("code") or "TRAINING_FAILED")[:64]
        await job_service.finish(session, job, Outcome(JobStatus.failed, message, code))
        return {"status": str(job.status)}

    async def _on_training_progress(
        self, _session: AsyncSession, _store: ObjectStore, job: Job, _model: Model, data: dict[str, Any]
    ) -> dict[str, Any]:
        return {}

    async def _on_system_metrics(
        self, _session: AsyncSession, _store: ObjectStore, job: Job, _model: Model, data: dict[str, Any]
    ) -> dict[str, Any]:
        job.progress = {**job.progress, "system": _clean(data)}
        return {}

    async def upload_url(
        self, session: AsyncSession, auth: AuthContext, body: CheckpointUpload, *, ttl: int
    ) -> tuple[Model, str, str]:
        """``POST /api/webhooks/models/upload``: stage a checkpoint upload for a model's run."""
        from yolostack.uploads.schemas import SignedUrlRequest
        from yolostack.uploads.service import upload as upload_service

        filename = body.filename.rsplit("/", 1)[-1] or "best.pt"
        if body.model_id:
            model, _ = await self._current(session, auth, body.model_id)
        else:
            project = await self._project(session, auth.account, body.project)
            slug = slugify(body.name or "train") or "train"
            model = await self._model(session, auth.account, project, slug, {})
        request = SignedUrlRequest.model_validate(
            {"assetType": "models", "assetId": model.id, "filename": filename, "totalBytes": body.size}
        )
        upload = await upload_service.open(session, auth.account_id, request, ttl=ttl, max_bytes=2**40)
        return model, upload.id, upload.filename


def _is_cancelled(job: Job) -> bool:
    return job.cancel_requested or job.status == JobStatus.cancelled


def _mode(job: Job) -> str:
    return "remote" if job.executor == Executor.remote else "cloud"


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _clean(value: Any) -> Any:
    """JSON the databases accept: NaN and infinities become null (the trainer already does so, others may not)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


telemetry = TelemetryService()
