"""The one query authentication makes: a key, by its hash, with the account it belongs to."""

from __future__ import annotations

from sqlalchemy import select

from yolostack.core.repository import Repository
from yolostack.tables import Account, ApiKey


class AuthRepository(Repository):
    async def get_with_account_by_hash(self, key_hash: str) -> tuple[ApiKey, Account] | None:
        statement = (
            select(ApiKey, Account).join(Account, Account.id == ApiKey.account_id).where(ApiKey.key_hash == key_hash)
        )
        row = (await self.session.execute(statement)).first()
        return None if row is None else (row[0], row[1])
