"""Exports over the ASGI app: the seed's ``/api/exports[/{exportId}]`` and the clients' routes nested under the
model. Nothing is launched here (``run_jobs`` is off); tests that need a finished export play the runner's
callbacks themselves. Real exports run in ``test_live.py``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.exports.helpers import (
    ARTIFACT,
    EXPORTS,
    create_export,
    exports_path,
    fail_as_runner,
    finish_as_runner,
    runner_key,
)
from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User, add_key
from tests.fixtures.trash import TRASH
from tests.models.helpers import create_model, create_project, download, uploaded_model
from yolostack.core.db import Database
from yolostack_engine import export_formats as formats

SEED_AND_SDK = sorted(set(formats.SEED_FORMATS) | set(formats.SDK_FORMATS))


@pytest.fixture(autouse=True)
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the server sees of GPUs decides some answers: make it the same on every machine."""
    monkeypatch.setattr("yolostack.exports.endpoints.gpu_count", lambda: 0)


@pytest.fixture
async def cars(client: httpx.AsyncClient, alice: User) -> str:
    return await create_project(client, alice, "cars")


@pytest.fixture
async def detector(client: httpx.AsyncClient, alice: User, cars: str) -> dict[str, Any]:
    """Alice's model ``alice/cars/best`` with (placeholder) weights; the seed's ``data`` object."""
    return await uploaded_model(client, alice, cars)


def exportable(name: str) -> bool:
    spec = formats.canonical(name)
    assert spec is not None
    return not formats.missing(spec, gpus=0)


