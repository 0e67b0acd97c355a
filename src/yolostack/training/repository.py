"""Training runs are rows of ``jobs`` (kind ``training``); these are the queries training makes of them."""

from __future__ import annotations

from sqlalchemy import func, select

from yolostack.core.repository import Repository
from yolostack.tables import ACTIVE_STATUSES, Job, JobKind


class TrainingRepository(Repository):
    async def add(self, job: Job) -> Job:
        self.session.add(job)
        await self.session.flush()
        return job

    async def latest_training(self, model_id: str) -> Job | None:
        statement = (
            select(Job)
            .where(Job.model_id == model_id, Job.kind == JobKind.training)
            .order_by(Job.created_at.desc(), Job.id.desc())
            .limit(1)
        )
        return await self.session.scalar(statement)

    async def active_training(self, model_id: str) -> Job | None:
        statement = select(Job).where(
            Job.model_id == model_id, Job.kind == JobKind.training, Job.status.in_(ACTIVE_STATUSES)
        )
        return await self.session.scalar(statement.limit(1))

    async def next_run_id(self, model_id: str) -> int:
        """Runs of a model are numbered 1, 2, … (the clients show ``run N``)."""
        count = await self.session.scalar(
            select(func.count()).select_from(Job).where(Job.model_id == model_id, Job.kind == JobKind.training)
        )
        return int(count or 0) + 1
