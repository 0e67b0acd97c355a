"""Signing in to the web app: passwords (argon2id), API keys and one-time links open a server-side session held
in an HttpOnly, SameSite cookie; every state-changing page request carries the session's CSRF token; sign-in
attempts are rate-limited; signing out ends the session on the server."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from tests.fixtures.factories import User, add_key
from yolostack.account.service import account as account_service
from yolostack.config import WebSettings
from yolostack.core.db import Database
from yolostack.core.errors import BadRequest
from yolostack.core.timeutil import utcnow
from yolostack.tables import WebSession
from yolostack.web.auth import LOGIN_CSRF_COOKIE, SESSION_COOKIE
from yolostack.web.service import web_auth

PASSWORD = "correct horse battery staple"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


async def set_password(database: Database, user: User, password: str = PASSWORD) -> None:
    async with database.sessionmaker() as session, session.begin():
        await web_auth.set_password(session, user.username, password)


def csrf_of(page: httpx.Response) -> str:
    match = CSRF_INPUT.search(page.text)
    assert match is not None, page.text[:500]
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    """Open the sign-in page (for its CSRF cookie and field), then send the form."""
    page = await client.get("/login")
    return await client.post("/login", data={"csrf_token": csrf_of(page), **fields})


async def signed_in(client: httpx.AsyncClient, database: Database, user: User) -> str:
    """Sign ``user`` in with a password; returns the session's CSRF token (from the home page)."""
    await set_password(database, user)
    response = await sign_in(client, username=user.username, password=PASSWORD)
    assert response.status_code == 303, response.text
    return csrf_of(await client.get("/"))


