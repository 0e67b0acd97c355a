from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, Select, func, or_, select

from yolostack.core.pagination import PageParams
from yolostack.core.repository import Repository
from yolostack.tables import Account, Model, Project, Visibility

ProjectRow = tuple[Project, Account]


class ProjectRepository(Repository):
    """Projects with their owner; reads see the caller's own and others' public live projects."""

    def _readable(self, viewer_id: str) -> Select[Project, Account]:
        return (
            select(Project, Account)
            .join(Account, Account.id == Project.owner_id)
            .where(
                Project.deleted_at.is_(None),
                or_(Project.owner_id == viewer_id, Project.visibility == Visibility.public),
            )
        )

    async def _first(self, statement: Select[Project, Account]) -> ProjectRow | None:
        row = (await self.session.execute(statement)).first()
        if row is None:
            return None
        project, owner = row
        return project, owner

    async def get_readable(self, viewer_id: str, project_id: str) -> ProjectRow | None:
        return await self._first(self._readable(viewer_id).where(Project.id == project_id))

    async def get_readable_by_slug(self, viewer_id: str, owner: str, slug: str) -> ProjectRow | None:
        return await self._first(self._readable(viewer_id).where(Account.username == owner, Project.slug == slug))

    async def list_owned(self, owner_id: str, params: PageParams) -> tuple[Sequence[Project], int]:
        statement = (
            select(Project)
            .where(Project.owner_id == owner_id, Project.deleted_at.is_(None))
            .order_by(Project.created_at.desc(), Project.id)
        )
        return await self.page(statement, params)

    async def list_readable_of_owner(self, viewer_id: str, owner_id: str, limit: int) -> tuple[Sequence[Project], int]:
        statement = (
            select(Project)
            .where(
                Project.owner_id == owner_id,
                Project.deleted_at.is_(None),
                or_(Project.owner_id == viewer_id, Project.visibility == Visibility.public),
            )
            .order_by(Project.created_at.desc(), Project.id)
        )
        return await self.page(statement, PageParams(page=1, limit=limit))

    async def slug_taken(self, owner_id: str, slug: str, *, except_id: str | None = None) -> bool:
        statement = select(Project.id).where(
            Project.owner_id == owner_id, Project.slug == slug, Project.deleted_at.is_(None)
        )
        if except_id is not None:
            statement = statement.where(Project.id != except_id)
        return await self.session.scalar(statement) is not None

    async def add(self, project: Project) -> Project:
        self.session.add(project)
        await self.session.flush()
        return project

    async def model_counts(self, viewer_id: str, project_ids: Sequence[str]) -> dict[str, int]:
        if not project_ids:
            return {}
        statement = (
            select(Model.project_id, func.count())
            .where(Model.project_id.in_(project_ids), Model.deleted_at.is_(None), _visible_model(viewer_id))
            .group_by(Model.project_id)
        )
        return {project_id: int(count) for project_id, count in (await self.session.execute(statement)).all()}

    async def live_models(self, viewer_id: str, project_id: str, search: str | None = None) -> Sequence[Model]:
        statement = select(Model).where(
            Model.project_id == project_id, Model.deleted_at.is_(None), _visible_model(viewer_id)
        )
        if search:
            statement = statement.where(Model.name.ilike(_contains(search), escape="\\"))
        return (await self.session.scalars(statement.order_by(Model.created_at.desc(), Model.id))).all()


def _visible_model(viewer_id: str) -> ColumnElement[bool]:
    """A public project may hold private models: others must not see or count those."""
    return or_(Model.owner_id == viewer_id, Model.visibility == Visibility.public)


def _contains(text: str) -> str:
    """A LIKE pattern matching ``text`` literally: ``%`` and ``_`` in a search are not wildcards."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