class TestCreateExport:
    async def test_seed_body_queues_an_export(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]
    ) -> None:
        body = await create_export(client, alice, detector, "onnx")
        assert body["id"].startswith("export_")
        assert (body["format"], body["status"], body["gpuType"], body["region"]) == ("onnx", "queued", None, "local")
        data = body["data"]
        assert data["id"] == body["id"]
        assert data["modelId"] == detector["id"]
        assert (data["status"], data["format"], data["requestedFormat"]) == ("queued", "onnx", "onnx")
        assert data["file"] is None
        assert data["error"] is None
        assert data["createdAt"].endswith("Z")

    async def test_client_route_returns_what_the_cli_reads(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]
    ) -> None:
        response = await client.post(
            exports_path(detector), json={"format": "torchscript", "args": {"imgsz": 64}}, headers=alice.headers
        )
        body = ok(response, 201)
        assert body == {
            "success": True,
            "id": body["id"],
            "format": "torchscript",
            "status": "queued",
            "gpuType": None,
            "region": "local",
        }
        export = ok(await client.get(f"{exports_path(detector)}/{body['id']}", headers=alice.headers))["export"]
        assert export["args"] == {"imgsz": 64}

    async def test_format_names_are_case_insensitive_and_kept_as_sent(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]
    ) -> None:
        data = (await create_export(client, alice, detector, "ONNX"))["data"]
        assert (data["format"], data["requestedFormat"]) == ("onnx", "ONNX")

    async def test_unknown_format_lists_the_accepted_names(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]
    ) -> None:
        response = await client.post(EXPORTS, json={"modelId": detector["id"], "format": "pt"}, headers=alice.headers)
        error = assert_error(response, 422, "VALIDATION_ERROR")["error"]
        for name in SEED_AND_SDK:
            assert name in error["message"]
        assert error["details"][0]["accepted"] == list(formats.ACCEPTED)

    @pytest.mark.parametrize("name", SEED_AND_SDK)
    async def test_every_seed_and_sdk_name_is_queued_or_refused_naming_what_is_missing(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any], name: str
    ) -> None:
        spec = formats.canonical(name)
        assert spec is not None
        lacking = formats.missing(spec, gpus=0)
        args = {"data": "ul://alice/datasets/calibration"} if spec.name in formats.INT8_ONLY else {}
        response = await client.post(
            EXPORTS, json={"modelId": detector["id"], "format": name, "args": args}, headers=alice.headers
        )
        if not lacking:
            assert ok(response, 201)["data"]["format"] == spec.name
            return
        error = assert_error(response, 400, "EXPORT_FORMAT_UNAVAILABLE")["error"]
        assert error["message"] == formats.unavailable_message(spec, lacking)
        assert error["details"] == {"format": spec.name, "requested": name, "missing": lacking}
        assert ok(await client.get(EXPORTS, headers=alice.headers))["data"] == []

    async def test_tensorrt_is_engine_and_needs_a_gpu(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]
    ) -> None:
        response = await client.post(
            EXPORTS, json={"modelId": detector["id"], "format": "tensorrt"}, headers=alice.headers
        )
        error = assert_error(response, 400, "EXPORT_FORMAT_UNAVAILABLE")["error"]
        assert error["message"].startswith("format 'engine' (TensorRT) cannot be exported on this server")
        assert "a CUDA GPU" in error["message"]
        assert error["details"]["requested"] == "tensorrt"

    @pytest.mark.parametrize(("alias", "canonical"), [("tflite", "litert"), ("tfjs", "litert"), ("graphdef", "pb")])
    async def test_seed_aliases_map_to_ultralytics_names(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any], alias: str, canonical: str
    ) -> None:
        response = await client.post(EXPORTS, json={"modelId": detector["id"], "format": alias}, headers=alice.headers)
        if exportable(alias):
            assert ok(response, 201)["data"]["format"] == canonical
        else:
            error = assert_error(response, 400, "EXPORT_FORMAT_UNAVAILABLE")["error"]
            assert error["details"]["format"] == canonical

    async def test_missing_toolchain_message_names_the_packages_and_the_install(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(formats, "_installed", lambda name: not name.startswith(("paddlepaddle", "x2paddle")))
        response = await client.post(
            EXPORTS, json={"modelId": detector["id"], "format": "paddle"}, headers=alice.headers
        )
        error = assert_error(response, 400, "EXPORT_FORMAT_UNAVAILABLE")["error"]
        assert error["message"] == (
            "format 'paddle' (PaddlePaddle) cannot be exported on this server: it needs the Python packages "
            "paddlepaddle or paddlepaddle-gpu, x2paddle. Install: pip install "
            '"paddlepaddle>=3.0.0,<3.3.0" x2paddle six, in a separate worker environment (PaddlePaddle is about 700 MB)'
        )

    async def test_model_without_weights_is_a_conflict(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        model = (await create_model(client, alice, "cars", model="empty", name="empty"))["data"]
        response = await client.post(EXPORTS, json={"modelId": model["id"], "format": "onnx"}, headers=alice.headers)
        error = assert_error(response, 409, "CONFLICT")["error"]
        assert "has no weights to export" in error["message"]
        response = await client.post(exports_path(model), json={"format": "onnx"}, headers=alice.headers)
        assert_error(response, 409, "CONFLICT")

    async def test_other_accounts_model_is_404(
        self, client: httpx.AsyncClient, bob: User, detector: dict[str, Any]
    ) -> None:
        response = await client.post(EXPORTS, json={"modelId": detector["id"], "format": "onnx"}, headers=bob.headers)
        assert_error(response, 404, "NOT_FOUND")
        response = await client.post(exports_path(detector), json={"format": "onnx"}, headers=bob.headers)
        assert_error(response, 404, "NOT_FOUND")

    async def test_other_accounts_public_model_is_404(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        await create_project(client, bob, "shared", visibility="public")
        model = (await create_model(client, bob, "shared", model="open", visibility="public"))["data"]
        response = await client.post(exports_path(model), json={"format": "onnx"}, headers=alice.headers)
        assert_error(response, 404, "NOT_FOUND")

    async def test_gpu_type_without_a_gpu_is_refused(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]
    ) -> None:
        body = {"modelId": detector["id"], "format": "onnx", "gpuType": "rtx-4090"}
        error = assert_error(await client.post(EXPORTS, json=body, headers=alice.headers), 400, "NO_GPU")["error"]
        assert "rtx-4090" in error["message"]

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"format": "onnx"}, "modelId"),
            ({"modelId": "model_x"}, "format"),
            ({"modelId": "model_x", "format": 5}, "format"),
            ({"modelId": "model_x", "format": "onnx", "args": "imgsz=64"}, "args"),
        ],
    )
    async def test_malformed_body_is_a_validation_error(
        self, client: httpx.AsyncClient, alice: User, body: dict[str, Any], field: str
    ) -> None:
        error = assert_error(await client.post(EXPORTS, json=body, headers=alice.headers), 422, "VALIDATION_ERROR")
        assert error["error"]["details"][0]["field"] == field

    async def test_key_without_the_exports_scope_is_403(
        self, client: httpx.AsyncClient, database: Database, alice: User, detector: dict[str, Any]
    ) -> None:
        models_only = {"Authorization": f"Bearer {await add_key(database, alice, scopes=['models'])}"}
        body = {"modelId": detector["id"], "format": "onnx"}
        assert_error(await client.post(EXPORTS, json=body, headers=models_only), 403, "FORBIDDEN")
        assert_error(await client.get(exports_path(detector), headers=models_only), 403, "FORBIDDEN")
        scoped = {"Authorization": f"Bearer {await add_key(database, alice, scopes=['exports'])}"}
        ok(await client.post(EXPORTS, json=body, headers=scoped), 201)


