"""The web app's pages for signing in, the home page and API keys; ``resources`` adds the datasets and the pages
at the URLs the clients print. A page calls the same services as the API and renders a template; it never
builds SQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from yolostack.account.service import account as account_service
from yolostack.activity.service import activity as activity_service
from yolostack.api_keys.schemas import ApiKeyCreate
from yolostack.api_keys.service import api_key as api_key_service
from yolostack.auth.ratelimit import RateLimiter, Window
from yolostack.auth.scopes import Scope
from yolostack.core.db import DbSession
from yolostack.core.errors import AppError, NotFound, RateLimited
from yolostack.core.pagination import PageParams
from yolostack.core.timeutil import utcnow
from yolostack.storage.usage import measure, quota
from yolostack.trash.service import trash as trash_service
from yolostack.web.auth import (
    SESSION_COOKIE,
    PageAction,
    PageUser,
    check_login_csrf,
    csrf_checked,
    keep_login_csrf,
    login_csrf,
    set_session_cookie,
)
from yolostack.web.pages import (
    PageRoute,
    first_problem,
    render,
    settings_of,
)
from yolostack.web.resources import router as resources_router
from yolostack.web.service import SignedIn, web_auth

router = APIRouter(route_class=PageRoute, include_in_schema=False, default_response_class=HTMLResponse)


def _safe_next(target: str | None) -> str:
    """Only a path on this server: ``//host`` or ``https://…`` would make the sign-in form an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def _limit_attempts(request: Request, username: str) -> None:
    """Password guesses are bounded per client address and per username."""
    limiter: RateLimiter = request.app.state.rate_limiter
    windows = (Window(settings_of(request).web.login_attempts_per_minute, 60),)
    client = request.client.host if request.client else "unknown"
    for bucket in (f"login-ip:{client}", f"login-user:{username.strip().lower()[:128]}"):
        result = await limiter.hit(bucket, windows)
        if not result.allowed:
            raise RateLimited(f"Too many sign-in attempts; try again in {result.retry_after} s")


def _signed_in(request: Request, signed_in: SignedIn, target: str) -> RedirectResponse:
    response = RedirectResponse(target, status_code=303)
    max_age = int(timedelta(hours=settings_of(request).web.session_ttl_hours).total_seconds())
    set_session_cookie(request, response, signed_in.token, max_age)
    return response


# --- signing in and out -------------------------------------------------------------------------------------------


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    csrf = login_csrf(request)
    response = render(request, "login.html", next=_safe_next(next), username="", error=None, csrf=csrf)
    keep_login_csrf(request, response, csrf)
    return response