class TestSignInPage:
    async def test_pages_redirect_to_sign_in_with_where_to_go_back(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/")).headers["location"] == "/login"
        response = await client.get("/settings/api-keys")
        assert (response.status_code, response.headers["location"]) == (303, "/login?next=%2Fsettings%2Fapi-keys")

    async def test_the_form_is_labelled_and_sets_its_csrf_cookie(self, client: httpx.AsyncClient) -> None:
        page = await client.get("/login")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<label for="username">' in page.text
        assert '<label for="password">' in page.text
        assert csrf_of(page) == client.cookies[LOGIN_CSRF_COOKIE]
        assert "httponly" in page.headers["set-cookie"].lower()


class TestPassword:
    async def test_signs_in_with_a_session_cookie(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        await set_password(database, alice)
        response = await sign_in(client, username="alice", password=PASSWORD, next="/settings/api-keys")
        assert (response.status_code, response.headers["location"]) == (303, "/settings/api-keys")
        cookie = next(value for name, value in response.headers.multi_items() if name == "set-cookie")
        assert cookie.startswith(f"{SESSION_COOKIE}=")
        assert "httponly" in cookie.lower()
        assert "samesite=lax" in cookie.lower()
        home = await client.get("/")
        assert home.status_code == 200
        assert "alice" in home.text
        assert "Sign out" in home.text

    @pytest.mark.parametrize(("username", "password"), [("alice", "wrong password"), ("nobody", PASSWORD)])
    async def test_wrong_credentials_are_one_message(
        self, client: httpx.AsyncClient, database: Database, alice: User, username: str, password: str
    ) -> None:
        await set_password(database, alice)
        response = await sign_in(client, username=username, password=password)
        assert response.status_code == 401
        assert "Wrong username or password" in response.text
        assert SESSION_COOKIE not in client.cookies

    async def test_an_account_without_a_password_cannot_use_one(self, client: httpx.AsyncClient, alice: User) -> None:
        assert (await sign_in(client, username="alice", password="")).status_code == 401

    async def test_the_form_needs_its_csrf_token(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        await set_password(database, alice)
        await client.get("/login")
        response = await client.post("/login", data={"username": "alice", "password": PASSWORD})
        assert response.status_code == 403
        forged = await client.post("/login", data={"csrf_token": "x" * 43, "username": "alice", "password": PASSWORD})
        assert forged.status_code == 403

    @pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example"])
    async def test_next_never_leaves_the_server(
        self, client: httpx.AsyncClient, database: Database, alice: User, target: str
    ) -> None:
        await set_password(database, alice)
        response = await sign_in(client, username="alice", password=PASSWORD, next=target)
        assert response.headers["location"] == "/"

    async def test_attempts_are_rate_limited(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        await set_password(database, alice)
        page = await client.get("/login")
        form = {"csrf_token": csrf_of(page), "username": "alice", "password": "guess"}
        statuses = [
            (await client.post("/login", data=form)).status_code for _ in range(WebSettings().login_attempts_per_minute)
        ]
        assert set(statuses) == {401}
        refused = await client.post("/login", data={**form, "password": PASSWORD})
        assert refused.status_code == 429
        assert "Too many sign-in attempts" in refused.text

    async def test_a_short_password_is_refused(self, database: Database, alice: User) -> None:
        with pytest.raises(BadRequest, match="8 to 1024 characters"):
            await set_password(database, alice, "short")


class TestApiKey:
    async def test_a_key_signs_in_with_its_own_rights(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        trash_only = await add_key(database, alice, scopes=["trash"])
        response = await sign_in(client, api_key=trash_only)
        assert response.status_code == 303
        page = await client.get("/settings/api-keys")
        refused = await client.post(
            "/settings/api-keys", data={"csrf_token": csrf_of(page), "name": "wider", "scopes": ["projects"]}
        )
        assert refused.status_code == 403
        assert "subset of its own scopes" in refused.text

    async def test_the_session_ends_with_its_key(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        key = await add_key(database, alice)
        await sign_in(client, api_key=key)
        assert (await client.get("/")).status_code == 200
        listing = (await client.get("/api/api-keys", headers=alice.headers)).json()["data"]
        key_id = next(item["id"] for item in listing if item["name"] == "extra key")
        assert (await client.delete(f"/api/api-keys/{key_id}", headers=alice.headers)).status_code < 300
        assert (await client.get("/")).status_code == 303

    async def test_a_wrong_key_is_refused(self, client: httpx.AsyncClient) -> None:
        response = await sign_in(client, api_key="ul_" + "0" * 40)
        assert response.status_code == 401
        assert "Invalid API key" in response.text


class TestSignOut:
    async def test_ends_the_session_on_the_server(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        csrf = await signed_in(client, database, alice)
        token = client.cookies[SESSION_COOKIE]
        response = await client.post("/logout", data={"csrf_token": csrf})
        assert (response.status_code, response.headers["location"]) == (303, "/login")
        # The old cookie, replayed, no longer opens a page.
        client.cookies.set(SESSION_COOKIE, token)
        assert (await client.get("/")).status_code == 303

    async def test_needs_the_csrf_token(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        await signed_in(client, database, alice)
        assert (await client.post("/logout")).status_code == 403
        assert (await client.post("/logout", headers={"X-CSRF-Token": "forged"})).status_code == 403
        assert (await client.get("/")).status_code == 200

    async def test_an_expired_session_signs_in_again(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        await signed_in(client, database, alice)
        async with database.sessionmaker() as session, session.begin():
            await session.execute(update(WebSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        assert (await client.get("/")).status_code == 303


class TestSignInLink:
    async def test_signs_in_once(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        async with database.sessionmaker() as session, session.begin():
            token = await web_auth.issue_link(session, WebSettings(), alice.account)
        page = await client.get(f"/login/link/{token}")
        assert page.status_code == 200
        again = await client.get(f"/login/link/{token}")  # a preview or a prefetch does not use it up
        assert again.status_code == 200
        response = await client.post(f"/login/link/{token}", data={"csrf_token": csrf_of(page)})
        assert (response.status_code, response.headers["location"]) == (303, "/")
        assert "alice" in (await client.get("/")).text

        other = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
        async with other:
            used = await other.get(f"/login/link/{token}")
            assert used.status_code == 404
            assert "used or has expired" in used.text
            replay = await other.post(f"/login/link/{token}", data={"csrf_token": csrf_of(await other.get("/login"))})
            assert replay.status_code == 401


class TestReservedUsernames:
    @pytest.mark.parametrize("username", ["login", "settings", "api", "static", "d"])
    async def test_app_paths_cannot_be_usernames(self, database: Database, username: str) -> None:
        async with database.sessionmaker() as session:
            with pytest.raises(BadRequest, match="reserved"):
                await account_service.create(session, username=username)


class TestAssets:
    @pytest.mark.parametrize(
        "path", ["/static/app.css", "/static/upload.js", "/static/favicon.svg", "/static/vendor/htmx/htmx.min.js"]
    )
    async def test_served_from_the_package(self, client: httpx.AsyncClient, path: str) -> None:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert len(response.content) > 100