class TestExportArguments:
    async def post(self, client: httpx.AsyncClient, user: User, model: dict[str, Any], fmt: str, **args: Any) -> Any:
        body = {"modelId": model["id"], "format": fmt, "args": args}
        return await client.post(EXPORTS, json=body, headers=user.headers)

    async def test_worker_arguments_are_dropped_and_half_becomes_quantize(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]
    ) -> None:
        response = await self.post(client, alice, detector, "onnx", imgsz=[64, 96], half=True, device="0", dynamic=True)
        assert ok(response, 201)["data"]["args"] == {"imgsz": [64, 96], "quantize": 16, "dynamic": True}

    @pytest.mark.parametrize(
        ("fmt", "args", "fragment"),
        [
            ("onnx", {"epochs": 3}, "not export arguments: epochs"),
            ("onnx", {"cfg": "/etc/passwd"}, "not export arguments: cfg"),
            ("onnx", {"quantize": "int4"}, "quantize must be one of"),
            ("ncnn", {"quantize": 8}, "format 'ncnn' cannot export quantize=8; it supports quantize=16"),
            ("torchscript", {"half": True}, "FP16 TorchScript export runs on a GPU only"),
            ("onnx", {"quantize": "int8"}, "calibrates on images: pass args.data"),
            ("onnx", {"quantize": 8, "data": "/data/coco.yaml"}, "data must name a dataset"),
            ("ncnn", {"dynamic": True}, "argument 'dynamic' is not supported for format 'ncnn'"),
            ("onnx", {"imgsz": 8}, "imgsz must be an integer from 32 to 4096"),
            ("onnx", {"imgsz": True}, "imgsz must be an integer from 32 to 4096"),
            ("onnx", {"batch": 0}, "batch must be an integer from 1 to 1024"),
        ],
    )
    async def test_invalid_arguments_fail_before_a_job_exists(
        self,
        client: httpx.AsyncClient,
        alice: User,
        detector: dict[str, Any],
        fmt: str,
        args: dict[str, Any],
        fragment: str,
    ) -> None:
        if not exportable(fmt):
            pytest.skip(f"{fmt} cannot be exported on this machine")
        error = assert_error(await self.post(client, alice, detector, fmt, **args), 422, "VALIDATION_ERROR")["error"]
        assert fragment in error["message"]
        assert ok(await client.get(EXPORTS, headers=alice.headers))["data"] == []

    async def test_int8_with_a_dataset_is_queued(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]
    ) -> None:
        response = await self.post(client, alice, detector, "openvino", quantize="int8", data="ul://alice/datasets/cal")
        assert ok(response, 201)["data"]["args"] == {"quantize": 8, "data": "ul://alice/datasets/cal"}


