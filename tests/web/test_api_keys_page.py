"""Settings → API keys: create (name, scopes, expiry) with the plaintext shown once, list with last use, revoke;
names render as text; another account's key is a 404 page."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.fixtures.factories import User
from tests.web.test_sign_in import csrf_of, signed_in
from yolostack.core.db import Database

NEW_KEY = re.compile(r'id="new-key" readonly value="(ul_[0-9a-f]{40})"')

# Page mechanics over the services: the sessions' database work has its PostgreSQL run in test_sign_in.py.
pytestmark = [pytest.mark.sqlite_only]


async def create_key(client: httpx.AsyncClient, csrf: str, **fields: object) -> httpx.Response:
    return await client.post("/settings/api-keys", data={"csrf_token": csrf, **fields})


class TestCreateKey:
    async def test_shown_once_then_works_with_the_api(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        csrf = await signed_in(client, database, alice)
        created = await create_key(client, csrf, name="laptop", scopes=["projects", "datasets"], expires_in_days="30")
        assert created.status_code == 201
        match = NEW_KEY.search(created.text)
        assert match is not None, created.text
        key = match.group(1)
        assert "shown only this once" in created.text

        listing = await client.get("/settings/api-keys")
        assert key not in listing.text
        assert key[:11] in listing.text  # its prefix, to recognise it
        assert "datasets, projects" in listing.text
        summary = await client.get("/api/projects", headers={"Authorization": f"Bearer {key}"})
        assert summary.status_code == 200
        denied = await client.get("/api/storage", headers={"Authorization": f"Bearer {key}"})
        assert denied.status_code == 403

    async def test_a_name_renders_as_text(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        csrf = await signed_in(client, database, alice)
        hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
        await create_key(client, csrf, name=hostile)
        page = await client.get("/settings/api-keys")
        assert hostile not in page.text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page.text

    async def test_bad_fields_say_what_is_wrong(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        csrf = await signed_in(client, database, alice)
        blank = await create_key(client, csrf, name="   ")
        assert blank.status_code == 422
        assert "name" in blank.text
        assert (await create_key(client, csrf, name="k", expires_in_days="0")).status_code == 422
        assert (await create_key(client, csrf, name="k", expires_in_days="soon")).status_code == 422
        assert (await create_key(client, csrf, name="k", scopes=["root"])).status_code == 422

    async def test_needs_the_csrf_token(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        await signed_in(client, database, alice)
        refused = await client.post("/settings/api-keys", data={"name": "sneaky"})
        assert refused.status_code == 403
        assert "sneaky" not in (await client.get("/settings/api-keys")).text


class TestRevokeKey:
    async def test_revoked_key_stops_working(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        csrf = await signed_in(client, database, alice)
        response = await client.post(f"/settings/api-keys/{alice.key_id}/revoke", data={"csrf_token": csrf})
        assert (response.status_code, response.headers["location"]) == (303, "/settings/api-keys")
        assert (await client.get("/api/projects", headers=alice.headers)).status_code == 401
        assert alice.key[:11] not in (await client.get("/settings/api-keys")).text

    async def test_another_account_s_key_is_a_404_page(
        self, client: httpx.AsyncClient, database: Database, alice: User, bob: User
    ) -> None:
        csrf = await signed_in(client, database, alice)
        response = await client.post(f"/settings/api-keys/{bob.key_id}/revoke", data={"csrf_token": csrf})
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "Not found" in response.text
        assert (await client.get("/api/projects", headers=bob.headers)).status_code == 200


class TestHome:
    async def test_counts_storage_and_activity(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        await client.post("/api/projects", headers=alice.headers, json={"project": "cars", "name": "Cars <b>"})
        csrf_of(await client.get("/login"))
        await signed_in(client, database, alice)
        home = await client.get("/")
        assert home.status_code == 200
        assert re.search(r'<span class="number">1</span> projects', home.text)
        assert "of 10.0 GB stored" in home.text
        assert "Cars &lt;b&gt;" in home.text  # the activity line names it, escaped
        assert "Signed in to the web app (password)" in home.text
