"""Models: reads scoped to what the viewer may see (another account's model only inside a public project)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from yolostack.core.owned import OwnedRepository
from yolostack.core.pagination import PageParams
from yolostack.tables import Account, Model, Project, Visibility

ModelRow = tuple[Model, Project, Account]


class ModelRepository(OwnedRepository[Model, Account, ModelRow]):
    """Models with their project and owner; a model's slug is unique among its project's live models."""

    table = Model
    owners = Account

    def readable(self, viewer_id: str) -> Select[Model, Project, Account]:
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

    def path(self) -> tuple[InstrumentedAttribute[str], ...]:
        return (Project.slug, Model.slug)

    def slug_scope(self) -> InstrumentedAttribute[str]:
        return Model.project_id

    async def list_readable(
        self,
        viewer_id: str,
        params: PageParams,
        *,
        owner_id: str | None = None,
        project_id: str | None = None,
        task: str | None = None,
    ) -> tuple[Sequence[ModelRow], int]:
        statement = self.readable(viewer_id)
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
