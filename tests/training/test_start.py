"""``POST /api/training/start``: both bodies, both reply dialects, and every refusal in the error format.

This app runs no jobs (``YOLOSTACK_JOBS__RUN_JOBS=false``): what is checked here is what gets queued;
tests/jobs runs the queue for real against a live server.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.datasets.helpers import new_dataset_from
from tests.fixtures.app import make_settings
from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User
from tests.fixtures.synthetic import make_yolo, zip_dir
from tests.models.helpers import create_model, create_project
from tests.training.helpers import training
from yolostack.config import Settings

START = "/api/training/start"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "data", jobs={"run_jobs": False})


@pytest.fixture
async def shapes(client: httpx.AsyncClient, alice: User, tmp_path: Path) -> dict[str, Any]:
    archive = zip_dir(make_yolo(tmp_path / "shapes", images=8), tmp_path / "shapes.zip")
    dataset = await new_dataset_from(client, alice, "shapes", archive)
    assert dataset["status"] == "ready"
    return dataset


@pytest.fixture
async def model(client: httpx.AsyncClient, alice: User) -> dict[str, Any]:
    await create_project(client, alice, "lab")
    return await create_model(client, alice, "lab", model="run1", name="run1")


async def start(client: httpx.AsyncClient, user: User, body: dict[str, Any]) -> httpx.Response:
    return await client.post(START, json=body, headers=user.headers)


class TestStartTraining:
    async def test_client_body(
        self, client: httpx.AsyncClient, alice: User, shapes: dict[str, Any], model: dict[str, Any]
    ) -> None:
        args = {"model": "yolo11n.yaml", "data": "ul://alice/datasets/shapes", "epochs": 2, "imgsz": 64, "batch": 4}
        body = ok(await start(client, alice, {"modelId": model["id"], "trainArgs": args}))
        # The fields ul cloud train prints, and the seed envelope.
        assert body["status"] == "starting"
        assert body["gpuType"] == "cpu"
        assert body["estimatedCost"]["pricePerHour"] == 0
        assert body["billing"]["estimatedCostDisplay"] == "$0.00"
        assert body["data"]["modelId"] == model["id"]
        job = await training(client, alice, "alice", "lab", "run1")
        assert job["status"] == "queued"
        assert job["progress"]["totalEpochs"] == 2
        assert job["trainArgs"] == {"model": "yolo11n.yaml", "epochs": 2, "batch": 4, "imgsz": 64}
        detail = ok(await client.get("/api/models/alice/lab/run1", headers=alice.headers))["model"]
        assert detail["status"] == "starting"

    async def test_seed_body(
        self, client: httpx.AsyncClient, alice: User, shapes: dict[str, Any], model: dict[str, Any]
    ) -> None:
        body = {"modelId": model["id"], "datasetId": shapes["id"], "epochs": 3, "imageSize": 96}
        ok(await start(client, alice, body))
        seed_view = ok(await client.get(f"/api/models/{model['id']}/training", headers=alice.headers))
        job = seed_view["data"]["job"]
        assert job["progress"]["totalEpochs"] == 3
        assert job["trainArgs"]["imgsz"] == 96
        assert job["trainArgs"]["model"] == "yolo11n.yaml"  # an empty model starts from the dataset task's architecture

    async def test_a_second_start_while_training_is_409(
        self, client: httpx.AsyncClient, alice: User, shapes: dict[str, Any], model: dict[str, Any]
    ) -> None:
        body = {"modelId": model["id"], "datasetId": shapes["id"], "epochs": 1}
        ok(await start(client, alice, body))
        assert_error(await start(client, alice, body), 409, "CONFLICT")
        ok(await client.delete(f"/api/models/{model['id']}/training", headers=alice.headers))
        ok(await start(client, alice, body))

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({"trainArgs": {"epochs": 1}}, "modelId"),
            ({"trainArgs": {"data": "ul://alice/datasets/shapes", "nonsense": 1}}, "nonsense"),
            ({"trainArgs": {"data": "ul://alice/datasets/shapes", "epochs": 0}}, "epochs"),
            ({"trainArgs": {"data": "ul://alice/datasets/shapes", "imgsz": "big"}}, "imgsz"),
            ({"trainArgs": {"data": "coco8.yaml"}}, "dataset"),
            ({"trainArgs": {"data": "ul://alice/datasets/shapes", "model": "yolo11n.pt"}}, "official weights"),
            ({"trainArgs": {"data": "ul://alice/datasets/shapes", "model": "/etc/passwd"}}, "trainArgs.model"),
        ],
    )
    async def test_invalid_bodies(
        self,
        client: httpx.AsyncClient,
        alice: User,
        shapes: dict[str, Any],
        model: dict[str, Any],
        body: dict[str, Any],
        message: str,
    ) -> None:
        if "trainArgs" in body and "modelId" not in str(message):
            body = {"modelId": model["id"], **body}
        error = assert_error(await start(client, alice, body), 422, "VALIDATION_ERROR")
        assert message in error["error"]["message"]

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"modelId": 5}, "modelId"),
            ({"trainArgs": "epochs=3"}, "trainArgs"),
            ({"epochs": "many"}, "epochs"),
            ({"imageSize": [640]}, "imageSize"),
            ({"gpuType": 4090}, "gpuType"),
            ({"datasetId": {"id": "x"}}, "datasetId"),
        ],
    )
    async def test_field_of_the_wrong_type_is_named(
        self, client: httpx.AsyncClient, alice: User, model: dict[str, Any], change: dict[str, Any], field: str
    ) -> None:
        error = assert_error(await start(client, alice, {"modelId": model["id"], **change}), 422, "VALIDATION_ERROR")
        assert error["error"]["details"][0]["field"] == field
        assert error["error"]["details"][0]["message"]

    async def test_unknown_dataset_is_404(self, client: httpx.AsyncClient, alice: User, model: dict[str, Any]) -> None:
        body = {"modelId": model["id"], "trainArgs": {"data": "ul://alice/datasets/missing"}}
        assert_error(await start(client, alice, body), 404, "NOT_FOUND")

    async def test_another_accounts_model_or_dataset_is_404(
        self, client: httpx.AsyncClient, alice: User, bob: User, shapes: dict[str, Any], model: dict[str, Any]
    ) -> None:
        assert_error(await start(client, bob, {"modelId": model["id"], "datasetId": shapes["id"]}), 404, "NOT_FOUND")
        await create_project(client, bob, "mine")
        own = await create_model(client, bob, "mine", model="m")
        assert_error(await start(client, bob, {"modelId": own["id"], "datasetId": shapes["id"]}), 404, "NOT_FOUND")
        status = await client.get("/api/models/alice/lab/run1/training", headers=bob.headers)
        assert_error(status, 404, "NOT_FOUND")
        assert_error(await client.delete(f"/api/models/{model['id']}/training", headers=bob.headers), 404, "NOT_FOUND")

    @pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a GPU")
    async def test_gpu_type_on_a_server_without_gpu_fails_fast(
        self, client: httpx.AsyncClient, alice: User, shapes: dict[str, Any], model: dict[str, Any]
    ) -> None:
        body = {"modelId": model["id"], "datasetId": shapes["id"], "gpuType": "rtx-4090"}
        error = assert_error(await start(client, alice, body), 400, "NO_GPU")
        assert "no GPU" in error["error"]["message"]

    async def test_status_of_a_model_that_never_trained(
        self, client: httpx.AsyncClient, alice: User, model: dict[str, Any]
    ) -> None:
        assert await training(client, alice, "alice", "lab", "run1") is None
        assert_error(
            await client.delete("/api/models/alice/lab/run1/training", headers=alice.headers), 404, "NOT_FOUND"
        )

    async def test_gpu_availability(self, client: httpx.AsyncClient, alice: User) -> None:
        body = ok(await client.get("/api/training/gpu-availability", headers=alice.headers))
        assert body["executor"] == "local"
        assert body["cpu"]["available"] is True
