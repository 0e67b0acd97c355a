"""A model's weights: the seed's multipart ``POST /api/models``, the clients' signed-URL flow
(clients.md §1.5), what they count in ``GET /api/storage``, and their removal when the model is purged."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI

from tests.fixtures.app import make_settings
from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User
from tests.fixtures.storage import S3Bucket
from tests.fixtures.trash import TRASH, backdate_trash
from tests.models.helpers import (
    MODELS,
    WEIGHTS,
    attach_weights,
    complete,
    create_model,
    create_project,
    download,
    get_model,
    model_files,
    open_upload,
    put_bytes,
    upload_model,
    uploaded_model,
)
from yolostack.config import Settings
from yolostack.core.db import Database
from yolostack.storage.backends import ObjectStore
from yolostack.tables import Model
from yolostack.trash.tasks import purge_expired_trash


@pytest.fixture
async def cars(client: httpx.AsyncClient, alice: User) -> str:
    """Alice's project ``alice/cars``; returns its id."""
    return await create_project(client, alice, "cars")


@pytest.fixture
async def empty_model(client: httpx.AsyncClient, alice: User, cars: str) -> str:
    """A model created by the clients' JSON body, without weights; returns its id."""
    model_id: str = (await create_model(client, alice, "cars", model="empty"))["id"]
    return model_id


@pytest.fixture
def store(app: FastAPI) -> ObjectStore:
    object_store: ObjectStore = app.state.file_links.store
    return object_store


async def model_bytes(client: httpx.AsyncClient, user: User) -> dict[str, int]:
    """The models line of ``GET /api/storage``: ``{bytes, count}``."""
    body = ok(await client.get("/api/storage", headers=user.headers))
    models: dict[str, int] = body["breakdown"]["byCategory"]["models"]
    return models


async def weights_key(database: Database, model_id: str) -> str:
    async with database.sessionmaker() as session:
        model = await session.get(Model, model_id)
        assert model is not None
        assert model.weights_key is not None
        return model.weights_key


