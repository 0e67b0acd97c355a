"""Jobs: every read is scoped to the caller's account; transitions are conditional updates, so two
server processes (or a runner's report racing the dispatcher) can never both record one outcome.

Training runs and exports are rows of ``jobs``; a dataset's last ingest is read from its dataset's row, the
earlier ones from ``dataset_ingests``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from yolostack.core.repository import Repository
from yolostack.tables import ACTIVE_STATUSES, Dataset, DatasetIngest, Executor, Job, JobKind, JobLog, JobStatus


class JobRepository(Repository):
    async def get_owned(self, owner_id: str, job_id: str) -> Job | None:
        return await self.session.scalar(select(Job).where(Job.id == job_id, Job.owner_id == owner_id))

    async def ingest_owned(self, owner_id: str, job_id: str) -> Dataset | None:
        """The dataset whose last ingest has this job id (an ingest's state lives on its dataset's row)."""
        statement = select(Dataset).where(
            Dataset.ingest_job_id == job_id, Dataset.owner_id == owner_id, Dataset.deleted_at.is_(None)
        )
        return await self.session.scalar(statement)

    async def ended_ingest_owned(self, owner_id: str, job_id: str) -> dict[str, Any] | None:
        """An earlier ingest's job as it ended (kept when its dataset's next ingest was queued)."""
        statement = (
            select(DatasetIngest.view)
            .join(Dataset, Dataset.id == DatasetIngest.dataset_id)
            .where(DatasetIngest.job_id == job_id, Dataset.owner_id == owner_id, Dataset.deleted_at.is_(None))
        )
        view: dict[str, Any] | None = await self.session.scalar(statement)
        return view

    async def active_for_model(self, model_id: str) -> Sequence[Job]:
        statement = select(Job).where(Job.model_id == model_id, Job.status.in_(ACTIVE_STATUSES))
        return (await self.session.scalars(statement)).all()

    async def list_for_model(
        self, model_id: str, kind: JobKind, *, status: str | None = None, limit: int = 100
    ) -> Sequence[Job]:
        statement = select(Job).where(Job.model_id == model_id, Job.kind == kind)
        if status is not None:
            statement = statement.where(Job.status == status)
        return (await self.session.scalars(statement.order_by(Job.created_at.desc()).limit(limit))).all()

    async def list_owned(
        self, owner_id: str, kind: JobKind, *, model_id: str | None, offset: int, limit: int
    ) -> tuple[Sequence[Job], int]:
        statement = select(Job).where(Job.owner_id == owner_id, Job.kind == kind)
        if model_id is not None:
            statement = statement.where(Job.model_id == model_id)
        total = await self.count(statement)
        rows = await self.session.scalars(statement.order_by(Job.created_at.desc()).offset(offset).limit(limit))
        return rows.all(), total

    async def queued(self, executor: Executor, limit: int) -> Sequence[Job]:
        statement = (
            select(Job)
            .where(Job.status == JobStatus.queued, Job.executor == executor)
            .order_by(Job.created_at, Job.id)
            .limit(limit)
        )
        return (await self.session.scalars(statement)).all()

    async def active(self, executors: Sequence[Executor]) -> Sequence[Job]:
        statement = select(Job).where(Job.status.in_((JobStatus.starting, JobStatus.running)))
        return (await self.session.scalars(statement.where(Job.executor.in_(executors)))).all()

    async def recently_cancelled(self, since: datetime) -> Sequence[Job]:
        statement = select(Job).where(
            Job.status == JobStatus.cancelled, Job.handle.is_not(None), Job.completed_at >= since
        )
        return (await self.session.scalars(statement)).all()

    async def count_running(self, executor: Executor) -> int:
        statement = select(Job.id).where(
            Job.executor == executor, Job.status.in_((JobStatus.starting, JobStatus.running))
        )
        return await self.count(statement)

    async def transition(self, job_id: str, allowed: Sequence[JobStatus], values: dict[str, Any]) -> bool:
        """Set ``values`` only while the job is in one of ``allowed``; True when this call made the change."""
        result = await self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.in_(allowed))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        changed = bool(result.rowcount)  # type: ignore[attr-defined]
        if changed:
            job = await self.session.get(Job, job_id)
            if job is not None:
                await self.session.refresh(job)
        return changed

    async def touch(self, job_id: str, now: datetime) -> None:
        await self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.in_(ACTIVE_STATUSES))
            .values(heartbeat_at=now)
            .execution_options(synchronize_session=False)
        )

    async def add_log(self, job_id: str, source: str, content: str) -> None:
        self.session.add(JobLog(job_id=job_id, source=source, content=content))

    async def logs(self, job_id: str, *, after: int, limit: int) -> Sequence[JobLog]:
        statement = select(JobLog).where(JobLog.job_id == job_id, JobLog.id > after).order_by(JobLog.id).limit(limit)
        return (await self.session.scalars(statement)).all()
