"""Deployment requests as the schemas read them: typed bodies (422 naming the field), the seed list's page
and ``meta``, and the PATCH shapes. No replica runs here (``run_replicas=false``): nothing is served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.app import make_settings
from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User
from tests.models.helpers import create_project, uploaded_model
from yolostack.config import Settings

DEPLOYMENTS = "/api/deployments"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "data", deployments={"run_replicas": False})


@pytest.fixture
async def model(client: httpx.AsyncClient, alice: User) -> dict[str, Any]:
    project_id = await create_project(client, alice, "cars")
    return await uploaded_model(client, alice, project_id, name="detector")


async def deploy(client: httpx.AsyncClient, user: User, slug: str, model: dict[str, Any]) -> dict[str, Any]:
    body = {"project": "cars", "model": model["slug"], "deployment": slug, "name": slug, "region": "us-central1"}
    return ok(await client.post(f"{DEPLOYMENTS}/{user.username}", json=body, headers=user.headers), 201)


def field_of(response: httpx.Response) -> str:
    error = assert_error(response, 422, "VALIDATION_ERROR")["error"]
    field: str = error["details"][0]["field"]
    assert error["details"][0]["message"]
    return field


class TestCreateBodies:
    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"project": 5}, "project"),
            ({"model": None}, "model"),
            ({"deployment": ""}, "deployment"),
            ({"cpu": "two"}, "cpu"),
            ({"cpu": 3}, "cpu"),
            ({"memoryGi": 5}, "memoryGi"),
            ({"minInstances": -1}, "minInstances"),
            ({"maxInstances": 1e9}, "maxInstances"),
            ({"region": ["us"]}, "region"),
        ],
    )
    async def test_field_of_the_wrong_type_is_named(
        self, client: httpx.AsyncClient, alice: User, change: dict[str, Any], field: str
    ) -> None:
        body = {"project": "cars", "model": "detector", "deployment": "edge", "name": "Edge", **change}
        assert field_of(await client.post(f"{DEPLOYMENTS}/alice", json=body, headers=alice.headers)) == field

    @pytest.mark.parametrize(("body", "field"), [({}, "modelId"), ({"modelId": 7}, "modelId")])
    async def test_seed_body_needs_a_model_id(
        self, client: httpx.AsyncClient, alice: User, body: dict[str, Any], field: str
    ) -> None:
        assert field_of(await client.post(DEPLOYMENTS, json=body, headers=alice.headers)) == field

    async def test_a_body_that_is_not_an_object_is_refused(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.post(f"{DEPLOYMENTS}/alice", json=["project"], headers=alice.headers)
        assert_error(response, 422, "VALIDATION_ERROR")


class TestUpdateBodies:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"action": "teleport"}, "action"),
            ({"action": "resize", "cpu": "x"}, "cpu"),
            ({"metadata": "team=qa"}, "metadata"),
            ({"name": 12}, "name"),
        ],
    )
    async def test_field_of_the_wrong_type_is_named(
        self, client: httpx.AsyncClient, alice: User, model: dict[str, Any], body: dict[str, Any], field: str
    ) -> None:
        await deploy(client, alice, "edge", model)
        assert field_of(await client.patch(f"{DEPLOYMENTS}/alice/edge", json=body, headers=alice.headers)) == field

    async def test_empty_body_names_the_three_shapes(
        self, client: httpx.AsyncClient, alice: User, model: dict[str, Any]
    ) -> None:
        await deploy(client, alice, "edge", model)
        response = await client.patch(f"{DEPLOYMENTS}/alice/edge", json={}, headers=alice.headers)
        assert "{action}, {name} or {metadata}" in assert_error(response, 422, "VALIDATION_ERROR")["error"]["message"]

    async def test_null_name_is_refused(self, client: httpx.AsyncClient, alice: User, model: dict[str, Any]) -> None:
        await deploy(client, alice, "edge", model)
        response = await client.patch(f"{DEPLOYMENTS}/alice/edge", json={"name": None}, headers=alice.headers)
        assert field_of(response) == "name"

    async def test_name_and_metadata_together(
        self, client: httpx.AsyncClient, alice: User, model: dict[str, Any]
    ) -> None:
        await deploy(client, alice, "edge", model)
        body = {"name": "Edge Two", "metadata": {"team": "qa"}}
        changed = ok(await client.patch(f"{DEPLOYMENTS}/alice/edge", json=body, headers=alice.headers))
        assert changed["message"] == "updated metadata and name"
        assert changed["deployment"]["deployment"] == "edge-two"
        assert changed["deployment"]["metadata"] == {"team": "qa"}
        path = f"{DEPLOYMENTS}/alice/edge-two"
        cleared = ok(await client.patch(path, json={"metadata": None}, headers=alice.headers))
        assert cleared["deployment"]["metadata"] == {}

    async def test_stop_then_start(self, client: httpx.AsyncClient, alice: User, model: dict[str, Any]) -> None:
        created = await deploy(client, alice, "edge", model)
        stopped = ok(await client.post(f"{DEPLOYMENTS}/{created['id']}/stop", headers=alice.headers))
        assert stopped["status"] == "stopping"
        assert stopped["data"]["id"] == created["id"]
        started = ok(await client.patch(f"{DEPLOYMENTS}/alice/edge", json={"action": "start"}, headers=alice.headers))
        assert started["message"] == "deployment is starting"


class TestSeedList:
    async def test_pages_carry_meta(self, client: httpx.AsyncClient, alice: User, model: dict[str, Any]) -> None:
        for slug in ("one", "two", "three"):
            await deploy(client, alice, slug, model)
        first = ok(await client.get(DEPLOYMENTS, params={"limit": 2}, headers=alice.headers))
        assert first["meta"] == {"page": 1, "limit": 2, "total": 3}
        assert [item["deployment"] for item in first["data"]] == ["three", "two"]
        assert first["deployments"] == first["data"]
        assert first["total"] == 3
        second = ok(await client.get(DEPLOYMENTS, params={"page": 2, "limit": 2}, headers=alice.headers))
        assert second["meta"] == {"page": 2, "limit": 2, "total": 3}
        assert [item["deployment"] for item in second["data"]] == ["one"]

    async def test_defaults_and_filters(self, client: httpx.AsyncClient, alice: User, model: dict[str, Any]) -> None:
        await deploy(client, alice, "one", model)
        body = ok(await client.get(DEPLOYMENTS, params={"modelId": model["id"]}, headers=alice.headers))
        assert body["meta"] == {"page": 1, "limit": 20, "total": 1}
        stopped = ok(await client.get(DEPLOYMENTS, params={"status": "stopped"}, headers=alice.headers))
        assert stopped["meta"]["total"] == 0

    @pytest.mark.parametrize(
        ("params", "field"),
        [({"page": 0}, "page"), ({"limit": 101}, "limit"), ({"limit": "x"}, "limit"), ({"status": "gone"}, "status")],
    )
    async def test_invalid_query_is_named(
        self, client: httpx.AsyncClient, alice: User, params: dict[str, Any], field: str
    ) -> None:
        assert field_of(await client.get(DEPLOYMENTS, params=params, headers=alice.headers)) == field
