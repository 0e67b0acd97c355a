"""The pages at the URLs the clients print: ``/{owner}/{project}``, ``/{owner}/{project}/{model}`` (the trainer's
"View model at …") and ``/{owner}/datasets/{dataset}``; a private resource of another account is a 404 page."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.factories import User, create_model
from tests.fixtures.trash import create_project
from tests.web.test_sign_in import signed_in
from yolostack.core.db import Database

# Page mechanics over the services: the sessions' database work has its PostgreSQL run in test_sign_in.py.
pytestmark = [pytest.mark.sqlite_only]


class TestModelPage:
    async def test_shows_the_model_and_how_to_use_it(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        project_id = await create_project(client, alice, "cars", name="Cars <i>")
        await create_model(database, alice, project_id, "yolo-v1")
        await signed_in(client, database, alice)
        page = await client.get("/alice/cars/yolo-v1")
        assert page.status_code == 200
        assert 'YOLO("ul://alice/cars/yolo-v1")' in page.text.replace("&#34;", '"')
        assert "No weights yet." in page.text
        project = await client.get("/alice/cars")
        assert project.status_code == 200
        assert "Cars &lt;i&gt;" in project.text
        assert 'href="/alice/cars/yolo-v1"' in project.text

    async def test_another_account_s_private_model_is_a_404_page(
        self, client: httpx.AsyncClient, database: Database, alice: User, bob: User
    ) -> None:
        project_id = await create_project(client, bob, "secret")
        await create_model(database, bob, project_id, "hidden")
        await signed_in(client, database, alice)
        for path in ("/bob/secret/hidden", "/bob/secret", "/bob/secret/hidden/live", "/nobody/x/y"):
            page = await client.get(path)
            assert page.status_code == 404, path
            assert page.headers["content-type"].startswith("text/html"), path
            assert "<h1>Not found</h1>" in page.text, path

    async def test_needs_a_session(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.get("/alice/cars/yolo-v1")
        assert (response.status_code, response.headers["location"]) == (303, "/login?next=%2Falice%2Fcars%2Fyolo-v1")


class TestDatasetPage:
    async def test_shows_the_dataset(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        created = await client.post(
            "/api/datasets", headers=alice.headers, json={"dataset": "shapes", "name": "Shapes", "task": "detect"}
        )
        assert created.status_code == 201
        await signed_in(client, database, alice)
        page = await client.get("/alice/datasets/shapes")
        assert page.status_code == 200
        assert "ul://alice/datasets/shapes" in page.text
        assert (await client.get("/alice/datasets/missing")).status_code == 404


class TestApiPathsStayApi:
    async def test_an_unknown_api_path_is_the_json_404(self, client: httpx.AsyncClient, alice: User) -> None:
        for method, path in (
            ("GET", "/api/nothing/here"),
            ("GET", "/api/a/b/c"),
            ("GET", "/v1/a/b"),
            # No webhook id: the page /{owner}/{project}/{model} has the path (GET only) but is not a match.
            ("DELETE", "/api/webhooks/0"),
        ):
            response = await client.request(method, path, headers=alice.headers)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "NOT_FOUND", path
