from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, and_, or_, select
from yolostack.core.pagination import PageParams
from yolostack.core.repository import Repository
from yolostack.tables import Account, Model, Project, Visibility

ModelRow = tuple[Model, Project, Account]


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
