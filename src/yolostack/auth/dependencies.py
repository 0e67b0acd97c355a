"""The one place that authenticates a request, enforces scopes and applies the rate limit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from redis.exceptions import RedisError

from yolostack.api_keys.repository import ApiKeyRepository
from yolostack.auth.ratelimit import RateLimiter, Window
from yolostack.auth.scopes import Scope
from yolostack.config import Settings
from yolostack.core.crypto import hash_api_key
from yolostack.core.db import DbSession
from yolostack.core.errors import Forbidden, RateLimited, ServiceUnavailable, Unauthorized
from yolostack.core.timeutil import utcnow
from yolostack.tables import Account, ApiKey, Plan

# Writing last_used_at on every request would make every read a write; a minute's accuracy is plenty.
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class AuthContext:
    """The authenticated caller: an account acting through one API key."""

    account: Account
    key: ApiKey

    @property
    def account_id(self) -> str:
        return self.account.id

    def has_scope(self, scope: Scope) -> bool:
        return not self.key.scopes or scope in self.key.scopes

    def require(self, scope: Scope) -> None:
        """For routes whose scope depends on the request (an upload's asset type)."""
        if not self.has_scope(scope):
            raise Forbidden(f"API key lacks the '{scope}' scope")


def read_api_key(request: Request) -> str | None:
    """``Authorization: Bearer <key>`` (the Platform clients) or ``x-api-key`` (the HUB API)."""
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    api_key = request.headers.get("x-api-key", "").strip()
    return api_key or None


# /api routes that take no key: the interactive docs (signed links and the like arrive with later domains).
PUBLIC_API_PREFIXES: tuple[str, ...] = ("/api/docs", "/api/redoc")
MISSING_KEY_MESSAGE = "Missing API key: send 'Authorization: Bearer ul_…' or 'x-api-key'"


def needs_key(path: str, method: str = "GET") -> bool:
    """/api routes and the HUB inference API (seed 000: POST / and the legacy POST /v1/predict/{modelId}, and
    each deployment's own POST /d/{deploymentId})."""
    if method == "POST" and (path == "/" or path.startswith(("/v1/predict/", "/d/"))):
        return True
    return path.startswith("/api/") and not path.startswith(PUBLIC_API_PREFIXES)


def plan_windows(settings: Settings, account: Account) -> tuple[Window, ...]:
    limits = {
        Plan.free: settings.rate_limits.free,
        Plan.pro: settings.rate_limits.pro,
        Plan.enterprise: settings.rate_limits.enterprise,
    }[Plan(account.plan)]
    per_minute = account.rate_limit_per_minute or limits.per_minute
    per_day = account.rate_limit_per_day or limits.per_day
    return (Window(per_minute, 60), Window(per_day, 86_400))


async def authenticate(request: Request, session: DbSession) -> AuthContext:
    key = read_api_key(request)
    if key is None:
        raise Unauthorized(MISSING_KEY_MESSAGE)
    found = await ApiKeyRepository(session).get_with_account_by_hash(hash_api_key(key))
    if found is None:
        raise Unauthorized("Invalid API key")
    api_key, account = found
    now = utcnow()
    if api_key.revoked_at is not None:
        raise Unauthorized("API key has been revoked")
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise Unauthorized("API key has expired")
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
        api_key.last_used_at = now
    return AuthContext(account=account, key=api_key)


async def apply_rate_limit(
    request: Request, auth: AuthContext, *, bucket: str = "key", windows: tuple[Window, ...] | None = None
) -> None:
    """Count this request against the key's budget; headers go on the response via ``request.state``."""
    settings: Settings = request.app.state.settings
    limiter: RateLimiter = request.app.state.rate_limiter
    try:
        result = await limiter.hit(f"{bucket}:{auth.key.id}", windows or plan_windows(settings, auth.account))
    except RedisError as error:
        # Fail closed: serving without the shared limiter would let every process spend the whole budget.
        raise ServiceUnavailable(
            "Rate limiter unavailable (Redis); retry shortly", headers={"Retry-After": "5"}
        ) from error
    request.state.rate_limit = result
    if not result.allowed:
        raise RateLimited(
            f"Rate limit exceeded; retry in {result.retry_after} s",
            details={"limit": result.binding.window.limit, "windowSeconds": result.binding.window.seconds},
            headers=result.headers(),
        )


class Authenticator:
    """A dependency: authenticate, rate-limit (unless exempt), then require ``scope``."""

    def __init__(self, scope: Scope | None = None, *, rate_limited: bool = True) -> None:
        self.scope = scope
        self.rate_limited = rate_limited

    async def __call__(self, request: Request, session: DbSession) -> AuthContext:
        auth = await authenticate(request, session)
        if self.rate_limited:
            await apply_rate_limit(request, auth)
        if self.scope is not None:
            auth.require(self.scope)
        return auth


class HubAuthenticator:
    """The shared HUB inference API: its own budget per key (100 calls/hour, spec §4), not the general one."""

    async def __call__(self, request: Request, session: DbSession) -> AuthContext:
        auth = await authenticate(request, session)
        settings: Settings = request.app.state.settings
        await apply_rate_limit(request, auth, bucket="hub", windows=(Window(settings.rate_limits.hub_per_hour, 3600),))
        auth.require(Scope.inference)
        return auth


AnyAuth = Annotated[AuthContext, Depends(Authenticator())]
HubAuth = Annotated[AuthContext, Depends(HubAuthenticator())]
AccountAuth = Annotated[AuthContext, Depends(Authenticator(Scope.account))]
ApiKeysAuth = Annotated[AuthContext, Depends(Authenticator(Scope.api_keys))]
ProjectsAuth = Annotated[AuthContext, Depends(Authenticator(Scope.projects))]
DatasetsAuth = Annotated[AuthContext, Depends(Authenticator(Scope.datasets))]
ModelsAuth = Annotated[AuthContext, Depends(Authenticator(Scope.models))]
InferenceAuth = Annotated[AuthContext, Depends(Authenticator(Scope.inference))]
StorageAuth = Annotated[AuthContext, Depends(Authenticator(Scope.storage))]
ActivityAuth = Annotated[AuthContext, Depends(Authenticator(Scope.activity))]
TrashAuth = Annotated[AuthContext, Depends(Authenticator(Scope.trash))]
