"""``GET /api/storage``: exact bytes per account and category, and the plan quota at upload time."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import update

from tests.datasets.test_ingest_flow import upload_archive, wait_ready
from tests.fixtures.app import make_settings
from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User, create_model
from tests.fixtures.synthetic import make_yolo_detect, zip_dir
from yolostack.config import Settings
from yolostack.core.db import Database
from yolostack.tables import Model

STORAGE = "/api/storage"


class TestGetStorage:
    async def test_empty_account(self, client: httpx.AsyncClient, alice: User) -> None:
        body = ok(await client.get(STORAGE, headers=alice.headers))
        assert body["data"] == {"used": 0, "limit": 10 * 1024**3, "percentage": 0.0}
        assert body["usage"]["storage"] == {"current": 0, "limit": 10 * 1024**3, "percent": 0.0}
        assert body["tier"] == "free"
        assert body["username"] == "alice"
        assert body["breakdown"]["byCategory"]["datasets"] == {"bytes": 0, "count": 0}

    async def test_every_usage_entry_has_a_limit_and_percent(self, client: httpx.AsyncClient, alice: User) -> None:
        usage = ok(await client.get(STORAGE, headers=alice.headers))["usage"]
        assert set(usage) == {"datasets", "models", "images", "deployments", "storage"}
        for name, entry in usage.items():
            assert set(entry) == {"current", "limit", "percent"}, name
            assert isinstance(entry["percent"], float)

    async def test_counts_each_image_once_and_drops_the_ingested_archive(
        self, client: httpx.AsyncClient, alice: User, tmp_path: Path
    ) -> None:
        source = make_yolo_detect(tmp_path / "src", images=6)
        image_bytes = sum(path.stat().st_size for path in source.rglob("*.jpg"))
        archive = zip_dir(source, tmp_path / "a.zip")
        for slug in ("one", "two"):  # the same images in two datasets are stored once
            created = ok(
                await client.post("/api/datasets", headers=alice.headers, json={"dataset": slug, "name": slug}), 201
            )
            session_id = await upload_archive(client, alice, created["id"], archive)
            held = ok(await client.get(STORAGE, headers=alice.headers))["data"]["used"]
            assert held >= archive.stat().st_size  # the uploaded archive counts until it is ingested
            ok(
                await client.post(
                    f"/api/datasets/alice/{slug}/ingest", headers=alice.headers, json={"sessionId": session_id}
                ),
                202,
            )
            assert (await wait_ready(client, alice, slug))["status"] == "ready"
        body = ok(await client.get(STORAGE, headers=alice.headers))
        assert body["data"]["used"] == image_bytes
        assert body["breakdown"]["byCategory"]["datasets"] == {"bytes": image_bytes, "count": 2}
        assert body["usage"]["images"] == {"current": 6, "limit": 0, "percent": 0.0}  # 0: no limit here

    async def test_details_list_the_largest_items(
        self, client: httpx.AsyncClient, database: Database, alice: User, bob: User, tmp_path: Path
    ) -> None:
        source = make_yolo_detect(tmp_path / "src", images=4)
        image_bytes = sum(path.stat().st_size for path in source.rglob("*.jpg"))
        created = ok(
            await client.post("/api/datasets", headers=alice.headers, json={"dataset": "big", "name": "Big"}), 201
        )
        session_id = await upload_archive(client, alice, created["id"], zip_dir(source, tmp_path / "big.zip"))
        ok(
            await client.post("/api/datasets/alice/big/ingest", headers=alice.headers, json={"sessionId": session_id}),
            202,
        )
        await wait_ready(client, alice, "big")
        project = ok(
            await client.post("/api/projects", headers=alice.headers, json={"project": "cars", "name": "Cars"}), 201
        )
        heavy = await create_model(database, alice, project["id"], "heavy")
        light = await create_model(database, alice, project["id"], "light")
        others = ok(await client.post("/api/projects", headers=bob.headers, json={"project": "p", "name": "P"}), 201)
        bobs = await create_model(database, bob, others["id"], "bobs")
        async with database.sessionmaker() as session, session.begin():
            for model_id, size in ((heavy, image_bytes + 1), (light, 10), (bobs, 10**9)):
                await session.execute(update(Model).where(Model.id == model_id).values(weights_size=size))

        plain = ok(await client.get(STORAGE, headers=alice.headers))
        assert plain["breakdown"]["topItems"] == []
        top = ok(await client.get(STORAGE, headers=alice.headers, params={"details": "true"}))["breakdown"]["topItems"]
        assert top == [
            {
                "_id": heavy,
                "name": "heavy",
                "slug": "heavy",
                "sizeBytes": image_bytes + 1,
                "type": "model",
                "parentName": "Cars",
                "parentSlug": "cars",
            },
            {
                "_id": created["id"],
                "name": "Big",
                "slug": "big",
                "sizeBytes": image_bytes,
                "type": "dataset",
                "parentName": None,
                "parentSlug": None,
            },
            {
                "_id": light,
                "name": "light",
                "slug": "light",
                "sizeBytes": 10,
                "type": "model",
                "parentName": "Cars",
                "parentSlug": "cars",
            },
        ]

    async def test_exports_count_and_only_the_newest_is_kept(
        self, client: httpx.AsyncClient, alice: User, tmp_path: Path
    ) -> None:
        created = ok(
            await client.post("/api/datasets", headers=alice.headers, json={"dataset": "ex", "name": "ex"}), 201
        )
        archive = zip_dir(make_yolo_detect(tmp_path / "src", images=3), tmp_path / "ex.zip")
        session_id = await upload_archive(client, alice, created["id"], archive)
        ok(
            await client.post("/api/datasets/alice/ex/ingest", headers=alice.headers, json={"sessionId": session_id}),
            202,
        )
        await wait_ready(client, alice, "ex")
        first = ok(await client.get("/api/datasets/alice/ex/export", headers=alice.headers))
        assert first["cached"] is False
        assert ok(await client.get("/api/datasets/alice/ex/export", headers=alice.headers))["cached"] is True
        exported = (await client.get(urlsplit(first["downloadUrl"]).path)).content
        body = ok(await client.get(STORAGE, headers=alice.headers))
        assert body["breakdown"]["byCategory"]["exports"] == {"bytes": len(exported), "count": 1}
        # A new version makes a new export; the old file goes.
        ok(await client.patch("/api/datasets/alice/ex", headers=alice.headers, json={"classNames": ["a", "b"]}))
        second = ok(await client.get("/api/datasets/alice/ex/export", headers=alice.headers))
        assert second["cached"] is False
        assert (await client.get(urlsplit(first["downloadUrl"]).path)).status_code == 404
        assert ok(await client.get(STORAGE, headers=alice.headers))["breakdown"]["byCategory"]["exports"]["count"] == 1

    async def test_other_accounts_bytes_are_not_mine(
        self, client: httpx.AsyncClient, alice: User, bob: User, tmp_path: Path
    ) -> None:
        created = ok(await client.post("/api/datasets", headers=alice.headers, json={"dataset": "a", "name": "a"}), 201)
        await upload_archive(
            client, alice, created["id"], zip_dir(make_yolo_detect(tmp_path / "s", images=2), tmp_path / "a.zip")
        )
        assert ok(await client.get(STORAGE, headers=bob.headers))["data"]["used"] == 0

    async def test_needs_a_key(self, client: httpx.AsyncClient) -> None:
        assert_error(await client.get(STORAGE), 401, "UNAUTHORIZED")


class TestQuota:
    @pytest.fixture
    def settings(self, database_url: str, tmp_path: Path) -> Settings:
        return make_settings(database_url, tmp_path / "data", storage={"quota": {"free": 1000}})

    async def dataset_id(self, client: httpx.AsyncClient, user: User) -> str:
        created = ok(await client.post("/api/datasets", headers=user.headers, json={"dataset": "q", "name": "q"}), 201)
        return str(created["id"])

    async def test_declared_size_over_quota_is_refused_up_front(self, client: httpx.AsyncClient, alice: User) -> None:
        body = {
            "assetType": "datasets",
            "assetId": await self.dataset_id(client, alice),
            "filename": "a.zip",
            "totalBytes": 1001,
        }
        response = await client.post("/api/upload/signed-url", headers=alice.headers, json=body)
        error = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert error["error"]["details"] == {"used": 0, "limit": 1000, "requested": 1001}

    async def test_undeclared_stream_is_cut_at_the_quota(self, client: httpx.AsyncClient, alice: User) -> None:
        body = {"assetType": "datasets", "assetId": await self.dataset_id(client, alice), "filename": "a.zip"}
        signed = ok(await client.post("/api/upload/signed-url", headers=alice.headers, json=body))
        response = await client.put(urlsplit(signed["uploadUrl"]).path, content=b"x" * 1500)
        assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert ok(await client.get(STORAGE, headers=alice.headers))["data"]["used"] == 0

    async def test_within_quota_is_accepted(self, client: httpx.AsyncClient, alice: User) -> None:
        body = {
            "assetType": "datasets",
            "assetId": await self.dataset_id(client, alice),
            "filename": "a.zip",
            "totalBytes": 900,
        }
        signed = ok(await client.post("/api/upload/signed-url", headers=alice.headers, json=body))
        assert (await client.put(urlsplit(signed["uploadUrl"]).path, content=b"x" * 900)).status_code == 200
        assert ok(await client.get(STORAGE, headers=alice.headers))["data"]["used"] == 900