class TestListExports:
    async def test_seed_list_is_newest_first_and_paginated(
        self, client: httpx.AsyncClient, alice: User, bob: User, cars: str, detector: dict[str, Any]
    ) -> None:
        other = await uploaded_model(client, alice, cars, name="other")
        first = (await create_export(client, alice, detector, "onnx"))["id"]
        second = (await create_export(client, alice, other, "torchscript"))["id"]
        body = ok(await client.get(EXPORTS, headers=alice.headers))
        assert [item["id"] for item in body["data"]] == [second, first]
        assert body["meta"] == {"page": 1, "limit": 20, "total": 2}
        page = ok(await client.get(EXPORTS, params={"page": 2, "limit": 1}, headers=alice.headers))
        assert [item["id"] for item in page["data"]] == [first]
        mine = ok(await client.get(EXPORTS, params={"modelId": detector["id"]}, headers=alice.headers))
        assert [item["id"] for item in mine["data"]] == [first]
        assert ok(await client.get(EXPORTS, headers=bob.headers))["data"] == []

    async def test_client_list_filters_by_status(
        self, client: httpx.AsyncClient, database: Database, alice: User, detector: dict[str, Any]
    ) -> None:
        done = (await create_export(client, alice, detector, "onnx"))["id"]
        queued = (await create_export(client, alice, detector, "torchscript"))["id"]
        await finish_as_runner(client, database, done)
        body = ok(await client.get(exports_path(detector), headers=alice.headers))
        assert [item["id"] for item in body["exports"]] == [queued, done]
        assert body["region"] == "local"
        body = ok(await client.get(exports_path(detector), params={"status": "completed"}, headers=alice.headers))
        assert [item["id"] for item in body["exports"]] == [done]
        body = ok(await client.get(exports_path(detector), params={"limit": 1}, headers=alice.headers))
        assert [item["id"] for item in body["exports"]] == [queued]
        response = await client.get(exports_path(detector), params={"status": "done"}, headers=alice.headers)
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_other_accounts_model_is_404(
        self, client: httpx.AsyncClient, bob: User, detector: dict[str, Any]
    ) -> None:
        assert_error(await client.get(exports_path(detector), headers=bob.headers), 404, "NOT_FOUND")