@router.post("/login")
async def sign_in(
    request: Request,
    session: DbSession,
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    username: Annotated[str, Form(max_length=128)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    api_key: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/",
) -> Response:
    check_login_csrf(request, csrf_token)
    target = _safe_next(next)
    user_agent = request.headers.get("user-agent")
    settings = settings_of(request).web
    try:
        await _limit_attempts(request, username or "(api key)")
        if api_key.strip():
            auth = await web_auth.key_auth(session, api_key)
            signed_in = await web_auth.open(
                session, settings, auth.account, key=auth.key, user_agent=user_agent, how="API key"
            )
        else:
            account = await web_auth.password_account(session, username, password)
            signed_in = await web_auth.open(session, settings, account, user_agent=user_agent)
    except AppError as error:
        return render(
            request,
            "login.html",
            error.status_code if error.status_code in (401, 429) else 400,
            next=target,
            username=username,
            error=error.message,
            csrf=csrf_token,
            api_key_open=bool(api_key),
        )
    return _signed_in(request, signed_in, target)


@router.post("/logout", dependencies=[Depends(csrf_checked)])
async def sign_out(request: Request, session: DbSession) -> Response:
    await web_auth.close(session, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/login/link/{token}")
async def sign_in_link_page(request: Request, session: DbSession, token: str) -> HTMLResponse:
    """A link's page only offers to sign in: a link preview or a prefetch must not use it up."""
    usable = len(token) <= 128 and await web_auth.link_is_usable(session, token)
    csrf = login_csrf(request)
    response = render(request, "link.html", 200 if usable else 404, usable=usable, token=token, csrf=csrf)
    keep_login_csrf(request, response, csrf)
    return response


@router.post("/login/link/{token}")
async def sign_in_with_link(
    request: Request, session: DbSession, token: str, csrf_token: Annotated[str, Form(max_length=128)] = ""
) -> Response:
    check_login_csrf(request, csrf_token)
    account = await web_auth.use_link(session, token[:128])
    signed_in = await web_auth.open(
        session, settings_of(request).web, account, user_agent=request.headers.get("user-agent"), how="sign-in link"
    )
    return _signed_in(request, signed_in, "/")


# --- pages ---------------------------------------------------------------------------------------------------------


@router.get("/")
async def home(request: Request, session: DbSession, user: PageUser) -> HTMLResponse:
    account = user.auth.account
    summary = await account_service.summary(session, account)
    used = (await measure(session, account.id)).total
    limit = quota(settings_of(request), account)
    events, _ = await activity_service.list_events(session, account.id, PageParams(page=1, limit=10))
    storage = {"used": used, "limit": limit, "percent": round(100 * used / limit, 1) if limit else 0}
    return render(request, "home.html", nav="home", summary=summary, storage=storage, events=events)


@router.get("/settings/api-keys")
async def api_keys_page(request: Request, session: DbSession, user: PageUser) -> HTMLResponse:
    return await _api_keys(request, session, user)


async def _api_keys(
    request: Request, session: DbSession, user: SignedIn, status_code: int = 200, **context: Any
) -> HTMLResponse:
    keys = await api_key_service.list_active(session, user.auth.account_id)
    scopes = [str(scope) for scope in Scope]
    return render(request, "api_keys.html", status_code, nav="keys", keys=keys, scopes=scopes, **context)


@router.post("/settings/api-keys")
async def create_api_key(
    request: Request,
    session: DbSession,
    user: PageAction,
    name: Annotated[str, Form(max_length=1024)] = "",
    scopes: Annotated[list[str] | None, Form(max_length=32)] = None,
    expires_in_days: Annotated[str, Form(max_length=16)] = "",
) -> HTMLResponse:
    try:
        days = int(expires_in_days) if expires_in_days.strip() else None
        if days is not None and not 1 <= days <= 3650:
            raise ValueError
    except ValueError:
        return await _api_keys(request, session, user, 422, error="Expiry: a number of days from 1 to 3650")
    try:
        data = ApiKeyCreate.model_validate(
            {"name": name, "scopes": scopes or [], "expiresAt": utcnow() + timedelta(days=days) if days else None}
        )
    except ValidationError as error:
        return await _api_keys(request, session, user, 422, error=first_problem(error))
    key, plaintext = await api_key_service.create(session, user.auth, data)
    return await _api_keys(request, session, user, 201, created=key, created_key=plaintext)


@router.post("/settings/api-keys/{key_id}/revoke")
async def revoke_api_key(session: DbSession, user: PageAction, key_id: str) -> Response:
    await api_key_service.revoke(session, user.auth.account_id, key_id[:64], by=user.auth)
    return RedirectResponse("/settings/api-keys", status_code=303)


# --- activity and trash --------------------------------------------------------------------------------------------


@router.get("/activity")
async def activity_page(
    request: Request,
    session: DbSession,
    user: PageUser,
    search: Annotated[str | None, Query(max_length=200)] = None,
    archived: bool = False,
) -> HTMLResponse:
    user.auth.require(Scope.activity)
    account_id = user.auth.account_id
    events, total = await activity_service.list_events(
        session, account_id, PageParams(page=1, limit=100), search=search or None, archived=archived
    )
    unseen = await activity_service.count_unseen(session, account_id)
    return render(
        request,
        "activity.html",
        nav="activity",
        events=events,
        total=total,
        unseen=unseen,
        search=search,
        archived=archived,
    )


@router.post("/activity/mark-seen")
async def mark_activity_seen(session: DbSession, user: PageAction) -> Response:
    user.auth.require(Scope.activity)
    await activity_service.mark_seen(session, user.auth.account_id, None)
    return RedirectResponse("/activity", status_code=303)


@router.post("/activity/archive")
async def archive_activity(session: DbSession, user: PageAction) -> Response:
    user.auth.require(Scope.activity)
    await activity_service.archive(session, user.auth.account_id, None)
    return RedirectResponse("/activity", status_code=303)


@router.get("/trash")
async def trash_page(request: Request, session: DbSession, user: PageUser) -> HTMLResponse:
    user.auth.require(Scope.trash)
    items = await trash_service.list_items(session, user.auth.account_id, None)
    return render(request, "trash.html", nav="trash", items=items)


@router.post("/trash/{kind}/{item_id}/restore")
async def restore_from_trash(session: DbSession, user: PageAction, kind: str, item_id: str) -> Response:
    user.auth.require(Scope.trash)
    if kind not in ("project", "dataset", "model"):
        raise NotFound(f"no {kind[:32]} in the trash")
    await trash_service.restore(session, user.auth.account_id, kind, item_id[:64])
    return RedirectResponse("/trash", status_code=303)


@router.post("/trash/empty")
async def empty_trash(session: DbSession, user: PageAction) -> Response:
    user.auth.require(Scope.trash)
    await trash_service.empty(session, user.auth.account_id)
    return RedirectResponse("/trash", status_code=303)


# The owners' pages last: /{owner}/{project} would take /datasets/… and /settings/….
router.include_router(resources_router)
