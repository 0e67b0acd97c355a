"""Activity (search, archived, mark seen, archive) and Trash (restore, empty) in the web app."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.factories import User, add_key
from tests.fixtures.trash import create_project
from tests.web.test_sign_in import csrf_of, sign_in, signed_in
from yolostack.core.db import Database

# Page mechanics over the services: the sessions' database work has its PostgreSQL run in test_sign_in.py.
pytestmark = [pytest.mark.sqlite_only]


class TestActivityPage:
    async def test_lists_searches_marks_seen_and_archives(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        await create_project(client, alice, "roads", name="Roads <b>")
        csrf = await signed_in(client, database, alice)
        page = await client.get("/activity")
        assert page.status_code == 200
        assert "Project &#39;Roads &lt;b&gt;&#39;" in page.text or "Roads &lt;b&gt;" in page.text
        assert 'class="unseen"' in page.text
        searched = await client.get("/activity", params={"search": "signed in"})
        assert "Signed in to the web app" in searched.text
        assert "Roads" not in searched.text

        assert (await client.post("/activity/mark-seen", data={"csrf_token": csrf})).status_code == 303
        assert 'class="unseen"' not in (await client.get("/activity")).text
        assert (await client.post("/activity/archive", data={"csrf_token": csrf})).status_code == 303
        assert "Nothing here." in (await client.get("/activity")).text
        assert "Roads" in (await client.get("/activity", params={"archived": "true"})).text


class TestTrashPage:
    async def test_restore_then_empty(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        project_id = await create_project(client, alice, "old", name="Old one")
        await create_project(client, alice, "older", name="Older one")
        for slug in ("old", "older"):
            assert (await client.delete(f"/api/projects/alice/{slug}", headers=alice.headers)).status_code < 300
        csrf = await signed_in(client, database, alice)
        page = await client.get("/trash")
        assert "Old one" in page.text
        assert "Older one" in page.text

        restored = await client.post(f"/trash/project/{project_id}/restore", data={"csrf_token": csrf})
        assert (restored.status_code, restored.headers["location"]) == (303, "/trash")
        assert (await client.get("/api/projects/alice/old", headers=alice.headers)).status_code == 200
        assert (await client.post("/trash/empty", data={"csrf_token": csrf})).status_code == 303
        assert "The trash is empty." in (await client.get("/trash")).text
        assert (await client.get("/api/projects/alice/older", headers=alice.headers)).status_code == 404

    async def test_another_account_s_item_is_a_404_page(
        self, client: httpx.AsyncClient, database: Database, alice: User, bob: User
    ) -> None:
        bobs = await create_project(client, bob, "bobs")
        assert (await client.delete("/api/projects/bob/bobs", headers=bob.headers)).status_code < 300
        csrf = await signed_in(client, database, alice)
        response = await client.post(f"/trash/project/{bobs}/restore", data={"csrf_token": csrf})
        assert response.status_code == 404
        assert "<h1>Not found</h1>" in response.text
        assert (await client.post("/trash/planet/x/restore", data={"csrf_token": csrf})).status_code == 404

    async def test_a_key_without_the_trash_scope_gets_a_403_page(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        projects_only = await add_key(database, alice, scopes=["projects"])
        await sign_in(client, api_key=projects_only)
        page = await client.get("/trash")
        assert page.status_code == 403
        assert "trash" in page.text
        csrf_of(await client.get("/login"))
