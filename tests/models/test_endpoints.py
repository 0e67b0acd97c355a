"""Models: seed routes by id (``/api/models[/{modelId}[/files]]``) and client routes by
``{owner}/{project}[/{model}[/files]]`` (clients.md §1.4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.fixtures.activity_log import activity_events
from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User, add_key
from tests.fixtures.trash import TRASH
from tests.models.helpers import (
    MODELS,
    WEIGHTS,
    create_model,
    create_project,
    download,
    get_model,
    uploaded_model,
)
from yolostack.config import Settings
from yolostack.core.db import Database


def assert_validation_error(response: httpx.Response) -> None:
    """The spec allows either status for a ``VALIDATION_ERROR``."""
    assert response.status_code == 422, response.text
    assert_error(response, response.status_code, "VALIDATION_ERROR")


@pytest.fixture
async def cars(client: httpx.AsyncClient, alice: User) -> str:
    """Alice's private project ``alice/cars``; returns its id."""
    return await create_project(client, alice, "cars")


@pytest.fixture
async def detector(client: httpx.AsyncClient, alice: User, cars: str) -> dict[str, Any]:
    """Alice's private model ``alice/cars/detector``; returns the create response."""
    return await create_model(client, alice, "cars", model="detector", name="Detector", task="detect")


class TestCreateModel:
    async def test_client_body_returns_top_level_fields(
        self, client: httpx.AsyncClient, alice: User, cars: str
    ) -> None:
        body = await create_model(
            client,
            alice,
            "cars",
            owner="alice",
            model="yolo-cars",
            name="YOLO Cars",
            description="street scenes",
            metadata={"source": "cli"},
            task="detect",
            epochs=10,
            trainArgs={"imgsz": 640},
        )
        assert body["id"].startswith("model_")
        assert body["owner"] == "alice"
        assert body["project"] == "cars"
        assert body["model"] == "yolo-cars"
        assert body["name"] == "YOLO Cars"
        assert body["region"]
        data = body["data"]
        assert data["id"] == body["id"]
        assert data["slug"] == "yolo-cars"
        assert data["projectId"] == cars
        assert data["task"] == "detect"
        assert data["epochs"] == 10
        assert data["trainArgs"] == {"imgsz": 640}
        assert data["visibility"] == "private"
        assert data["hasWeights"] is False
        assert data["file"] is None
        assert data["serving"] == {"status": "none", "error": None}
        detail = await get_model(client, alice, body["id"])
        assert detail["metadata"] == {"source": "cli"}
        assert detail["description"] == "street scenes"

    async def test_slug_derives_from_name(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        body = await create_model(client, alice, "cars", name="My Best Detector")
        assert body["model"] == "my-best-detector"
        assert body["name"] == "My Best Detector"

    async def test_without_slug_or_name(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        body = await create_model(client, alice, "cars")
        assert body["model"] == "model"
        assert body["name"] == "model"

    async def test_project_by_id(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        body = await create_model(client, alice, cars, model="by-id")
        assert body["project"] == "cars"
        assert body["data"]["projectId"] == cars

    async def test_slug_collision_gets_a_number(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        slugs = [(await create_model(client, alice, "cars", model="yolo"))["model"] for _ in range(3)]
        assert slugs == ["yolo", "yolo-2", "yolo-3"]

    async def test_same_slug_in_another_project_is_allowed(
        self, client: httpx.AsyncClient, alice: User, cars: str
    ) -> None:
        await create_project(client, alice, "bikes")
        await create_model(client, alice, "cars", model="yolo")
        assert (await create_model(client, alice, "bikes", model="yolo"))["model"] == "yolo"

    async def test_other_accounts_project_by_id_is_404(self, client: httpx.AsyncClient, bob: User, cars: str) -> None:
        response = await client.post(MODELS, json={"project": cars}, headers=bob.headers)
        assert_error(response, 404, "NOT_FOUND")

    async def test_other_accounts_public_project_is_404(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        shared = await create_project(client, alice, "shared", visibility="public")
        response = await client.post(MODELS, json={"project": shared}, headers=bob.headers)
        assert_error(response, 404, "NOT_FOUND")

    async def test_unknown_project_slug_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.post(MODELS, json={"project": "nowhere"}, headers=alice.headers)
        assert_error(response, 404, "NOT_FOUND")

    async def test_other_owner_is_404(self, client: httpx.AsyncClient, alice: User, bob: User, cars: str) -> None:
        response = await client.post(MODELS, json={"owner": "alice", "project": "cars"}, headers=bob.headers)
        assert_error(response, 404, "NOT_FOUND")

    async def test_invalid_task_is_validation_error(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        response = await client.post(MODELS, json={"project": "cars", "task": "track"}, headers=alice.headers)
        assert_validation_error(response)

    async def test_bad_slug_is_validation_error(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        response = await client.post(MODELS, json={"project": "cars", "model": "Not_A_Slug"}, headers=alice.headers)
        assert_validation_error(response)

    async def test_missing_project_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_validation_error(await client.post(MODELS, json={"name": "x"}, headers=alice.headers))

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"project": 5}, "project"),
            ({"name": ["detector"]}, "name"),
            ({"epochs": "ten"}, "epochs"),
            ({"metadata": "run=2"}, "metadata"),
            ({"trainArgs": 3}, "trainArgs"),
            ({"visibility": "secret"}, "visibility"),
        ],
    )
    async def test_field_of_the_wrong_type_is_named(
        self, client: httpx.AsyncClient, alice: User, cars: str, change: dict[str, Any], field: str
    ) -> None:
        response = await client.post(MODELS, json={"project": "cars", **change}, headers=alice.headers)
        error = assert_error(response, 422, "VALIDATION_ERROR")["error"]
        assert error["details"][0]["field"] == field

    async def test_body_that_is_not_json_is_validation_error(
        self, client: httpx.AsyncClient, alice: User, cars: str
    ) -> None:
        response = await client.post(
            MODELS, content=b"project=cars", headers={**alice.headers, "Content-Type": "application/json"}
        )
        assert_validation_error(response)

    async def test_nothing_is_created_on_validation_error(
        self, client: httpx.AsyncClient, alice: User, cars: str
    ) -> None:
        await client.post(MODELS, json={"project": "cars", "task": "track"}, headers=alice.headers)
        assert ok(await client.get(MODELS, headers=alice.headers))["data"] == []

    async def test_records_activity(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        body = await create_model(client, alice, "cars", model="logged")
        events = await activity_events(client, alice, "model.created")
        assert [event["resourceId"] for event in events] == [body["id"]]

    async def test_missing_key_is_401(self, client: httpx.AsyncClient, cars: str) -> None:
        assert_error(await client.post(MODELS, json={"project": "cars"}), 401, "UNAUTHORIZED")

    async def test_key_without_models_scope_is_403(
        self, client: httpx.AsyncClient, database: Database, alice: User, cars: str
    ) -> None:
        key = await add_key(database, alice, scopes=["datasets"])
        response = await client.post(MODELS, json={"project": "cars"}, headers={"x-api-key": key})
        assert_error(response, 403, "FORBIDDEN")


class TestListModels:
    async def test_pages_newest_first_with_meta(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        ids = [(await create_model(client, alice, "cars", model=slug))["id"] for slug in ("one", "two", "three")]
        first = ok(await client.get(MODELS, params={"page": 1, "limit": 2}, headers=alice.headers))
        second = ok(await client.get(MODELS, params={"page": 2, "limit": 2}, headers=alice.headers))
        assert first["meta"] == {"page": 1, "limit": 2, "total": 3}
        assert second["meta"] == {"page": 2, "limit": 2, "total": 3}
        assert [model["id"] for model in first["data"] + second["data"]] == ids[::-1]

    async def test_default_page_is_1_of_20(self, client: httpx.AsyncClient, alice: User, detector: Any) -> None:
        body = ok(await client.get(MODELS, headers=alice.headers))
        assert body["meta"] == {"page": 1, "limit": 20, "total": 1}
        (model,) = body["data"]
        assert model["slug"] == "detector"
        assert model["owner"] == "alice"
        assert model["project"] == "cars"

    async def test_filters_by_project(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        bikes = await create_project(client, alice, "bikes")
        await create_model(client, alice, "cars", model="car-model")
        await create_model(client, alice, "bikes", model="bike-model")
        body = ok(await client.get(MODELS, params={"projectId": bikes}, headers=alice.headers))
        assert [model["slug"] for model in body["data"]] == ["bike-model"]
        assert body["meta"]["total"] == 1

    async def test_filters_by_task(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        await create_model(client, alice, "cars", model="boxes", task="detect")
        await create_model(client, alice, "cars", model="masks", task="segment")
        await create_model(client, alice, "cars", model="unknown")
        body = ok(await client.get(MODELS, params={"task": "segment"}, headers=alice.headers))
        assert [model["slug"] for model in body["data"]] == ["masks"]

    async def test_invalid_task_filter_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_validation_error(await client.get(MODELS, params={"task": "track"}, headers=alice.headers))

    async def test_lists_only_own_models(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        await create_project(client, bob, "shared", visibility="public")
        await create_model(client, bob, "shared", model="open", visibility="public")
        body = ok(await client.get(MODELS, headers=alice.headers))
        assert body["data"] == []
        assert body["meta"]["total"] == 0

    async def test_hides_trashed_models(self, client: httpx.AsyncClient, alice: User, detector: Any) -> None:
        ok(await client.delete(f"{MODELS}/{detector['id']}", headers=alice.headers))
        assert ok(await client.get(MODELS, headers=alice.headers))["data"] == []


class TestGetModelById:
    async def test_returns_the_model_with_metadata(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        created = await create_model(client, alice, "cars", model="meta", metadata={"k": "v"}, task="pose")
        model = await get_model(client, alice, created["id"])
        assert model["id"] == created["id"]
        assert model["slug"] == model["model"] == "meta"
        assert model["projectId"] == cars
        assert model["projectName"] == "cars"
        assert model["task"] == "pose"
        assert model["metadata"] == {"k": "v"}
        assert model["hasWeights"] is False

    async def test_unknown_id_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.get(f"{MODELS}/model_missing", headers=alice.headers), 404, "NOT_FOUND")

    async def test_segment_that_is_not_an_id_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.get(f"{MODELS}/alice", headers=alice.headers), 404, "NOT_FOUND")


class TestDeleteModelById:
    async def test_moves_the_model_to_the_trash(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]
    ) -> None:
        body = ok(await client.delete(f"{MODELS}/{detector['id']}", headers=alice.headers))
        assert body["data"] == {"id": detector["id"], "trashed": True}
        assert_error(await client.get(f"{MODELS}/{detector['id']}", headers=alice.headers), 404, "NOT_FOUND")
        items = ok(await client.get(TRASH, headers=alice.headers))["items"]
        assert [(item["id"], item["type"]) for item in items] == [(detector["id"], "model")]

    async def test_frees_the_slug(self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]) -> None:
        ok(await client.delete(f"{MODELS}/{detector['id']}", headers=alice.headers))
        assert (await create_model(client, alice, "cars", model="detector"))["model"] == "detector"

    async def test_twice_is_404(self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]) -> None:
        ok(await client.delete(f"{MODELS}/{detector['id']}", headers=alice.headers))
        assert_error(await client.delete(f"{MODELS}/{detector['id']}", headers=alice.headers), 404, "NOT_FOUND")


class TestListProjectModels:
    async def test_lists_the_projects_models(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        await create_project(client, alice, "bikes")
        await create_model(client, alice, "cars", model="first", task="detect")
        await create_model(client, alice, "cars", model="second")
        await create_model(client, alice, "bikes", model="elsewhere")
        body = ok(await client.get(f"{MODELS}/alice/cars", headers=alice.headers))
        assert [model["model"] for model in body["models"]] == ["second", "first"]
        assert body["region"]
        first = body["models"][1]
        assert first["owner"] == "alice"
        assert first["project"] == "cars"
        assert first["id"].startswith("model_")
        assert first["task"] == "detect"
        assert first["hasWeights"] is False

    async def test_limit(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        for slug in ("a", "b", "c"):
            await create_model(client, alice, "cars", model=slug)
        body = ok(await client.get(f"{MODELS}/alice/cars", params={"limit": 2}, headers=alice.headers))
        assert [model["model"] for model in body["models"]] == ["c", "b"]

    async def test_empty_project(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        assert ok(await client.get(f"{MODELS}/alice/cars", headers=alice.headers))["models"] == []

    async def test_unknown_project_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.get(f"{MODELS}/alice/nowhere", headers=alice.headers), 404, "NOT_FOUND")

    async def test_unknown_owner_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.get(f"{MODELS}/nobody/cars", headers=alice.headers), 404, "NOT_FOUND")

    async def test_public_project_shows_others_only_public_models(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        await create_project(client, bob, "shared", visibility="public")
        await create_model(client, bob, "shared", model="open", visibility="public")
        await create_model(client, bob, "shared", model="closed")
        body = ok(await client.get(f"{MODELS}/bob/shared", headers=alice.headers))
        assert [model["model"] for model in body["models"]] == ["open"]


class TestGetModel:
    async def test_returns_the_model_and_is_owner(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]
    ) -> None:
        body = ok(await client.get(f"{MODELS}/alice/cars/detector", headers=alice.headers))
        assert body["isOwner"] is True
        assert body["region"]
        model = body["model"]
        assert model["id"] == detector["id"]
        assert (model["owner"], model["project"], model["model"]) == ("alice", "cars", "detector")
        assert model["name"] == "Detector"
        assert model["task"] == "detect"
        assert model["metadata"] == {}
        assert model["starCount"] == 0
        assert model["isStarred"] is False

    async def test_unknown_model_is_404(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        assert_error(await client.get(f"{MODELS}/alice/cars/missing", headers=alice.headers), 404, "NOT_FOUND")

    async def test_trashed_model_is_404(self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]) -> None:
        ok(await client.delete(f"{MODELS}/alice/cars/detector", headers=alice.headers))
        assert_error(await client.get(f"{MODELS}/alice/cars/detector", headers=alice.headers), 404, "NOT_FOUND")

    async def test_model_of_a_trashed_project_is_404(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]
    ) -> None:
        ok(await client.delete("/api/projects/alice/cars", headers=alice.headers))
        assert_error(await client.get(f"{MODELS}/alice/cars/detector", headers=alice.headers), 404, "NOT_FOUND")


class TestUpdateModel:
    async def test_new_name_changes_the_slug(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]
    ) -> None:
        renamed = {"name": "Night Shift"}
        body = ok(await client.patch(f"{MODELS}/alice/cars/detector", json=renamed, headers=alice.headers))
        assert body["slug"] == "night-shift"
        assert body["model"]["name"] == "Night Shift"
        assert body["model"]["model"] == "night-shift"
        moved = ok(await client.get(f"{MODELS}/alice/cars/night-shift", headers=alice.headers))["model"]
        assert moved["id"] == detector["id"]
        assert_error(await client.get(f"{MODELS}/alice/cars/detector", headers=alice.headers), 404, "NOT_FOUND")

    async def test_saves_the_fields_the_clients_send(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]
    ) -> None:
        changes = {
            "description": "v2",
            "metadata": {"run": 2},
            "visibility": "public",
            "status": "completed",
            "epochs": 30,
            "bestEpoch": 27,
            "bestFitness": 0.61,
            "metrics": {"metrics/mAP50(B)": 0.7},
        }
        ok(await client.patch(f"{MODELS}/alice/cars/detector", json=changes, headers=alice.headers))
        model = await get_model(client, alice, detector["id"])
        assert model["description"] == "v2"
        assert model["metadata"] == {"run": 2}
        assert model["visibility"] == "public"
        assert model["status"] == "completed"
        assert model["epochs"] == 30
        assert model["bestEpoch"] == 27
        assert model["bestFitness"] == 0.61
        assert model["metrics"] == {"metrics/mAP50(B)": 0.7}
        assert model["slug"] == "detector"

    async def test_starred_is_422(self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]) -> None:
        response = await client.patch(f"{MODELS}/alice/cars/detector", json={"starred": True}, headers=alice.headers)
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_name_of_another_model_is_409(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]
    ) -> None:
        await create_model(client, alice, "cars", model="taken")
        response = await client.patch(f"{MODELS}/alice/cars/detector", json={"name": "Taken"}, headers=alice.headers)
        assert_error(response, 409, "CONFLICT")

    async def test_null_name_is_validation_error(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]
    ) -> None:
        response = await client.patch(f"{MODELS}/alice/cars/detector", json={"name": None}, headers=alice.headers)
        assert_validation_error(response)

    async def test_name_without_letters_is_422(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]
    ) -> None:
        response = await client.patch(f"{MODELS}/alice/cars/detector", json={"name": "!!!"}, headers=alice.headers)
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_records_activity(self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]) -> None:
        ok(await client.patch(f"{MODELS}/alice/cars/detector", json={"description": "x"}, headers=alice.headers))
        events = await activity_events(client, alice, "model.updated")
        assert [event["resourceId"] for event in events] == [detector["id"]]

    async def test_other_accounts_public_model_is_403(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        await create_project(client, bob, "shared", visibility="public")
        await create_model(client, bob, "shared", model="open", visibility="public")
        response = await client.patch(f"{MODELS}/bob/shared/open", json={"name": "Mine"}, headers=alice.headers)
        assert_error(response, 403, "FORBIDDEN")
        assert ok(await client.get(f"{MODELS}/bob/shared/open", headers=bob.headers))["model"]["name"] == "open"

    async def test_other_accounts_private_model_is_404(
        self, client: httpx.AsyncClient, bob: User, detector: dict[str, Any]
    ) -> None:
        response = await client.patch(f"{MODELS}/alice/cars/detector", json={"name": "Mine"}, headers=bob.headers)
        assert_error(response, 404, "NOT_FOUND")


class TestDeleteModel:
    async def test_moves_the_model_to_the_trash(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]
    ) -> None:
        assert ok(await client.delete(f"{MODELS}/alice/cars/detector", headers=alice.headers)) == {"success": True}
        assert_error(await client.get(f"{MODELS}/{detector['id']}", headers=alice.headers), 404, "NOT_FOUND")
        items = ok(await client.get(TRASH, headers=alice.headers))["items"]
        assert [item["id"] for item in items] == [detector["id"]]

    async def test_other_accounts_public_model_is_403(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        await create_project(client, bob, "shared", visibility="public")
        await create_model(client, bob, "shared", model="open", visibility="public")
        assert_error(await client.delete(f"{MODELS}/bob/shared/open", headers=alice.headers), 403, "FORBIDDEN")
        ok(await client.get(f"{MODELS}/bob/shared/open", headers=bob.headers))


@pytest.fixture(params=["by_id", "by_slug"])
def files_route(request: pytest.FixtureRequest) -> str:
    """Which of the two files routes a test calls: the seed's by id or the clients' by slug."""
    route: str = request.param
    return route


def files_path(route: str, model: dict[str, Any]) -> str:
    if route == "by_id":
        return f"{MODELS}/{model['id']}/files"
    return f"{MODELS}/{model['owner']}/{model['project']}/{model['slug']}/files"


class TestGetModelFiles:
    async def test_without_weights_is_empty(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any], files_route: str
    ) -> None:
        body = ok(await client.get(files_path(files_route, detector["data"]), headers=alice.headers))
        assert body["files"] == []
        assert body["data"] == []

    async def test_checkpoint_comes_first_with_its_size(
        self, client: httpx.AsyncClient, alice: User, cars: str, files_route: str
    ) -> None:
        model = await uploaded_model(client, alice, cars, filename="yolo-cars.pt")
        body = ok(await client.get(files_path(files_route, model), headers=alice.headers))
        first = body["files"][0]
        assert first["name"] == "yolo-cars.pt"
        assert first["size"] == len(WEIGHTS)
        assert body["data"][0] == first

    async def test_download_url_needs_no_key(
        self, client: httpx.AsyncClient, alice: User, cars: str, files_route: str, settings: Settings
    ) -> None:
        model = await uploaded_model(client, alice, cars)
        (first, *_) = ok(await client.get(files_path(files_route, model), headers=alice.headers))["files"]
        url: str = first["downloadUrl"]
        assert url.startswith(f"{settings.base_url}/")
        assert url.endswith("/best.pt")
        response = await download(client, url)
        assert response.status_code == 200
        assert response.content == WEIGHTS
        assert response.headers["content-length"] == str(len(WEIGHTS))

    async def test_public_model_files_for_another_account(
        self, client: httpx.AsyncClient, alice: User, bob: User, files_route: str
    ) -> None:
        shared = await create_project(client, bob, "shared", visibility="public")
        model = await uploaded_model(client, bob, shared)
        public = {"visibility": "public"}
        ok(await client.patch(f"{MODELS}/bob/shared/{model['slug']}", json=public, headers=bob.headers))
        (first, *_) = ok(await client.get(files_path(files_route, model), headers=alice.headers))["files"]
        assert (await download(client, first["downloadUrl"])).content == WEIGHTS

    async def test_unknown_model_is_404(self, client: httpx.AsyncClient, alice: User, files_route: str) -> None:
        missing = {"id": "model_missing", "owner": "alice", "project": "cars", "slug": "missing"}
        assert_error(await client.get(files_path(files_route, missing), headers=alice.headers), 404, "NOT_FOUND")


