"""The one place that authenticates a request, enforces scopes and applies the rate limit."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import BaseRoute, compile_path

from yolostack.auth.ratelimit import RateLimiter, Window
from yolostack.auth.repository import AuthRepository
from yolostack.auth.scopes import Scope
from yolostack.config import Settings
from yolostack.core.crypto import hash_api_key
from yolostack.core.db import Database, DbSession
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

    @property
    def scopes(self) -> frozenset[str]:
        """What this key may do: its scopes, or every scope for a key that has none (spec §2)."""
        return frozenset(self.key.scopes) if self.key.scopes else frozenset(str(scope) for scope in Scope)

    def has_scope(self, scope: Scope) -> bool:
        return str(scope) in self.scopes

    def covers(self, scopes: Iterable[str]) -> bool:
        """Whether a key with ``scopes`` (none: every scope) would have no right this one lacks."""
        wanted = set(scopes) or {str(scope) for scope in Scope}
        return wanted <= self.scopes

    def require(self, scope: Scope) -> None:
        """For routes whose scope depends on the request (an upload's asset type)."""
        if not self.has_scope(scope):
            raise Forbidden(f"API key lacks the '{scope}' scope")

    def require_any(self, scopes: Iterable[Scope]) -> None:
        wanted = tuple(scopes)
        if not any(self.has_scope(scope) for scope in wanted):
            names = "' or '".join(str(scope) for scope in wanted)
            raise Forbidden(f"API key lacks the '{names}' scope")


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
# /api routes whose credential is a token this server signed, sent where a key would be (the route verifies it):
# a Ray Serve replica downloading the model it serves.
SIGNED_TOKEN_ROUTES = re.compile(r"^/api/deployments/[^/]+/artifacts/[^/]+$")
MISSING_KEY_MESSAGE = "Missing API key: send 'Authorization: Bearer ul_…' or 'x-api-key'"


def needs_key(path: str, method: str = "GET") -> bool:
    """/api routes and the HUB inference API (seed 000: POST / and the legacy POST /v1/predict/{modelId}, and
    each deployment's own POST /d/{deploymentId})."""
    if method == "POST" and (path == "/" or path.startswith(("/v1/predict/", "/d/"))):
        return True
    if method == "GET" and SIGNED_TOKEN_ROUTES.match(path):
        return False
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


async def resolve_key(session: AsyncSession, key: str | None) -> AuthContext:
    """The rules a key must pass (known, not revoked, not expired); ``Unauthorized`` otherwise."""
    if key is None:
        raise Unauthorized(MISSING_KEY_MESSAGE)
    found = await AuthRepository(session).get_with_account_by_hash(hash_api_key(key))
    if found is None:
        raise Unauthorized("Invalid API key")
    api_key, account = found
    now = utcnow()
    if api_key.revoked_at is not None:
        raise Unauthorized("API key has been revoked")
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise Unauthorized("API key has expired")
    return AuthContext(account=account, key=api_key)


async def identify(request: Request) -> None:
    """Before the body is read (the request middleware): check the key in a short session of its own and keep
    the caller on ``request.state``, so a missing or wrong key costs the server one lookup whatever it sends;
    a request with a body whose key lacks the route's scope is refused here too, before its body is read."""
    database: Database = request.app.state.database
    async with database.sessionmaker() as session:
        auth = request.state.auth = await resolve_key(session, read_api_key(request))
    if _has_body(request):
        scopes = route_scopes(request)
        if scopes:
            auth.require_any(scopes)


def _has_body(request: Request) -> bool:
    return request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers


def route_scopes(request: Request) -> tuple[Scope, ...]:
    """The scopes the route this request goes to requires (any one of them): those its authenticator
    dependency names; none when it has none or checks by itself (a deployment's relay does, in the route)."""
    table: list[tuple[re.Pattern[str], frozenset[str], tuple[Scope, ...]]] | None = getattr(
        request.app.state, "route_scopes", None
    )
    if table is None:
        table = request.app.state.route_scopes = _scope_table(request.app.routes)
    path, method = request.url.path, request.method
    for pattern, methods, scopes in table:
        if method in methods and pattern.match(path):
            return scopes
    return ()


def _scope_table(routes: Sequence[BaseRoute]) -> list[tuple[re.Pattern[str], frozenset[str], tuple[Scope, ...]]]:
    """Each API route's path pattern, methods and required scopes, in the router's order."""
    table = []
    for route in iter_route_contexts(routes):
        if isinstance(route.original_route, APIRoute) and route.path is not None:
            pattern, _, _ = compile_path(route.path)
            table.append((pattern, frozenset(route.methods or ()), required_scopes(route.dependant)))
    return table


def required_scopes(dependant: Dependant) -> tuple[Scope, ...]:
    """The scopes the first authenticator among ``dependant``'s dependencies asks for (any one of them)."""
    pending = list(dependant.dependencies)
    while pending:
        dependency = pending.pop(0)
        if isinstance(dependency.call, Authenticator | HubAuthenticator):
            return tuple(dependency.call.scopes)
        pending.extend(dependency.dependencies)
    return ()


async def authenticate(request: Request, session: DbSession) -> AuthContext:
    """The caller in this request's unit of work: the key ``identify`` checked, or checked here."""
    early: AuthContext | None = getattr(request.state, "auth", None)
    if early is None:
        auth = await resolve_key(session, read_api_key(request))
    else:
        # Attach the rows to this session without reading them again (they are unchanged since).
        account = await session.merge(early.account, load=False)
        api_key = await session.merge(early.key, load=False)
        auth = AuthContext(account=account, key=api_key)
    now = utcnow()
    if auth.key.last_used_at is None or now - auth.key.last_used_at >= LAST_USED_RESOLUTION:
        auth.key.last_used_at = now
    return auth


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
    """A dependency: authenticate, rate-limit (unless exempt), then require one of ``scopes`` (none: any key;
    a route whose scope depends on the request checks the exact one with ``AuthContext.require``)."""

    def __init__(self, *scopes: Scope, rate_limited: bool = True) -> None:
        self.scopes = scopes
        self.rate_limited = rate_limited

    async def __call__(self, request: Request, session: DbSession) -> AuthContext:
        auth = await authenticate(request, session)
        if self.rate_limited:
            await apply_rate_limit(request, auth)
        if self.scopes:
            auth.require_any(self.scopes)
        return auth


class HubAuthenticator:
    """The shared HUB inference API: its own budget per key (100 calls/hour, spec §4), not the general one."""

    scopes = (Scope.inference,)

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
# A job is a training run, an export or a dataset ingest (the route checks which); the runners' job keys hold
# all three scopes.
JobsAuth = Annotated[AuthContext, Depends(Authenticator(Scope.training, Scope.exports, Scope.datasets))]
# An upload is for a dataset or a model (the route checks which, from the body or the upload session).
UploadsAuth = Annotated[AuthContext, Depends(Authenticator(Scope.datasets, Scope.models))]
