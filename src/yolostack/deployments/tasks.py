"""The reconciler: every ``interval_seconds`` it makes the backend run what the ``deployments`` rows ask
for, and writes back what the backend reports (status, instances, gauges, lifecycle events).

- desired running, a generation not yet applied → build the plan (the model's converted files) and
  ``apply`` it: creating/deploying until the backend says ready, failed with its message otherwise;
- desired stopped → ``remove``, then stopped; a row that is gone (deleted) → ``remove``;
- a model still converting keeps the deployment deploying; one that failed to convert fails it.

Status writes are conditional on the row's generation and desired state (``DeploymentRepository.report``),
so a start, stop or replace made meanwhile is never overwritten by a stale round.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from yolostack.config import Settings
from yolostack.core.db import Database
from yolostack.core.timeutil import utcnow
from yolostack.deployments.backends import BackendState, DeploymentBackend, ReplicaPlan
from yolostack.deployments.repository import DeploymentRepository, DeploymentRow
from yolostack.deployments.setup import create_deployment_backend
from yolostack.deployments.telemetry import DeploymentTelemetry
from yolostack.inference.pipeline import class_names
from yolostack.inference.service import InferenceService, ServingTarget
from yolostack.storage.signing import Signer
from yolostack.tables import Deployment, DeploymentStatus, DesiredState, ServingStatus
from yolostack.worker.periodic import STOP_GRACE, PeriodicTask
from yolostack.worker.registry import WorkerContext, workers

logger = logging.getLogger(__name__)

ARTIFACT_PURPOSE = "deployment-artifacts"
ARTIFACT_TOKEN_TTL = 10 * 365 * 86_400
PURGE_EVERY_SECONDS = 3600.0


class NotServable(Exception):
    """The model cannot be served (no weights, conversion failed): the deployment fails."""


@dataclass
class _Applied:
    generation: int
    failed: bool = False


class DeploymentReconciler:
    def __init__(
        self,
        database: Database,
        backend: DeploymentBackend,
        telemetry: DeploymentTelemetry,
        inference: InferenceService,
        signer: Signer,
        settings: Settings,
    ) -> None:
        self.database = database
        self.backend = backend
        self.telemetry = telemetry
        self.inference = inference
        self.signer = signer
        self.settings = settings
        self._applied: dict[str, _Applied] = {}
        self._last_purge = 0.0

    async def run_round(self) -> None:
        await self.backend.tick()
        async with self.database.sessionmaker() as session:
            rows = [
                row for row in await DeploymentRepository(session).all_rows() if row[0].backend == self.backend.name
            ]
            repository = DeploymentRepository(session)
            for row in rows:
                try:
                    await self._reconcile(repository, row)
                except Exception:
                    logger.exception("reconciling deployment %s failed", row[0].id)
            await session.commit()
        known = {row[0].id for row in rows}
        for gone in self.backend.deployments() - known:
            await self.backend.remove(gone)
            self._applied.pop(gone, None)
        await self.telemetry.flush()
        if time.monotonic() - self._last_purge > PURGE_EVERY_SECONDS:
            self._last_purge = time.monotonic()
            await self.telemetry.purge(utcnow() - timedelta(days=self.settings.deployments.retention_days))

    async def _reconcile(self, repository: DeploymentRepository, row: DeploymentRow) -> None:
        deployment = row[0]
        if deployment.desired == DesiredState.stopped:
            await self._stop(repository, deployment)
            return
        applied = self._applied.get(deployment.id)
        if deployment.status == DeploymentStatus.failed and (
            applied is None or applied.generation == deployment.generation
        ):
            return  # failed: nothing runs until a start (a new generation)
        fresh = applied is None or applied.generation != deployment.generation
        if fresh and not await self._apply(repository, row):
            return
        state = await self.backend.state(deployment.id)
        if state.phase == "absent":
            # The backend lost it (its process restarted, the cluster was reset): apply again next round.
            self._applied.pop(deployment.id, None)
            return
        await self._observe(repository, deployment, state)

    async def _apply(self, repository: DeploymentRepository, row: DeploymentRow) -> bool:
        deployment = row[0]
        try:
            plan = await self.plan(row)
        except NotServable as error:
            await self._fail(repository, deployment, str(error))
            return False
        if plan is None:  # the checkpoint is still being converted
            await self._set(
                repository, deployment, status=DeploymentStatus.deploying, message="waiting for the model's conversion"
            )
            return False
        await self.backend.apply(plan)
        self._applied[deployment.id] = _Applied(deployment.generation)
        if deployment.status == DeploymentStatus.creating:
            await self._set(repository, deployment, status=DeploymentStatus.deploying, message=None)
        return True

    async def _observe(self, repository: DeploymentRepository, deployment: Deployment, state: BackendState) -> None:
        self.telemetry.gauges(
            deployment.id,
            instances=state.instances,
            cpu_utilization=state.cpu_utilization,
            memory_utilization=state.memory_utilization,
        )
        if state.phase == "failed":
            await self.backend.remove(deployment.id)
            await self._fail(repository, deployment, state.message or "the replicas failed to start")
            return
        values: dict[str, Any] = {}
        if state.instances != deployment.instances:
            values["instances"] = state.instances
        if state.phase == "ready" and deployment.status != DeploymentStatus.ready:
            values |= {"status": DeploymentStatus.ready, "status_message": state.message, "ready_at": utcnow()}
            self.telemetry.event(deployment.id, "INFO", f"deployment ready (generation {deployment.generation})")
        elif state.phase == "ready" and state.message != deployment.status_message:
            values["status_message"] = state.message
        elif state.phase == "deploying" and deployment.status == DeploymentStatus.creating:
            values["status"] = DeploymentStatus.deploying
        if values:
            await repository.report(deployment, **values)

    async def _stop(self, repository: DeploymentRepository, deployment: Deployment) -> None:
        if deployment.id in self.backend.deployments():
            await self.backend.remove(deployment.id)
        self._applied.pop(deployment.id, None)
        if deployment.status != DeploymentStatus.stopped:
            self.telemetry.event(deployment.id, "INFO", "deployment stopped")
            await repository.report(
                deployment, status=DeploymentStatus.stopped, status_message=None, stopped_at=utcnow(), instances=0
            )

    async def _fail(self, repository: DeploymentRepository, deployment: Deployment, message: str) -> None:
        self._applied[deployment.id] = _Applied(deployment.generation, failed=True)
        if deployment.status != DeploymentStatus.failed:
            self.telemetry.event(deployment.id, "ERROR", f"deployment failed: {message}")
        await repository.report(deployment, status=DeploymentStatus.failed, status_message=message[:2000], instances=0)

    async def _set(
        self, repository: DeploymentRepository, deployment: Deployment, *, status: DeploymentStatus, message: str | None
    ) -> None:
        if deployment.status != status or deployment.status_message != message:
            await repository.report(deployment, status=status, status_message=message)

    async def plan(self, row: DeploymentRow) -> ReplicaPlan | None:
        deployment, model, project, owner = row
        target = _serving_target(model)
        if target is None:
            return None
        local_dir = await self.inference.ensure_local(target) if self.backend.name == "local" else None
        token = self.signer.sign(
            ARTIFACT_PURPOSE, {"d": deployment.id, "g": deployment.generation}, expires_in=ARTIFACT_TOKEN_TTL
        )
        return ReplicaPlan(
            deployment_id=deployment.id,
            generation=deployment.generation,
            min_instances=deployment.min_instances,
            max_instances=deployment.max_instances,
            cpu=deployment.cpu,
            memory_gi=deployment.memory_gi,
            region=deployment.region,
            model_dir=local_dir,
            artifact_url=f"{self.settings.base_url}/api/deployments/{deployment.id}/artifacts",
            artifact_token=token,
            artifact_files=self.inference.artifact_names(),
            version=target.version,
            metadata={
                "classNames": class_names(target.info),
                "model": model.id,
                "modelRef": f"ul://{owner.username}/{project.slug}/{model.slug}",
                "task": model.task or target.info.get("task"),
                "version": {"ultralytics": target.info.get("ultralytics")},
            },
            inference=self.inference.settings,
        )


def _serving_target(model: Any) -> ServingTarget | None:
    if model.weights_key is None:
        raise NotServable("the model has no weights")
    if model.serving_status == ServingStatus.failed:
        raise NotServable(f"the model's checkpoint could not be prepared for serving: {model.serving_error}")
    if model.serving_status != ServingStatus.ready or model.serving_key is None:
        return None
    return ServingTarget(
        model_id=model.id,
        serving_key=model.serving_key,
        version=model.serving_key.rsplit("/", 1)[-1],
        weights_key=model.weights_key,
        info=dict(model.serving_info or {}),
    )


class DeploymentWorker:
    """Deployments in this server process: the backend and its telemetry, and the reconciler's loop when
    this process runs replicas. Stopping ends the loop's round, closes the backend, then flushes telemetry."""

    name = "deployments.reconcile"

    def __init__(
        self, telemetry: DeploymentTelemetry, backend: DeploymentBackend | None, loop: PeriodicTask | None
    ) -> None:
        self.telemetry = telemetry
        self.backend = backend
        self.loop = loop

    def start(self) -> None:
        if self.loop is not None:
            self.loop.start()

    def wake(self) -> None:
        """Reconcile now (a deployment was created, started, stopped or changed)."""
        if self.loop is not None:
            self.loop.wake()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        if self.loop is not None:
            await self.loop.stop(grace)
        if self.backend is not None:
            await self.backend.close()
        await self.telemetry.flush()


@workers.register("deployments.reconcile")
def deployment_worker(context: WorkerContext) -> DeploymentWorker:
    settings = context.settings
    telemetry = DeploymentTelemetry(context.database, log_requests=settings.deployments.log_requests)
    backend = create_deployment_backend(settings, telemetry)
    # The relay and the deployment routes read these.
    context.state.deployment_telemetry, context.state.deployment_backend = telemetry, backend
    loop = None
    if backend is not None and settings.deployments.run_replicas:
        inference: InferenceService = context.state.inference
        signer: Signer = context.state.file_links.signer
        reconciler = DeploymentReconciler(context.database, backend, telemetry, inference, signer, settings)
        loop = PeriodicTask("deployments.reconcile", settings.deployments.interval_seconds, reconciler.run_round)
    worker = DeploymentWorker(telemetry, backend, loop)
    if loop is not None:
        context.state.deployment_task = worker
    return worker
