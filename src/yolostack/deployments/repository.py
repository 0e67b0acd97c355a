from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, delete, select, update

from yolostack.core.repository import Repository
from yolostack.tables import Account, Deployment, DeploymentStatus, Model, Project

DeploymentRow = tuple[Deployment, Model, Project, Account]


class DeploymentRepository(Repository):
    """Every query a request makes is scoped to the caller's account; the reconciler's are not."""

    @staticmethod
    def _rows() -> Select[Deployment, Model, Project, Account]:
        return (
            select(Deployment, Model, Project, Account)
            .join(Model, Model.id == Deployment.model_id)
            .join(Project, Project.id == Model.project_id)
            .join(Account, Account.id == Deployment.owner_id)
        )

    async def _first(self, statement: Select[Deployment, Model, Project, Account]) -> DeploymentRow | None:
        found = (await self.session.execute(statement)).first()
        return None if found is None else (found[0], found[1], found[2], found[3])

    async def get(self, owner_id: str, deployment_id: str) -> DeploymentRow | None:
        return await self._first(self._rows().where(Deployment.owner_id == owner_id, Deployment.id == deployment_id))

    async def get_any(self, deployment_id: str) -> DeploymentRow | None:
        """Unscoped: a replica's artifact download, authorised by a token the reconciler signed."""
        return await self._first(self._rows().where(Deployment.id == deployment_id))

    async def get_by_slug(self, owner_id: str, slug: str) -> DeploymentRow | None:
        return await self._first(self._rows().where(Deployment.owner_id == owner_id, Deployment.slug == slug))

    async def slug_taken(self, owner_id: str, slug: str) -> bool:
        found = await self.session.scalar(
            select(Deployment.id).where(Deployment.owner_id == owner_id, Deployment.slug == slug)
        )
        return found is not None

    async def list_for_owner(
        self,
        owner_id: str,
        *,
        status: str | None = None,
        model_id: str | None = None,
        limit: int,
        offset: int = 0,
    ) -> tuple[list[DeploymentRow], int]:
        statement = self._rows().where(Deployment.owner_id == owner_id)
        if status is not None:
            statement = statement.where(Deployment.status == status)
        if model_id is not None:
            statement = statement.where(Deployment.model_id == model_id)
        total = await self.count(statement.with_only_columns(Deployment.id))
        ordered = statement.order_by(Deployment.created_at.desc(), Deployment.id.desc()).limit(limit).offset(offset)
        rows = (await self.session.execute(ordered)).all()
        return [(row[0], row[1], row[2], row[3]) for row in rows], total

    async def add(self, deployment: Deployment) -> Deployment:
        self.session.add(deployment)
        await self.session.flush()
        return deployment

    async def delete(self, owner_id: str, deployment_id: str) -> None:
        """Its logs and metrics go with it (ON DELETE CASCADE)."""
        await self.session.execute(
            delete(Deployment)
            .where(Deployment.owner_id == owner_id, Deployment.id == deployment_id)
            .execution_options(synchronize_session=False)
        )

    # The reconciler's queries: every account's deployments.

    async def all_rows(self) -> Sequence[DeploymentRow]:
        rows = (await self.session.execute(self._rows().order_by(Deployment.created_at))).all()
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    async def report(self, deployment: Deployment, **values: Any) -> bool:
        """Write what the backend reports, unless the user changed the row since it was read (a start,
        stop, replace or resize bumps ``generation`` or ``desired``): the next round sees the new one."""
        result = await self.session.execute(
            update(Deployment)
            .where(
                Deployment.id == deployment.id,
                Deployment.generation == deployment.generation,
                Deployment.desired == deployment.desired,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))


ACTIVE = (DeploymentStatus.creating, DeploymentStatus.deploying, DeploymentStatus.ready)
