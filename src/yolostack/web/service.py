"""Signing in to the web app: passwords, API keys and one-time links open a browser session; the session is
then the caller of every page, with the same rights as the API would give it (``AuthContext``)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.account.service import account as account_service
from yolostack.activity.service import activity as activity_service
from yolostack.auth.dependencies import AuthContext, resolve_key
from yolostack.config import WebSettings
from yolostack.core.crypto import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    generate_token,
    hash_api_key,
    hash_password,
    verify_password,
)
from yolostack.core.errors import BadRequest, NotFound, Unauthorized
from yolostack.core.ids import new_id
from yolostack.core.timeutil import utcnow
from yolostack.tables import Account, ApiKey, SignInLink, WebSession
from yolostack.web.repository import WebSessionRepository

WRONG_CREDENTIALS = "Wrong username or password"
# Verified when the username is unknown, so that an unknown name takes as long to refuse as a wrong password.
_DUMMY_HASH = hash_password(secrets.token_hex(16))


@dataclass(frozen=True)
class SignedIn:
    """A browser's session: the row, the caller it stands for and the token its cookie holds (new sessions)."""

    session: WebSession
    auth: AuthContext
    token: str = ""


def session_key(account: Account, row: WebSession) -> ApiKey:
    """A password session's rights as a key that is never stored: the account's full rights (no scopes)."""
    return ApiKey(id=row.id, account_id=account.id, name="web session", key_hash="", key_prefix="", scopes=[])


class WebAuthService:
    async def password_account(self, session: AsyncSession, username: str, password: str) -> Account:
        account = await _account_or_none(session, username)
        stored = account.password_hash if account is not None else None
        matches = verify_password(stored or _DUMMY_HASH, password[:MAX_PASSWORD_LENGTH])
        if account is None or stored is None or not matches:
            raise Unauthorized(WRONG_CREDENTIALS)
        return account

    async def key_auth(self, session: AsyncSession, key: str) -> AuthContext:
        """Signing in with an API key: the key's own rules and rights (a scoped key makes a scoped session)."""
        auth = await resolve_key(session, key.strip())
        if auth.key.job_id is not None:
            raise Unauthorized("A job's key cannot sign in")
        return auth

    async def open(
        self,
        session: AsyncSession,
        settings: WebSettings,
        account: Account,
        *,
        key: ApiKey | None = None,
        user_agent: str | None = None,
        how: str = "password",
    ) -> SignedIn:
        token = generate_token()
        now = utcnow()
        row = WebSession(
            id=new_id("websession"),
            account_id=account.id,
            token_hash=hash_api_key(token),
            api_key_id=None if key is None else key.id,
            csrf_token=secrets.token_urlsafe(32),
            user_agent=(user_agent or "")[:256] or None,
            created_at=now,
            expires_at=now + timedelta(hours=settings.session_ttl_hours),
            last_seen_at=now,
        )
        await WebSessionRepository(session).add(row)
        await activity_service.record(
            session,
            account.id,
            "account.signed_in",
            resource_type="account",
            resource_id=account.id,
            resource_name=account.username,
            message=f"Signed in to the web app ({how})",
        )
        return SignedIn(row, AuthContext(account, key or session_key(account, row)), token)

    async def current(self, session: AsyncSession, token: str | None) -> SignedIn | None:
        """The live session a cookie names (None when it names none, or its key was revoked or expired)."""
        if not token:
            return None
        now = utcnow()
        found = await WebSessionRepository(session).live_session(hash_api_key(token), now)
        if found is None:
            return None
        row, account, key = found
        if key is not None and (key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now)):
            return None
        if now - row.last_seen_at > timedelta(minutes=1):
            row.last_seen_at = now
        return SignedIn(row, AuthContext(account, key or session_key(account, row)))

    async def close(self, session: AsyncSession, token: str) -> None:
        await WebSessionRepository(session).revoke(hash_api_key(token), utcnow())

    async def issue_link(self, session: AsyncSession, settings: WebSettings, account: Account) -> str:
        """A one-time sign-in link's token for ``account`` (the operator prints the link)."""
        token = generate_token()
        now = utcnow()
        link = SignInLink(
            token_hash=hash_api_key(token),
            account_id=account.id,
            created_at=now,
            expires_at=now + timedelta(hours=settings.sign_in_link_ttl_hours),
        )
        await WebSessionRepository(session).add(link)
        return token

    async def link_is_usable(self, session: AsyncSession, token: str) -> bool:
        return await WebSessionRepository(session).link_is_usable(hash_api_key(token), utcnow())

    async def use_link(self, session: AsyncSession, token: str) -> Account:
        account_id = await WebSessionRepository(session).use_link(hash_api_key(token), utcnow())
        account = None if account_id is None else await session.get(Account, account_id)
        if account is None:
            raise Unauthorized("This sign-in link has been used or has expired")
        return account

    async def set_password(self, session: AsyncSession, username: str, password: str) -> Account:
        if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
            raise BadRequest(
                f"a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
                details=[{"field": "password", "message": f"at least {MIN_PASSWORD_LENGTH} characters"}],
            )
        account = await account_service.get_by_username(session, username)
        account.password_hash = hash_password(password)
        return account


async def _account_or_none(session: AsyncSession, username: str) -> Account | None:
    try:
        return await account_service.get_by_username(session, username.strip().lower())
    except NotFound:  # refused like a wrong password
        return None


web_auth = WebAuthService()