class TestUploadModel:
    async def test_stores_the_weights(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        body = ok(await upload_model(client, alice, cars, name="Street Detector"), 201)
        data = body["data"]
        assert body["id"] == data["id"]
        assert body["owner"] == "alice"
        assert body["project"] == "cars"
        assert body["model"] == data["slug"] == "street-detector"
        assert body["name"] == data["name"] == "Street Detector"
        assert body["region"]
        assert data["projectId"] == cars
        assert data["hasWeights"] is True
        assert data["file"] == {"size": len(WEIGHTS)}
        assert data["status"] == "completed"
        stored = await get_model(client, alice, data["id"])
        assert stored["hasWeights"] is True
        assert stored["file"] == {"size": len(WEIGHTS)}

    async def test_name_defaults_to_the_file_name(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        data = await uploaded_model(client, alice, cars, filename="yolo11n-cars.pt")
        assert data["name"] == "yolo11n-cars"
        assert data["slug"] == "yolo11n-cars"

    async def test_same_name_twice_gets_a_number(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        slugs = [(await uploaded_model(client, alice, cars))["slug"] for _ in range(2)]
        assert slugs == ["best", "best-2"]

    async def test_stored_bytes_download_exactly(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        data = os.urandom(300_000)
        model = await uploaded_model(client, alice, cars, data=data)
        (first,) = await model_files(client, alice, model["id"])
        assert first["size"] == len(data)
        response = await download(client, first["downloadUrl"])
        assert response.content == data
        assert response.headers["content-length"] == str(len(data))

    async def test_file_name_with_a_path_keeps_the_base_name(
        self, client: httpx.AsyncClient, alice: User, cars: str
    ) -> None:
        model = await uploaded_model(client, alice, cars, filename="../../runs/last.pt")
        (first,) = await model_files(client, alice, model["id"])
        assert first["name"] == "last.pt"
        assert first["downloadUrl"].endswith("/last.pt")

    @pytest.mark.parametrize("filename", ["weights.onnx", "best.pt.zip", "best", "notes.txt"])
    async def test_file_that_is_not_a_pt_is_422(
        self, client: httpx.AsyncClient, alice: User, cars: str, filename: str
    ) -> None:
        assert_error(await upload_model(client, alice, cars, filename=filename), 422, "VALIDATION_ERROR")
        assert ok(await client.get(MODELS, headers=alice.headers))["data"] == []

    async def test_missing_file_is_422(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        response = await client.post(
            MODELS, data={"projectId": cars, "name": "x"}, files={"other": ("a.bin", b"1")}, headers=alice.headers
        )
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_missing_project_id_is_422(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        response = await client.post(
            MODELS, data={"name": "x"}, files={"file": ("best.pt", WEIGHTS)}, headers=alice.headers
        )
        error = assert_error(response, 422, "VALIDATION_ERROR")["error"]
        assert [item["field"] for item in error["details"]] == ["projectId"]

    async def test_file_sent_as_text_is_422(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        form = {"projectId": cars, "file": "best.pt"}
        response = await client.post(MODELS, data=form, files={"other": ("a.bin", b"1")}, headers=alice.headers)
        error = assert_error(response, 422, "VALIDATION_ERROR")["error"]
        assert [item["field"] for item in error["details"]] == ["file"]

    async def test_unknown_project_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await upload_model(client, alice, "project_missing"), 404, "NOT_FOUND")

    async def test_other_accounts_project_is_404(self, client: httpx.AsyncClient, bob: User, cars: str) -> None:
        assert_error(await upload_model(client, bob, cars), 404, "NOT_FOUND")

    async def test_counts_in_storage_usage(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        assert await model_bytes(client, alice) == {"bytes": 0, "count": 0}
        await uploaded_model(client, alice, cars)
        assert await model_bytes(client, alice) == {"bytes": len(WEIGHTS), "count": 1}
        used = ok(await client.get("/api/storage", headers=alice.headers))["data"]["used"]
        assert used == len(WEIGHTS)

    async def test_records_activity(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        model = await uploaded_model(client, alice, cars)
        events = ok(await client.get("/api/activity", headers=alice.headers))["data"]
        created = [event for event in events if event["action"] == "model.created"]
        assert [event["resourceId"] for event in created] == [model["id"]]


class TestAttachWeights:
    async def test_completion_attaches_the_weights(
        self, client: httpx.AsyncClient, alice: User, empty_model: str
    ) -> None:
        await attach_weights(client, alice, empty_model)
        model = await get_model(client, alice, empty_model)
        assert model["hasWeights"] is True
        assert model["file"] == {"size": len(WEIGHTS)}
        assert model["status"] == "completed"
        (first,) = await model_files(client, alice, empty_model)
        assert first["name"] == "best.pt"
        assert first["size"] == len(WEIGHTS)
        assert (await download(client, first["downloadUrl"])).content == WEIGHTS

    async def test_nothing_is_attached_before_completion(
        self, client: httpx.AsyncClient, alice: User, empty_model: str
    ) -> None:
        opened = ok(await open_upload(client, alice, empty_model))
        await put_bytes(client, opened, WEIGHTS)
        assert (await get_model(client, alice, empty_model))["hasWeights"] is False
        assert await model_files(client, alice, empty_model) == []

    @pytest.mark.parametrize("filename", ["notes.txt", "best.onnx", "best.pt.tar"])
    async def test_file_that_is_not_a_pt_is_refused(
        self, client: httpx.AsyncClient, alice: User, empty_model: str, filename: str
    ) -> None:
        assert_error(await open_upload(client, alice, empty_model, filename=filename), 422, "VALIDATION_ERROR")

    async def test_completing_twice_is_idempotent(
        self, client: httpx.AsyncClient, alice: User, empty_model: str
    ) -> None:
        session_id = await attach_weights(client, alice, empty_model)
        again = ok(await complete(client, alice, session_id))
        assert again["file"]["size"] == len(WEIGHTS)
        assert (await get_model(client, alice, empty_model))["file"] == {"size": len(WEIGHTS)}
        (first,) = await model_files(client, alice, empty_model)
        assert (await download(client, first["downloadUrl"])).content == WEIGHTS

    async def test_counts_once_in_storage_usage(self, client: httpx.AsyncClient, alice: User, empty_model: str) -> None:
        session_id = await attach_weights(client, alice, empty_model)
        ok(await complete(client, alice, session_id))
        assert await model_bytes(client, alice) == {"bytes": len(WEIGHTS), "count": 1}

    async def test_new_weights_replace_the_old(self, client: httpx.AsyncClient, alice: User, empty_model: str) -> None:
        await attach_weights(client, alice, empty_model)
        (old,) = await model_files(client, alice, empty_model)
        newer = os.urandom(4000)
        await attach_weights(client, alice, empty_model, newer, filename="last.pt")
        (first,) = await model_files(client, alice, empty_model)
        assert (first["name"], first["size"]) == ("last.pt", len(newer))
        assert (await download(client, first["downloadUrl"])).content == newer
        assert (await download(client, old["downloadUrl"])).status_code == 404
        assert await model_bytes(client, alice) == {"bytes": len(newer), "count": 1}

    async def test_model_trashed_before_completion_is_404(
        self, client: httpx.AsyncClient, alice: User, empty_model: str
    ) -> None:
        opened = ok(await open_upload(client, alice, empty_model))
        await put_bytes(client, opened, WEIGHTS)
        ok(await client.delete(f"{MODELS}/{empty_model}", headers=alice.headers))
        assert_error(await complete(client, alice, opened["sessionId"]), 404, "NOT_FOUND")


class TestPurgeModel:
    async def test_trash_keeps_the_weights(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        model = await uploaded_model(client, alice, cars)
        (first,) = await model_files(client, alice, model["id"])
        ok(await client.delete(f"{MODELS}/{model['id']}", headers=alice.headers))
        assert (await download(client, first["downloadUrl"])).content == WEIGHTS
        assert await model_bytes(client, alice) == {"bytes": len(WEIGHTS), "count": 1}

    async def test_restored_model_has_its_weights(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        model = await uploaded_model(client, alice, cars)
        ok(await client.delete(f"{MODELS}/{model['id']}", headers=alice.headers))
        ok(await client.post(TRASH, json={"id": model["id"], "type": "model"}, headers=alice.headers))
        (first,) = await model_files(client, alice, model["id"])
        assert (await download(client, first["downloadUrl"])).content == WEIGHTS

    async def test_permanent_delete_removes_the_weights(
        self, client: httpx.AsyncClient, database: Database, alice: User, cars: str, store: ObjectStore
    ) -> None:
        model = await uploaded_model(client, alice, cars)
        (first,) = await model_files(client, alice, model["id"])
        key = await weights_key(database, model["id"])
        ok(await client.delete(f"{MODELS}/{model['id']}", headers=alice.headers))
        body = {"id": model["id"], "type": "model"}
        ok(await client.request("DELETE", TRASH, json=body, headers=alice.headers))
        assert await store.size(key) is None
        assert (await download(client, first["downloadUrl"])).status_code == 404
        assert await model_bytes(client, alice) == {"bytes": 0, "count": 0}

    async def test_expired_trash_purge_removes_the_weights(
        self, client: httpx.AsyncClient, database: Database, alice: User, cars: str, store: ObjectStore
    ) -> None:
        model = await uploaded_model(client, alice, cars)
        key = await weights_key(database, model["id"])
        ok(await client.delete(f"{MODELS}/{model['id']}", headers=alice.headers))
        await backdate_trash(database, model["id"], days=31)
        assert await purge_expired_trash(database, store) == 1
        assert await store.size(key) is None
        assert await model_bytes(client, alice) == {"bytes": 0, "count": 0}

    async def test_purging_a_project_removes_its_models_weights(
        self, client: httpx.AsyncClient, database: Database, alice: User, cars: str, store: ObjectStore
    ) -> None:
        models: list[dict[str, Any]] = [await uploaded_model(client, alice, cars) for _ in range(2)]
        keys = [await weights_key(database, model["id"]) for model in models]
        ok(await client.delete("/api/projects/alice/cars", headers=alice.headers))
        ok(await client.request("DELETE", TRASH, json={"id": cars, "type": "project"}, headers=alice.headers))
        assert [await store.size(key) for key in keys] == [None, None]


class TestUploadLimits:
    """``storage.max_upload_bytes`` and the plan's quota hold for the multipart upload too."""

    LIMIT = 3 * len(WEIGHTS)
    QUOTA = int(2.5 * len(WEIGHTS))

    @pytest.fixture
    def settings(self, database_url: str, tmp_path: Path) -> Settings:
        storage = {"max_upload_bytes": self.LIMIT, "quota": {"free": self.QUOTA}}
        return make_settings(database_url, tmp_path / "data", storage=storage)

    async def test_file_above_the_limit_is_413_and_creates_nothing(
        self, client: httpx.AsyncClient, alice: User, cars: str
    ) -> None:
        response = await upload_model(client, alice, cars, data=os.urandom(self.LIMIT + 1))
        assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert ok(await client.get(MODELS, headers=alice.headers))["data"] == []
        assert await model_bytes(client, alice) == {"bytes": 0, "count": 0}

    async def test_upload_past_the_quota_is_413(self, client: httpx.AsyncClient, alice: User, cars: str) -> None:
        for _ in range(2):
            await uploaded_model(client, alice, cars)
        assert_error(await upload_model(client, alice, cars), 413, "PAYLOAD_TOO_LARGE")
        assert ok(await client.get(MODELS, headers=alice.headers))["meta"]["total"] == 2

    async def test_signed_upload_past_the_quota_is_413(
        self, client: httpx.AsyncClient, alice: User, cars: str, empty_model: str
    ) -> None:
        for _ in range(2):
            await uploaded_model(client, alice, cars)
        assert_error(await open_upload(client, alice, empty_model), 413, "PAYLOAD_TOO_LARGE")


class TestWeightsInS3:
    """With ``storage_url=s3://bucket`` the weights live in the bucket and leave it with the model."""

    @pytest.fixture
    def settings(self, database_url: str, tmp_path: Path, s3_bucket: S3Bucket) -> Settings:
        storage = {"s3_endpoint_url": s3_bucket.endpoint, "s3_region": "us-east-1"}
        return make_settings(database_url, tmp_path / "data", storage_url=f"s3://{s3_bucket.name}", storage=storage)

    async def test_attached_weights_move_to_the_model(
        self, client: httpx.AsyncClient, database: Database, s3_bucket: S3Bucket, alice: User, empty_model: str
    ) -> None:
        await attach_weights(client, alice, empty_model)
        key = await weights_key(database, empty_model)
        assert s3_bucket.object_keys() == [key]
        assert s3_bucket.read(key) == WEIGHTS

    async def test_download_url_is_presigned(
        self, client: httpx.AsyncClient, s3_bucket: S3Bucket, alice: User, empty_model: str
    ) -> None:
        await attach_weights(client, alice, empty_model)
        (first,) = await model_files(client, alice, empty_model)
        assert first["downloadUrl"].startswith(s3_bucket.endpoint)
        assert urlsplit(first["downloadUrl"]).path.endswith("/best.pt")
        async with httpx.AsyncClient() as outside:
            response = await outside.get(first["downloadUrl"])
        assert response.status_code == 200
        assert response.content == WEIGHTS

    async def test_permanent_delete_empties_the_bucket(
        self, client: httpx.AsyncClient, s3_bucket: S3Bucket, alice: User, cars: str
    ) -> None:
        model = await uploaded_model(client, alice, cars)
        assert len(s3_bucket.object_keys()) == 1
        ok(await client.delete(f"{MODELS}/{model['id']}", headers=alice.headers))
        ok(await client.request("DELETE", TRASH, json={"id": model["id"], "type": "model"}, headers=alice.headers))
        assert s3_bucket.object_keys() == []