class TestGetExport:
    async def test_completed_export_has_a_download(
        self, client: httpx.AsyncClient, database: Database, alice: User, detector: dict[str, Any]
    ) -> None:
        export_id = (await create_export(client, alice, detector, "onnx"))["id"]
        await finish_as_runner(client, database, export_id)
        export = ok(await client.get(f"{exports_path(detector)}/{export_id}", headers=alice.headers))["export"]
        assert (export["status"], export["phase"]) == ("completed", "completed")
        assert export["file"]["size"] == len(ARTIFACT)
        assert export["file"]["downloadFilename"] == "best.onnx"
        assert export["file"]["downloadUrl"].endswith("/best.onnx")
        assert export["startedAt"] is not None
        assert export["completedAt"] is not None
        fetched = await download(client, export["file"]["downloadUrl"])
        assert fetched.status_code == 200
        assert fetched.content == ARTIFACT
        seed_view = ok(await client.get(f"{EXPORTS}/{export_id}", headers=alice.headers))
        assert seed_view["data"] == seed_view["export"]

        def unsigned(view: dict[str, Any]) -> dict[str, Any]:
            # Each answer signs a fresh link (its expiry is in the signature): compare everything else.
            return {**view, "file": {**view["file"], "downloadUrl": None}}

        assert unsigned(seed_view["export"]) == unsigned(export)

    async def test_failed_export_says_why(
        self, client: httpx.AsyncClient, database: Database, alice: User, detector: dict[str, Any]
    ) -> None:
        export_id = (await create_export(client, alice, detector, "onnx"))["id"]
        await fail_as_runner(client, database, export_id, "ValueError: bad model")
        export = ok(await client.get(f"{EXPORTS}/{export_id}", headers=alice.headers))["data"]
        assert export["status"] == "failed"
        assert export["file"] is None
        assert export["error"]["message"] == "ValueError: bad model"
        assert export["error"]["timestamp"].endswith("Z")

    async def test_other_account_and_other_model_are_404(
        self, client: httpx.AsyncClient, alice: User, bob: User, cars: str, detector: dict[str, Any]
    ) -> None:
        export_id = (await create_export(client, alice, detector, "onnx"))["id"]
        assert_error(await client.get(f"{EXPORTS}/{export_id}", headers=bob.headers), 404, "NOT_FOUND")
        assert_error(await client.get(f"{exports_path(detector)}/{export_id}", headers=bob.headers), 404, "NOT_FOUND")
        other = await uploaded_model(client, alice, cars, name="other")
        assert_error(await client.get(f"{exports_path(other)}/{export_id}", headers=alice.headers), 404, "NOT_FOUND")
        assert_error(await client.get(f"{EXPORTS}/export_missing", headers=alice.headers), 404, "NOT_FOUND")


class TestRunnerBodies:
    @pytest.mark.parametrize(
        ("path", "body", "field"),
        [
            ("events", {}, "phase"),
            ("events", {"phase": "flying"}, "phase"),
            ("events", {"phase": "failed", "error": 5}, "error"),
            ("events", {"phase": "completed", "sessionId": ["upload_x"]}, "sessionId"),
            ("artifact", {"filename": 5}, "filename"),
            ("artifact", {"filename": "best.onnx", "size": "big"}, "size"),
        ],
    )
    async def test_field_of_the_wrong_type_is_named(
        self,
        client: httpx.AsyncClient,
        database: Database,
        alice: User,
        detector: dict[str, Any],
        path: str,
        body: dict[str, Any],
        field: str,
    ) -> None:
        export_id = (await create_export(client, alice, detector, "onnx"))["id"]
        headers = await runner_key(database, export_id)
        response = await client.post(f"/api/jobs/{export_id}/{path}", json=body, headers=headers)
        error = assert_error(response, 422, "VALIDATION_ERROR")["error"]
        assert error["details"][0]["field"] == field

    async def test_completed_without_an_artifact_names_session_id(
        self, client: httpx.AsyncClient, database: Database, alice: User, detector: dict[str, Any]
    ) -> None:
        export_id = (await create_export(client, alice, detector, "onnx"))["id"]
        headers = await runner_key(database, export_id)
        body = {"phase": "completed", "sessionId": "upload_missing"}
        response = await client.post(f"/api/jobs/{export_id}/events", json=body, headers=headers)
        error = assert_error(response, 422, "VALIDATION_ERROR")["error"]
        assert error["details"] == [{"field": "sessionId", "message": error["message"]}]


