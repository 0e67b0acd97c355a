"""The real ``ultralytics-platform`` SDK (``Platform``/``AsyncPlatform``) against a live server."""

from __future__ import annotations

from typing import Any

import pytest
from ultralytics_platform import AsyncPlatform, Platform
from ultralytics_platform._exceptions import APIError

from tests.fixtures.server import LiveServer

pytestmark = pytest.mark.conformance


def loose(response: object) -> dict[str, Any]:
    """The SDK types some responses as unions of variants; the tests check the variant themselves."""
    assert isinstance(response, dict)
    return response


@pytest.fixture
def platform(live_server: LiveServer, admin_key: str) -> Platform:
    return Platform(base_url=live_server.base_url, api_key=admin_key, max_retries=0)


class TestAccount:
    def test_summary(self, platform: Platform) -> None:
        summary = platform.account.summary()
        assert summary["username"] == "admin"
        assert summary["accountType"] == "personal"
        assert summary["plan"] == "enterprise"
        assert isinstance(summary["creditsCents"], int)
        assert set(summary["counts"]) == {"projects", "datasets", "models"}
        assert summary["teams"] == []

    def test_api_keys(self, platform: Platform) -> None:
        keys = platform.account.api_keys()["keys"]
        assert keys
        assert {"keyId", "name", "keyPrefix", "createdAt"} <= set(keys[0])
        assert all(key["keyPrefix"].startswith("ul_") and len(key["keyPrefix"]) < 20 for key in keys)

    def test_wrong_key_is_401(self, live_server: LiveServer) -> None:
        stranger = Platform(base_url=live_server.base_url, api_key="ul_" + "0" * 40, max_retries=0)
        with pytest.raises(APIError) as raised:
            stranger.account.summary()
        assert raised.value.status_code == 401
        assert raised.value.json["error"]["code"] == "UNAUTHORIZED"


class TestProjectLifecycle:
    def test_create_list_retrieve_update_delete_trash_restore(self, platform: Platform) -> None:
        created = platform.projects.create(project="sdk-lifecycle", name="SDK Lifecycle", description="first")
        assert created["owner"] == "admin"
        assert created["project"] == "sdk-lifecycle"
        assert created["id"].startswith("project_")

        listed = platform.projects.list("admin")
        assert created["id"] in [project["id"] for project in listed["projects"]]
        assert listed["total"] >= 1

        retrieved = platform.projects.retrieve("admin", "sdk-lifecycle")
        assert retrieved["isOwner"] is True
        assert retrieved["models"] == []
        assert retrieved["project"]["description"] == "first"
        assert retrieved["project"]["metadata"] == {}

        updated = loose(platform.projects.update("admin", "sdk-lifecycle", name="SDK Renamed", description="second"))
        assert updated["project"] == "sdk-renamed"
        assert platform.projects.retrieve("admin", "sdk-renamed")["project"]["description"] == "second"

        assert platform.projects.delete("admin", "sdk-renamed") == {"success": True, "cascadedModels": 0}
        with pytest.raises(APIError) as raised:
            platform.projects.retrieve("admin", "sdk-renamed")
        assert raised.value.status_code == 404

        trash = loose(platform.lifecycle.trash())
        (item,) = [item for item in trash["items"] if item["_id"] == created["id"]]
        assert item["type"] == "project"
        assert item["slug"] == "sdk-renamed"
        assert item["daysRemaining"] == 30

        restored = platform.lifecycle.restore(id=created["id"], type="project")
        assert restored["success"] is True
        assert restored["restoredModels"] == 0
        assert platform.projects.retrieve("admin", "sdk-renamed")["project"]["id"] == created["id"]

    def test_existing_slug_is_409(self, platform: Platform) -> None:
        platform.projects.create(project="sdk-dupe", name="Dupe")
        with pytest.raises(APIError) as raised:
            platform.projects.create(project="sdk-dupe", name="Dupe again")
        assert raised.value.status_code == 409

    def test_delete_trash_for_good(self, platform: Platform) -> None:
        created = platform.projects.create(project="sdk-gone", name="Gone")
        platform.projects.delete("admin", "sdk-gone")
        deleted = platform.lifecycle.delete_trash(body={"id": created["id"], "type": "project"})
        assert deleted["success"] is True
        assert deleted["deletedCount"] == 1
        trash = loose(platform.lifecycle.trash())
        assert created["id"] not in [item["_id"] for item in trash["items"]]
        with pytest.raises(APIError) as raised:
            platform.lifecycle.restore(id=created["id"], type="project")
        assert raised.value.status_code == 404


class TestAsyncClient:
    async def test_async_summary_and_projects(self, live_server: LiveServer, admin_key: str) -> None:
        async with AsyncPlatform(base_url=live_server.base_url, api_key=admin_key, max_retries=0) as platform:
            summary = await platform.account.summary()
            created = await platform.projects.create(project="sdk-async", name="Async")
            listed = await platform.projects.list(summary["username"])
        assert created["id"] in [project["id"] for project in listed["projects"]]
