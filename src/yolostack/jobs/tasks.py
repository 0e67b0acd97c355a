"""``jobs.dispatch``: one round every few seconds (and right after a job is queued or cancelled).

Each round: watch the runs this server can see (heartbeat while alive, record how they ended),
stop cancelled ones that outlived the grace period, give up on jobs whose worker went silent,
then claim queued jobs (``worker.leases`` on the ``jobs`` table, so several servers share one queue)
and launch them on an executor (``worker.executors``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.config import Settings
from yolostack.core.db import Database
from yolostack.core.timeutil import utcnow
from yolostack.jobs.repository import JobRepository
from yolostack.jobs.service import Outcome
from yolostack.jobs.service import jobs as job_service
from yolostack.tables import Executor, Job, JobKind, JobStatus
from yolostack.worker.executors import ExecutorUnavailable, JobExecutor, RunState
from yolostack.worker.leases import LeaseQueue
from yolostack.worker.periodic import STOP_GRACE, PeriodicTask
from yolostack.worker.registry import WorkerContext, workers
from yolostack.worker.setup import create_executors

logger = logging.getLogger(__name__)
ACTIVE_RUN = (JobStatus.starting, JobStatus.running)


def job_queue(settings: Settings) -> LeaseQueue:
    """The ``jobs`` table as a queue. Its lease is the run's heartbeat (``heartbeat_at``), written while the
    run is seen alive; a silent run is not claimed again but reaped here (a lost training run fails, a
    lost export is queued again)."""
    return LeaseQueue(
        name="jobs.dispatch",
        id=Job.id,
        ready=Job.status == JobStatus.queued,
        held=Job.status.in_(ACTIVE_RUN),
        lease=Job.heartbeat_at,
        beats=True,
        reclaim_expired=False,
        attempts=Job.attempts,
        ttl=timedelta(seconds=settings.jobs.heartbeat_timeout_seconds),
        claimed={"status": JobStatus.starting},
        unclaimed={"status": JobStatus.queued, "handle": None},
        order_by=(Job.created_at,),
    )


class Dispatcher:
    name = "jobs.dispatch"

    def __init__(self, database: Database, settings: Settings, executors: dict[Executor, JobExecutor]) -> None:
        self.database = database
        self.settings = settings
        self.executors = executors
        self.queue = job_queue(settings)
        self.loop = PeriodicTask(self.name, settings.jobs.dispatch_interval_seconds, self.run_round)
        self._lock = asyncio.Lock()

    @property
    def executor(self) -> JobExecutor:
        return self.executors[Executor(self.settings.jobs.executor)]

    def start(self) -> None:
        self.loop.start()

    def wake(self) -> None:
        """Run a round now (a job was queued or cancelled)."""
        self.loop.wake()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Finish the round under way (up to ``grace``), then let go of the executors. Runs keep going: their
        runners report over HTTP, and the next server start watches them again."""
        await self.loop.stop(grace)
        await self.close()

    async def close(self) -> None:
        for executor in self.executors.values():
            await executor.close()

    async def run_round(self) -> None:
        async with self._lock:
            await self._watch()
            await self._stop_cancelled()
            await self._reap()
            await self._claim()

    # -- watching ----------------------------------------------------------------------------------

    async def _watch(self) -> None:
        async with self.database.sessionmaker() as session:
            repository = JobRepository(session)
            for job in await repository.active(list(self.executors)):
                executor = self.executors.get(Executor(job.executor))
                if executor is None or job.handle is None:
                    continue
                state = await _poll(executor, job.handle)
                if state is None:
                    continue  # not ours (another server's child); its heartbeat tells
                if state.running:
                    await self.queue.held_by(job.id, job.attempts).renew(session)
                else:
                    await self._ended(session, job, state)
            await session.commit()

    async def _ended(self, session: AsyncSession, job: Job, state: RunState) -> None:
        await session.refresh(job)
        if job.status not in ACTIVE_RUN:
            return
        if state.exit_code == 0:
            outcome = Outcome(
                JobStatus.failed, state.detail or "the runner ended without a result", "RUNNER_INCOMPLETE"
            )
        else:
            outcome = Outcome(JobStatus.failed, state.detail or f"exit status {state.exit_code}", "RUNNER_FAILED")
        await JobRepository(session).add_log(job.id, "system", f"runner ended: {outcome.error}")
        await job_service.finish(session, job, outcome)

    async def _stop_cancelled(self) -> None:
        grace = timedelta(seconds=self.settings.jobs.cancel_grace_seconds)
        async with self.database.sessionmaker() as session:
            for job in await JobRepository(session).recently_cancelled(utcnow() - timedelta(hours=6)):
                executor = self.executors.get(Executor(job.executor))
                if executor is None or job.handle is None or job.completed_at is None:
                    continue
                if utcnow() - job.completed_at < grace:
                    continue
                state = await _poll(executor, job.handle)
                if state is not None and state.running:
                    logger.info("stopping cancelled job %s", job.id)
                    await JobRepository(session).add_log(job.id, "system", "stopped after cancellation")
                    await executor.stop(job.handle)
            await session.commit()

    # -- giving up on silent jobs --------------------------------------------------------------------

    async def _reap(self) -> None:
        now = utcnow()
        worker_deadline = now - timedelta(seconds=self.settings.jobs.heartbeat_timeout_seconds)
        telemetry_deadline = now - timedelta(seconds=self.settings.jobs.telemetry_timeout_seconds)
        async with self.database.sessionmaker() as session:
            repository = JobRepository(session)
            for job in await repository.active([Executor.local, Executor.ray, Executor.remote]):
                beat = job.heartbeat_at or job.updated_at
                if job.executor == Executor.remote:
                    if beat < telemetry_deadline:
                        minutes = self.settings.jobs.telemetry_timeout_seconds / 60
                        reason = f"the training run sent no telemetry for {minutes:g} minutes"
                        await job_service.finish(session, job, Outcome(JobStatus.failed, reason, "TELEMETRY_TIMEOUT"))
                elif beat < worker_deadline:
                    await self._worker_lost(session, job)
            await session.commit()

    async def _worker_lost(self, session: AsyncSession, job: Job) -> None:
        reason = "the worker running this job stopped reporting (server restart or lost node)"
        if job.kind == JobKind.export and job.attempts < self.settings.jobs.max_attempts:
            # An export has no side effects until it completes: running it again is safe.
            if await self.queue.held_by(job.id, job.attempts).release(session, count=True):
                await JobRepository(session).add_log(job.id, "system", f"{reason}; queued again")
            return
        await JobRepository(session).add_log(job.id, "system", reason)
        await job_service.finish(session, job, Outcome(JobStatus.failed, reason, "WORKER_LOST"))

    # -- claiming and launching ----------------------------------------------------------------------

    async def _claim(self) -> None:
        if not self.settings.jobs.run_jobs:
            return
        executor = self.executor
        async with self.database.sessionmaker() as session:
            repository = JobRepository(session)
            room = self.settings.jobs.max_concurrent - await repository.count_running(executor.kind)
            if executor.kind == Executor.ray:
                room = self.settings.jobs.max_concurrent  # the cluster queues what it cannot place yet
            candidates = await self.queue.due(session, utcnow(), max(room, 0), Job.executor == executor.kind)
        for job_id in candidates:
            if self.loop.stopping:
                return
            await self._launch(executor, job_id)

    async def _launch(self, executor: JobExecutor, job_id: str) -> None:
        lifetime = timedelta(hours=self.settings.jobs.max_duration_hours)
        async with self.database.sessionmaker() as session:
            lease = await self.queue.claim(session, job_id, utcnow())
            if lease is None:
                return  # another server took it
            job = await session.get(Job, job_id, populate_existing=True)
            assert job is not None
            key = await job_service.issue_key(session, job, lifetime)
            await session.commit()
            spec = self.runner_spec(job, key)
            repository = JobRepository(session)
            try:
                handle = await executor.launch(job.id, job.attempts, spec)
            except ExecutorUnavailable as error:
                # Nothing ran: put it back for the next round (this attempt does not count).
                await lease.release(session)
                await repository.add_log(job_id, "system", f"executor unavailable, will retry: {error}")
                await session.commit()
                return
            except Exception as error:
                logger.exception("could not launch job %s", job_id)
                await job_service.finish(
                    session, job, Outcome(JobStatus.failed, f"could not start: {error}", "LAUNCH_FAILED")
                )
                await session.commit()
                return
            job.handle = handle
            await repository.add_log(job_id, "system", f"started on {executor.kind} ({handle}), attempt {job.attempts}")
            await session.commit()

    def runner_spec(self, job: Job, key: str) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "jobId": job.id,
            "kind": str(job.kind),
            "modelId": job.model_id,
            "attempt": job.attempts,
            "serverUrl": self.settings.base_url,
            "apiKey": key,
            "gpus": 1 if job.gpu_type else 0,
            "gpuType": job.gpu_type,
        }
        if job.kind == JobKind.training:
            spec["training"] = {name: job.spec[name] for name in ("base", "data", "project", "name", "trainArgs")}
        else:
            spec["export"] = {"format": job.spec["format"], "args": job.spec.get("args") or {}}
        return spec


async def _poll(executor: JobExecutor, handle: str) -> RunState | None:
    try:
        return await executor.poll(handle)
    except ExecutorUnavailable:
        return None  # unknown for now: the heartbeat decides


@workers.register("jobs.dispatch")
def job_dispatcher(context: WorkerContext) -> Dispatcher:
    dispatcher = Dispatcher(context.database, context.settings, create_executors(context.settings))
    # Training and export endpoints wake it after their commit.
    context.state.dispatcher = context.state.dispatch_task = dispatcher
    return dispatcher