class TestDeleteExport:
    async def test_active_export_is_cancelled(
        self, client: httpx.AsyncClient, alice: User, detector: dict[str, Any]
    ) -> None:
        export_id = (await create_export(client, alice, detector, "onnx"))["id"]
        body = ok(await client.delete(f"{exports_path(detector)}/{export_id}", headers=alice.headers))
        assert body == {"success": True, "action": "cancelled"}
        export = ok(await client.get(f"{EXPORTS}/{export_id}", headers=alice.headers))["data"]
        assert export["status"] == "cancelled"
        again = ok(await client.delete(f"{EXPORTS}/{export_id}", headers=alice.headers))
        assert again["action"] == "deleted"
        assert again["data"] == {"id": export_id, "action": "deleted"}
        assert_error(await client.get(f"{EXPORTS}/{export_id}", headers=alice.headers), 404, "NOT_FOUND")

    async def test_finished_export_is_deleted_with_its_file(
        self, app: FastAPI, client: httpx.AsyncClient, database: Database, alice: User, detector: dict[str, Any]
    ) -> None:
        export_id = (await create_export(client, alice, detector, "onnx"))["id"]
        await finish_as_runner(client, database, export_id)
        url = ok(await client.get(f"{EXPORTS}/{export_id}", headers=alice.headers))["data"]["file"]["downloadUrl"]
        key = f"models/{alice.account.id}/{detector['id']}/exports/{export_id}/best.onnx"
        assert await app.state.file_links.store.size(key) == len(ARTIFACT)
        body = ok(await client.delete(f"{exports_path(detector)}/{export_id}", headers=alice.headers))
        assert body == {"success": True, "action": "deleted"}
        assert await app.state.file_links.store.size(key) is None
        assert (await download(client, url)).status_code == 404
        assert ok(await client.get(exports_path(detector), headers=alice.headers))["exports"] == []

    async def test_other_accounts_export_is_404(
        self, client: httpx.AsyncClient, alice: User, bob: User, detector: dict[str, Any]
    ) -> None:
        export_id = (await create_export(client, alice, detector, "onnx"))["id"]
        assert_error(await client.delete(f"{EXPORTS}/{export_id}", headers=bob.headers), 404, "NOT_FOUND")
        response = await client.delete(f"{exports_path(detector)}/{export_id}", headers=bob.headers)
        assert_error(response, 404, "NOT_FOUND")
        assert ok(await client.get(f"{EXPORTS}/{export_id}", headers=alice.headers))["data"]["status"] == "queued"


class TestExportFiles:
    async def test_exports_count_in_storage(
        self, client: httpx.AsyncClient, database: Database, alice: User, detector: dict[str, Any]
    ) -> None:
        before = ok(await client.get("/api/storage", headers=alice.headers))["breakdown"]["byCategory"]["exports"]
        export_id = (await create_export(client, alice, detector, "onnx"))["id"]
        await finish_as_runner(client, database, export_id)
        storage = ok(await client.get("/api/storage", headers=alice.headers))
        exports = storage["breakdown"]["byCategory"]["exports"]
        assert exports == {"bytes": before["bytes"] + len(ARTIFACT), "count": before["count"] + 1}
        ok(await client.delete(f"{EXPORTS}/{export_id}", headers=alice.headers))
        after = ok(await client.get("/api/storage", headers=alice.headers))["breakdown"]["byCategory"]["exports"]
        assert after == before

    async def test_purging_the_model_removes_its_export_files(
        self, app: FastAPI, client: httpx.AsyncClient, database: Database, alice: User, detector: dict[str, Any]
    ) -> None:
        export_id = (await create_export(client, alice, detector, "onnx"))["id"]
        await finish_as_runner(client, database, export_id)
        key = f"models/{alice.account.id}/{detector['id']}/exports/{export_id}/best.onnx"
        ok(await client.delete(f"/api/models/{detector['id']}", headers=alice.headers))
        # In the trash the model's exports are hidden, their file kept (a restore brings them back).
        assert_error(await client.get(f"{EXPORTS}/{export_id}", headers=alice.headers), 404, "NOT_FOUND")
        assert await app.state.file_links.store.size(key) == len(ARTIFACT)
        ok(await client.request("DELETE", TRASH, json={"id": detector["id"], "type": "model"}, headers=alice.headers))
        assert await app.state.file_links.store.size(key) is None
        assert ok(await client.get(EXPORTS, headers=alice.headers))["data"] == []
