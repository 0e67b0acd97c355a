"""``model.convert``: the worker in the app's lifespan turns attached weights into serving artifacts.

Real checkpoints go all the way to ONNX; hostile and broken ones end ``failed`` with a message the uploader
can read, and nothing in them runs.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.fixtures.assertions import ok
from tests.fixtures.checkpoints import Checkpoints, malicious_checkpoint
from tests.fixtures.checkpoints import checkpoints as checkpoints
from tests.fixtures.factories import User
from tests.fixtures.trash import TRASH
from tests.models.helpers import (
    MODELS,
    attach_weights,
    create_model,
    create_project,
    download,
    model_files,
    uploaded_model,
    wait_for_serving,
)

pytestmark = pytest.mark.slow


@pytest.fixture
async def cars(client: httpx.AsyncClient, alice: User) -> str:
    """Alice's project ``alice/cars``; returns its id."""
    return await create_project(client, alice, "cars")


class TestConvertModel:
    async def test_detector_becomes_ready_to_serve(
        self, client: httpx.AsyncClient, alice: User, cars: str, checkpoints: Checkpoints
    ) -> None:
        model_id: str = (await create_model(client, alice, "cars", model="coco"))["id"]
        await attach_weights(client, alice, model_id, checkpoints.detect.read_bytes(), filename="yolo11n.pt")
        model = await wait_for_serving(client, alice, model_id)
        assert model["serving"] == {"status": "ready", "error": None}, model["serving"]
        assert model["task"] == "detect"
        assert model["status"] == "completed"
        assert len(model["classNames"]) == 80
        assert model["imgsz"] == 640
        assert model["parameters"] > 0

    async def test_files_gain_the_onnx_export(
        self, client: httpx.AsyncClient, alice: User, cars: str, checkpoints: Checkpoints
    ) -> None:
        data = checkpoints.detect.read_bytes()
        model_id = (await uploaded_model(client, alice, cars, data=data, filename="yolo11n.pt"))["id"]
        assert (await wait_for_serving(client, alice, model_id))["serving"]["status"] == "ready"
        checkpoint, onnx = await model_files(client, alice, model_id)
        assert (checkpoint["name"], checkpoint["size"]) == ("yolo11n.pt", len(data))
        assert onnx["name"] == "model.onnx"
        assert onnx["downloadUrl"].endswith("/model.onnx")
        assert (await download(client, checkpoint["downloadUrl"])).content == data
        exported = await download(client, onnx["downloadUrl"])
        assert exported.status_code == 200
        assert len(exported.content) > 1_000_000
        assert exported.headers["content-length"] == str(len(exported.content))

    async def test_purge_removes_the_onnx_export(
        self, client: httpx.AsyncClient, alice: User, cars: str, checkpoints: Checkpoints
    ) -> None:
        data = checkpoints.detect.read_bytes()
        model_id = (await uploaded_model(client, alice, cars, data=data, filename="yolo11n.pt"))["id"]
        assert (await wait_for_serving(client, alice, model_id))["serving"]["status"] == "ready"
        links = [file["downloadUrl"] for file in await model_files(client, alice, model_id)]
        ok(await client.delete(f"{MODELS}/{model_id}", headers=alice.headers))
        ok(await client.request("DELETE", TRASH, json={"id": model_id, "type": "model"}, headers=alice.headers))
        assert [(await download(client, link)).status_code for link in links] == [404, 404]

    async def test_a_multipart_upload_is_listed_under_its_task(
        self, client: httpx.AsyncClient, alice: User, cars: str, checkpoints: Checkpoints
    ) -> None:
        """The seed's upload names no task: the checkpoint's, read by the conversion, files it."""
        data = checkpoints.detect.read_bytes()
        model_id = (await uploaded_model(client, alice, cars, data=data, filename="best.pt"))["id"]
        assert (await wait_for_serving(client, alice, model_id))["task"] == "detect"
        detect = ok(await client.get(MODELS, params={"task": "detect"}, headers=alice.headers))["data"]
        assert [model["id"] for model in detect] == [model_id]
        assert [model["task"] for model in detect] == ["detect"]
        classify = ok(await client.get(MODELS, params={"task": "classify"}, headers=alice.headers))["data"]
        assert classify == []

    async def test_classifier_reads_its_task_from_the_checkpoint(
        self, client: httpx.AsyncClient, alice: User, cars: str, checkpoints: Checkpoints
    ) -> None:
        data = checkpoints.classify.read_bytes()
        model_id = (await uploaded_model(client, alice, cars, data=data, filename="yolo11n-cls.pt"))["id"]
        model = await wait_for_serving(client, alice, model_id)
        assert model["serving"]["status"] == "ready", model["serving"]
        assert model["task"] == "classify"
        assert len(model["classNames"]) == 1000

    async def test_malicious_pickle_fails_without_running(
        self, client: httpx.AsyncClient, alice: User, cars: str, tmp_path: Path
    ) -> None:
        marker = tmp_path / "pwned"
        hostile = malicious_checkpoint(tmp_path / "best.pt", marker)
        model_id = (await uploaded_model(client, alice, cars, data=hostile.read_bytes()))["id"]
        model = await wait_for_serving(client, alice, model_id)
        assert model["serving"]["status"] == "failed"
        error: str = model["serving"]["error"]
        assert "forbidden" in error
        assert "system" in error
        assert not marker.exists()
        assert model["task"] is None
        assert len(await model_files(client, alice, model_id)) == 1

    async def test_garbage_fails_with_a_message(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        model_id = (await uploaded_model(client, alice, cars, data=b"\x00garbage" * 100, filename="x.pt"))["id"]
        model = await wait_for_serving(client, alice, model_id)
        assert model["serving"] == {"status": "failed", "error": "not a PyTorch checkpoint"}
        assert model["hasWeights"] is True
