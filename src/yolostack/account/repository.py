from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select

from yolostack.core.repository import Repository
from yolostack.tables import Account, Dataset, Model, Project


class AccountRepository(Repository):
    async def get_by_username(self, username: str) -> Account | None:
        return await self.session.scalar(select(Account).where(Account.username == username))

    async def get(self, account_id: str) -> Account | None:
        return await self.session.get(Account, account_id)

    async def list_all(self) -> Sequence[Account]:
        return (await self.session.scalars(select(Account).order_by(Account.created_at, Account.id))).all()

    async def count_all(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(Account)) or 0)

    async def add(self, account: Account) -> Account:
        self.session.add(account)
        await self.session.flush()
        return account

    async def resource_counts(self, account_id: str) -> dict[str, int]:
        projects = await self.count(
            select(Project.id).where(Project.owner_id == account_id, Project.deleted_at.is_(None))
        )
        models = await self.count(select(Model.id).where(Model.owner_id == account_id, Model.deleted_at.is_(None)))
        datasets = await self.count(
            select(Dataset.id).where(Dataset.owner_id == account_id, Dataset.deleted_at.is_(None))
        )
        return {"projects": projects, "datasets": datasets, "models": models}
