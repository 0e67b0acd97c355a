"""Browser sessions and sign-in links, looked up by the hash of their token."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from yolostack.core.repository import Repository
from yolostack.tables import Account, ApiKey, SignInLink, WebSession


class WebSessionRepository(Repository):
    async def add(self, row: WebSession | SignInLink) -> None:
        self.session.add(row)
        await self.session.flush()

    async def live_session(self, token_hash: str, now: datetime) -> tuple[WebSession, Account, ApiKey | None] | None:
        """The session with this token that is neither revoked nor expired, its account and its key, if any."""
        statement = (
            select(WebSession, Account, ApiKey)
            .join(Account, Account.id == WebSession.account_id)
            .outerjoin(ApiKey, ApiKey.id == WebSession.api_key_id)
            .where(WebSession.token_hash == token_hash, WebSession.revoked_at.is_(None), WebSession.expires_at > now)
        )
        row = (await self.session.execute(statement)).first()
        return None if row is None else (row[0], row[1], row[2])

    async def revoke(self, token_hash: str, now: datetime) -> None:
        await self.session.execute(
            update(WebSession)
            .where(WebSession.token_hash == token_hash, WebSession.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )

    async def use_link(self, token_hash: str, now: datetime) -> str | None:
        """Mark an unused, unexpired link used (once, whatever races it); returns its account id."""
        statement = (
            update(SignInLink)
            .where(SignInLink.token_hash == token_hash, SignInLink.used_at.is_(None), SignInLink.expires_at > now)
            .values(used_at=now)
            .returning(SignInLink.account_id)
            .execution_options(synchronize_session=False)
        )
        account_id = (await self.session.execute(statement)).scalar_one_or_none()
        return None if account_id is None else str(account_id)

    async def link_is_usable(self, token_hash: str, now: datetime) -> bool:
        statement = select(SignInLink.token_hash).where(
            SignInLink.token_hash == token_hash, SignInLink.used_at.is_(None), SignInLink.expires_at > now
        )
        return await self.session.scalar(statement) is not None
