"""Projects: reads scoped to what the viewer may see, their models counted as the viewer sees them."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, func, or_, select

from yolostack.core.owned import OwnedRepository
from yolostack.core.pagination import PageParams
from yolostack.tables import Account, Model, Project, Visibility

ProjectRow = tuple[Project, Account]


class ProjectRepository(OwnedRepository[Project, Account, ProjectRow]):
    """Projects with their owner; reads see the caller's own and others' public live projects."""

    table = Project
    owners = Account

    async def list_owned(self, owner_id: str, params: PageParams) -> tuple[Sequence[Project], int]:
        return await self.list_readable_of_owner(owner_id, owner_id, params)

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