# Every route that addresses one model, with the body a write sends: (method, path template, json body).
MODEL_ROUTES = [
    ("GET", "{models}/{id}", None),
    ("DELETE", "{models}/{id}", None),
    ("GET", "{models}/{id}/files", None),
    ("GET", "{models}/{owner}/{project}", None),
    ("GET", "{models}/{owner}/{project}/{model}", None),
    ("PATCH", "{models}/{owner}/{project}/{model}", {"description": "mine now"}),
    ("DELETE", "{models}/{owner}/{project}/{model}", None),
    ("GET", "{models}/{owner}/{project}/{model}/files", None),
    ("POST", "/api/upload/signed-url", {"assetType": "models", "filename": "best.pt", "assetId": "{id}"}),
    ("POST", "{models}", {"project": "{project_id}", "name": "intruder"}),
]
# The read routes, each with where its answer names the model (the files routes: by the checkpoint's name).
READ_ROUTES: list[tuple[tuple[str, str, None], Callable[[dict[str, Any]], str]]] = [
    (("GET", "{models}/{id}", None), lambda body: str(body["data"]["id"])),
    (("GET", "{models}/{id}/files", None), lambda body: str(body["files"][0]["name"])),
    (("GET", "{models}/{owner}/{project}", None), lambda body: str(body["models"][0]["id"])),
    (("GET", "{models}/{owner}/{project}/{model}", None), lambda body: str(body["model"]["id"])),
    (("GET", "{models}/{owner}/{project}/{model}/files", None), lambda body: str(body["files"][0]["name"])),
]


