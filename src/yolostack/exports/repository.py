"""Exports are ``jobs`` rows of kind ``export``; every read is scoped to their owner and to live models."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, delete, select

from yolostack.core.pagination import PageParams
from yolostack.core.repository import Repository
from yolostack.tables import Job, JobKind, Model


class ExportRepository(Repository):
    def _owned(self, owner_id: str) -> Select[Job]:
        # An export of a model in the trash is hidden with its model (and goes when the model is purged).
        return (
            select(Job)
            .join(Model, Model.id == Job.model_id)
            .where(Job.owner_id == owner_id, Job.kind == JobKind.export, Model.deleted_at.is_(None))
        )

    async def get_owned(self, owner_id: str, export_id: str, *, model_id: str | None = None) -> Job | None:
        statement = self._owned(owner_id).where(Job.id == export_id)
        if model_id is not None:
            statement = statement.where(Job.model_id == model_id)
        return await self.session.scalar(statement)

    async def list_owned(
        self, owner_id: str, params: PageParams, *, model_id: str | None = None, status: str | None = None
    ) -> tuple[Sequence[Job], int]:
        statement = self._owned(owner_id)
        if model_id is not None:
            statement = statement.where(Job.model_id == model_id)
        if status is not None:
            statement = statement.where(Job.status == status)
        return await self.page(statement.order_by(Job.created_at.desc(), Job.id.desc()), params)

    async def delete(self, export_id: str) -> None:
        await self.session.execute(
            delete(Job)
            .where(Job.id == export_id, Job.kind == JobKind.export)
            .execution_options(synchronize_session=False)
        )

    async def file_keys(self, model_ids: Sequence[str]) -> list[str]:
        """The stored artifacts of these models' exports (for a purge)."""
        statement = select(Job.file_key).where(
            Job.model_id.in_(model_ids), Job.kind == JobKind.export, Job.file_key.is_not(None)
        )
        return [key for key in (await self.session.scalars(statement)).all() if key is not None]
