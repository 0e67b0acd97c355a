from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.activity.service import activity as activity_service
from yolostack.api_keys.repository import ApiKeyRepository
from yolostack.api_keys.schemas import ApiKeyCreate
from yolostack.auth.dependencies import AuthContext
from yolostack.core.crypto import generate_api_key, hash_api_key, key_prefix
from yolostack.core.errors import BadRequest, Forbidden, NotFound
from yolostack.core.ids import new_id
from yolostack.core.timeutil import utcnow
from yolostack.tables import Account, ApiKey


class ApiKeyService:
    async def list_active(self, session: AsyncSession, account_id: str) -> Sequence[ApiKey]:
        return await ApiKeyRepository(session).list_active(account_id)

    async def issue(
        self,
        session: AsyncSession,
        account: Account,
        *,
        name: str,
        scopes: Sequence[str] = (),
        expires_at: datetime | None = None,
    ) -> tuple[ApiKey, str]:
        """Create a key for ``account``; returns the row and the plaintext, which is never stored."""
        if expires_at is not None and expires_at <= utcnow():
            raise BadRequest("expiresAt must be in the future", details=[{"field": "expiresAt"}])
        plaintext = generate_api_key()
        key = ApiKey(
            id=new_id("key"),
            account_id=account.id,
            name=name,
            key_hash=hash_api_key(plaintext),
            key_prefix=key_prefix(plaintext),
            scopes=sorted(set(scopes)),
            expires_at=expires_at,
        )
        await ApiKeyRepository(session).add(key)
        await activity_service.record(
            session,
            account.id,
            "api_key.created",
            resource_type="api_key",
            resource_id=key.id,
            resource_name=name,
            message=f"API key '{name}' created",
            details={"scopes": key.scopes},
        )
        return key, plaintext

    async def issue_for_job(
        self, session: AsyncSession, account_id: str, job_id: str, scopes: Sequence[str], expires_at: datetime
    ) -> str:
        """A runner's key: tied to its job, hidden from the key list; returns the plaintext, never stored."""
        plaintext = generate_api_key()
        key = ApiKey(
            id=new_id("key"),
            account_id=account_id,
            name=f"job {job_id}",
            key_hash=hash_api_key(plaintext),
            key_prefix=key_prefix(plaintext),
            scopes=sorted(scopes),
            expires_at=expires_at,
            job_id=job_id,
        )
        await ApiKeyRepository(session).add(key)
        return plaintext

    async def expire_job_keys(self, session: AsyncSession, job_id: str, when: datetime) -> None:
        """A job's keys stop working at ``when`` at the latest."""
        for key in await ApiKeyRepository(session).for_job(job_id):
            if key.expires_at is None or key.expires_at > when:
                key.expires_at = when

    async def create(self, session: AsyncSession, auth: AuthContext, data: ApiKeyCreate) -> tuple[ApiKey, str]:
        requested = {str(scope) for scope in data.scopes}
        if not auth.covers(requested):
            # A scoped key may only mint keys with a subset of its own rights (no scopes = every right).
            raise Forbidden(
                "A scoped key can only create keys with a subset of its own scopes",
                details=[{"field": "scopes", "message": f"at most: {', '.join(sorted(auth.scopes))}"}],
            )
        return await self.issue(
            session, auth.account, name=data.name, scopes=sorted(requested), expires_at=data.expires_at
        )

    async def revoke(
        self, session: AsyncSession, account_id: str, key_id: str, *, by: AuthContext | None = None
    ) -> ApiKey:
        """Revoke one of the account's keys; ``by`` (a request's caller; None: the operator's CLI) may revoke
        only keys with no right it lacks itself."""
        key = await ApiKeyRepository(session).get_active(account_id, key_id)
        if key is None:
            raise NotFound("API key not found")
        if by is not None and not by.covers(key.scopes):
            raise Forbidden("A scoped key can only revoke keys whose scopes are a subset of its own")
        key.revoked_at = utcnow()
        await activity_service.record(
            session,
            account_id,
            "api_key.revoked",
            resource_type="api_key",
            resource_id=key.id,
            resource_name=key.name,
            message=f"API key '{key.name}' revoked",
        )
        return key


api_key = ApiKeyService()