async def call(
    client: httpx.AsyncClient, user: User, route: tuple[str, str, dict[str, str] | None], model: dict[str, Any]
) -> httpx.Response:
    method, template, body = route
    fields = {
        "models": MODELS,
        "id": model["id"],
        "owner": model["owner"],
        "project": model["project"],
        "project_id": model["projectId"],
        "model": model["slug"],
    }
    json = {key: value.format(**fields) for key, value in body.items()} if body is not None else None
    return await client.request(method, template.format(**fields), json=json, headers=user.headers)


def route_id(route: tuple[str, str, dict[str, str] | None]) -> str:
    return f"{route[0]} {route[1]}"


class TestPrivacy:
    @pytest.mark.parametrize("route", MODEL_ROUTES, ids=route_id)
    async def test_other_account_gets_404(
        self,
        client: httpx.AsyncClient,
        alice: User,
        bob: User,
        cars: str,
        route: tuple[str, str, dict[str, str] | None],
    ) -> None:
        model = await uploaded_model(client, alice, cars)
        assert_error(await call(client, bob, route, model), 404, "NOT_FOUND")
        assert (await get_model(client, alice, model["id"]))["slug"] == model["slug"]

    @pytest.mark.parametrize(("route", "named"), READ_ROUTES, ids=[route_id(route) for route, _ in READ_ROUTES])
    async def test_public_model_is_readable_by_others(
        self,
        client: httpx.AsyncClient,
        alice: User,
        bob: User,
        route: tuple[str, str, None],
        named: Callable[[dict[str, Any]], str],
    ) -> None:
        shared = await create_project(client, alice, "shared", visibility="public")
        model = await uploaded_model(client, alice, shared)
        public = {"visibility": "public"}
        ok(await client.patch(f"{MODELS}/alice/shared/{model['slug']}", json=public, headers=alice.headers))
        expected = "best.pt" if route[1].endswith("/files") else model["id"]
        assert named(ok(await call(client, bob, route, model))) == expected

    async def test_public_model_shows_is_owner_false(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        await create_project(client, alice, "shared", visibility="public")
        await create_model(client, alice, "shared", model="open", visibility="public")
        body = ok(await client.get(f"{MODELS}/alice/shared/open", headers=bob.headers))
        assert body["isOwner"] is False
        assert body["model"]["owner"] == "alice"

    async def test_private_model_in_public_project_is_hidden(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        await create_project(client, alice, "shared", visibility="public")
        created = await create_model(client, alice, "shared", model="closed")
        assert_error(await client.get(f"{MODELS}/alice/shared/closed", headers=bob.headers), 404, "NOT_FOUND")
        assert_error(await client.get(f"{MODELS}/{created['id']}", headers=bob.headers), 404, "NOT_FOUND")

    async def test_public_model_in_private_project_is_hidden(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        # The model would name its project (slug, id, name): the project's privacy wins.
        await create_project(client, alice, "secret", name="Secret Plans")
        created = await create_model(client, alice, "secret", model="open", visibility="public")
        assert_error(await client.get(f"{MODELS}/alice/secret/open", headers=bob.headers), 404, "NOT_FOUND")
        assert_error(await client.get(f"{MODELS}/{created['id']}", headers=bob.headers), 404, "NOT_FOUND")
        assert_error(await client.get(f"{MODELS}/{created['id']}/files", headers=bob.headers), 404, "NOT_FOUND")
        assert (await get_model(client, alice, created["id"]))["visibility"] == "public"
