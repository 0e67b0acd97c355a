from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from yolostack.core.repository import Repository
from yolostack.tables import ApiKey


class ApiKeyRepository(Repository):
    async def list_active(self, account_id: str) -> Sequence[ApiKey]:
        statement = (
            select(ApiKey)
            .where(ApiKey.account_id == account_id, ApiKey.revoked_at.is_(None), ApiKey.job_id.is_(None))
            .order_by(ApiKey.created_at, ApiKey.id)
        )
        return (await self.session.scalars(statement)).all()

    async def get_active(self, account_id: str, key_id: str) -> ApiKey | None:
        statement = select(ApiKey).where(
            ApiKey.id == key_id, ApiKey.account_id == account_id, ApiKey.revoked_at.is_(None)
        )
        return await self.session.scalar(statement)

    async def get_any_active(self, key_id: str) -> ApiKey | None:
        """Any account's key: only for the operator's CLI, never for a request."""
        return await self.session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)))

    async def for_job(self, job_id: str) -> Sequence[ApiKey]:
        return (await self.session.scalars(select(ApiKey).where(ApiKey.job_id == job_id))).all()

    async def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        await self.session.flush()
        return key
