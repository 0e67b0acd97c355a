"""Who is looking at a page: the session cookie, and the CSRF token every state-changing page request carries.

The session cookie is HttpOnly and SameSite=Lax (Secure when the server is reached over https); state-changing
requests also need the session's CSRF token (a form field or the ``X-CSRF-Token`` header htmx sends). The
sign-in form, which has no session yet, is protected the double-submit way: a random cookie and the same
value in the form.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request, Response

from yolostack.core.db import DbSession
from yolostack.core.errors import AppError, Forbidden
from yolostack.web.service import SignedIn, web_auth

SESSION_COOKIE = "yolostack_session"
LOGIN_CSRF_COOKIE = "yolostack_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class SignInRequired(AppError):
    """No live session: pages answer with a redirect to the sign-in page (``PageRoute``)."""

    status_code = 401
    code = "UNAUTHORIZED"
    default_message = "Sign in to see this page"


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(request: Request, response: Response, token: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age, httponly=True, samesite="lax", secure=secure(request), path="/"
    )


def login_csrf(request: Request) -> str:
    """The sign-in form's token: the browser's cookie, or a new one (``keep_login_csrf`` sets it)."""
    return request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)


def keep_login_csrf(request: Request, response: Response, token: str) -> None:
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure(request), path="/")


def check_login_csrf(request: Request, sent: str | None) -> None:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise Forbidden("The sign-in form expired; reload the page and try again")


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login" if target == "/" else f"/login?next={quote(target, safe='')}"


async def current_user(request: Request, session: DbSession) -> SignedIn:
    """The page's caller; ``SignInRequired`` (a redirect to the sign-in page) when there is none."""
    signed_in = await web_auth.current(session, request.cookies.get(SESSION_COOKIE))
    if signed_in is None:
        raise SignInRequired()
    request.state.page_user = signed_in
    return signed_in


async def csrf_checked(request: Request, signed_in: Annotated[SignedIn, Depends(current_user)]) -> SignedIn:
    """``current_user`` for a state-changing request: its CSRF token must be the session's."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = str((await request.form()).get(CSRF_FIELD) or "")
    if not sent or not hmac.compare_digest(sent, signed_in.session.csrf_token):
        raise Forbidden("This form expired (missing or wrong CSRF token); reload the page and try again")
    return signed_in


PageUser = Annotated[SignedIn, Depends(current_user)]
PageAction = Annotated[SignedIn, Depends(csrf_checked)]
