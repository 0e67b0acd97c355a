from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, and_, or_, select, update

from yolostack.core.pagination import PageParams
from yolostack.core.repository import Repository
from yolostack.tables import Account, Model, Project, ServingStatus, Visibility

ModelRow = tuple[Model, Project, Account]

MAX_CONVERSION_ATTEMPTS = 3


class ModelRepository(Repository):
    """Models with their project and owner; reads see the caller's own live models and others' public ones."""

    def _readable(self, viewer_id: str) -> Select[Model, Project, Account]:
        # Another account's model is readable only inside a public project: a model names its project
        # (slug, id, name), so a public model in a private project would reveal that project.
        public = and_(Model.visibility == Visibility.public, Project.visibility == Visibility.public)
        return (
            select(Model, Project, Account)
            .join(Project, Project.id == Model.project_id)
            .join(Account, Account.id == Model.owner_id)
            .where(
                Model.deleted_at.is_(None),
                Project.deleted_at.is_(None),
                or_(Model.owner_id == viewer_id, public),
            )
        )

    async def _first(self, statement: Select[Model, Project, Account]) -> ModelRow | None:
        row = (await self.session.execute(statement)).first()
        if row is None:
            return None
        model, project, owner = row
        return model, project, owner

    async def get_readable(self, viewer_id: str, model_id: str) -> ModelRow | None:
        return await self._first(self._readable(viewer_id).where(Model.id == model_id))

    async def get_readable_by_slug(self, viewer_id: str, owner: str, project: str, model: str) -> ModelRow | None:
        statement = self._readable(viewer_id).where(
            Account.username == owner, Project.slug == project, Model.slug == model
        )
        return await self._first(statement)

    async def list_readable(
        self,
        viewer_id: str,
        params: PageParams,
        *,
        owner_id: str | None = None,
        project_id: str | None = None,
        task: str | None = None,
    ) -> tuple[Sequence[ModelRow], int]:
        statement = self._readable(viewer_id)
        if owner_id is not None:
            statement = statement.where(Model.owner_id == owner_id)
        if project_id is not None:
            statement = statement.where(Model.project_id == project_id)
        if task is not None:
            statement = statement.where(Model.task == task)
        statement = statement.order_by(Model.created_at.desc(), Model.id)
        total = await self.count(statement)
        rows = (await self.session.execute(statement.offset(params.offset).limit(params.limit))).all()
        return [(model, project, owner) for model, project, owner in rows], total

    async def slug_taken(self, project_id: str, slug: str) -> bool:
        statement = select(Model.id).where(
            Model.project_id == project_id, Model.slug == slug, Model.deleted_at.is_(None)
        )
        return await self.session.scalar(statement) is not None

    async def add(self, model: Model) -> Model:
        self.session.add(model)
        await self.session.flush()
        return model

    async def queued_conversions(self, now: datetime) -> Sequence[Model]:
        """Models waiting for conversion, and conversions whose worker stopped renewing its lease."""
        statement = (
            select(Model)
            .where(
                Model.deleted_at.is_(None),
                Model.serving_attempts < MAX_CONVERSION_ATTEMPTS,
                or_(
                    Model.serving_status == ServingStatus.pending,
                    (Model.serving_status == ServingStatus.converting) & (Model.serving_lease_until < now),
                ),
            )
            .order_by(Model.updated_at)
        )
        return (await self.session.scalars(statement)).all()

    async def abandoned_conversions(self, now: datetime) -> Sequence[Model]:
        statement = select(Model).where(
            Model.deleted_at.is_(None),
            Model.serving_status == ServingStatus.converting,
            Model.serving_lease_until < now,
            Model.serving_attempts >= MAX_CONVERSION_ATTEMPTS,
        )
        return (await self.session.scalars(statement)).all()

    async def claim_conversion(self, model_id: str, weights_sha256: str, now: datetime, until: datetime) -> bool:
        """Take the conversion if nobody holds a live lease on it (one winner among processes)."""
        result = await self.session.execute(
            update(Model)
            .where(
                Model.id == model_id,
                Model.weights_sha256 == weights_sha256,
                or_(
                    Model.serving_status == ServingStatus.pending,
                    (Model.serving_status == ServingStatus.converting) & (Model.serving_lease_until < now),
                ),
            )
            .values(
                serving_status=ServingStatus.converting,
                serving_lease_until=until,
                serving_attempts=Model.serving_attempts + 1,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def renew_lease(self, model_id: str, until: datetime) -> None:
        await self.session.execute(
            update(Model)
            .where(Model.id == model_id, Model.serving_status == ServingStatus.converting)
            .values(serving_lease_until=until)
            .execution_options(synchronize_session=False)
        )
