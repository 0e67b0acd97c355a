"""Datasets: seed routes by id (``/api/datasets[/{datasetId}]``) and client routes by ``{owner}/{slug}``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI

from tests.datasets.helpers import DATASETS, all_images, create_dataset, ingest, tree_members, yolo_tree, zip_members
from tests.datasets.test_ingest_flow import upload_archive
from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User, add_key
from yolostack.config import Settings
from yolostack.core.db import Database
from yolostack.storage.service import FileLinks
from yolostack.tables import image_key

LABELS = {"train/a": "0 0.5 0.5 0.2 0.2", "train/b": "1 0.3 0.3 0.1 0.1", "val/c": "0 0.4 0.4 0.2 0.2"}
INGEST_BODY = {"sessionId": "upload_0123456789"}


@pytest.fixture
def links(app: FastAPI) -> FileLinks:
    file_links: FileLinks = app.state.file_links
    return file_links


@pytest.fixture
async def bobs_private(client: httpx.AsyncClient, bob: User) -> str:
    """Bob's private dataset ``bob/secret``; returns its id."""
    return await create_dataset(client, bob, "secret")


@pytest.fixture
async def bobs_public(client: httpx.AsyncClient, bob: User) -> str:
    """Bob's public dataset ``bob/shared``; returns its id."""
    return await create_dataset(client, bob, "shared", visibility="public")


async def ingest_labels(
    client: httpx.AsyncClient, user: User, slug: str, tmp_path: Path, labels: Mapping[str, str | None] = LABELS
) -> str:
    """A new dataset holding ``labels`` (distinct pictures); returns its id."""
    dataset_id = await create_dataset(client, user, slug)
    archive = zip_members(tmp_path / f"{slug}.zip", tree_members(yolo_tree(tmp_path / slug, labels, ["cat", "dog"])))
    assert (await ingest(client, user, slug, dataset_id, archive))["status"] == "ready"
    return dataset_id


class TestListDatasetsSeed:
    async def test_pages_newest_first_with_meta(self, client: httpx.AsyncClient, alice: User) -> None:
        for slug in ("one", "two", "three"):
            await create_dataset(client, alice, slug)
        first = ok(await client.get(f"{DATASETS}?page=1&limit=2", headers=alice.headers))
        second = ok(await client.get(f"{DATASETS}?page=2&limit=2", headers=alice.headers))
        assert first["meta"] == {"page": 1, "limit": 2, "total": 3}
        assert second["meta"] == {"page": 2, "limit": 2, "total": 3}
        slugs = [item["slug"] for item in first["data"] + second["data"]]
        assert slugs == ["three", "two", "one"]
        assert first["data"][0]["id"].startswith("dataset_")

    async def test_task_filter(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_dataset(client, alice, "boxes", task="detect")
        await create_dataset(client, alice, "masks", task="segment")
        body = ok(await client.get(f"{DATASETS}?task=segment", headers=alice.headers))
        assert [item["slug"] for item in body["data"]] == ["masks"]
        assert body["meta"]["total"] == 1

    async def test_other_accounts_datasets_are_not_listed(
        self, client: httpx.AsyncClient, alice: User, bobs_private: str, bobs_public: str
    ) -> None:
        body = ok(await client.get(DATASETS, headers=alice.headers))
        assert body["data"] == []
        assert body["meta"]["total"] == 0

    @pytest.mark.parametrize("query", ["task=banana", "limit=0", "limit=101", "page=0"])
    async def test_bad_query_is_validation_error(self, client: httpx.AsyncClient, alice: User, query: str) -> None:
        assert_error(await client.get(f"{DATASETS}?{query}", headers=alice.headers), 422, "VALIDATION_ERROR")

    async def test_missing_key_is_401(self, client: httpx.AsyncClient) -> None:
        assert_error(await client.get(DATASETS), 401, "UNAUTHORIZED")

    async def test_key_without_datasets_scope_is_403(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        key = await add_key(database, alice, scopes=["projects"])
        response = await client.get(DATASETS, headers={"Authorization": f"Bearer {key}"})
        assert_error(response, 403, "FORBIDDEN")

    async def test_key_with_datasets_scope_is_allowed(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        key = await add_key(database, alice, scopes=["datasets"])
        ok(await client.get(DATASETS, headers={"x-api-key": key}))


class TestCreateDataset:
    async def test_seed_body(self, client: httpx.AsyncClient, alice: User) -> None:
        body = ok(
            await client.post(
                DATASETS, headers=alice.headers, json={"name": "Street Scenes", "task": "segment", "description": "d"}
            ),
            201,
        )
        data = body["data"]
        assert data["id"].startswith("dataset_")
        assert data["slug"] == data["dataset"] == "street-scenes"
        assert (data["name"], data["task"], data["description"]) == ("Street Scenes", "segment", "d")
        assert (data["visibility"], data["status"], data["imageCount"]) == ("private", "ready", 0)
        assert (body["id"], body["owner"], body["dataset"]) == (data["id"], "alice", "street-scenes")
        assert body["region"]

    async def test_client_body(self, client: httpx.AsyncClient, alice: User) -> None:
        body = ok(
            await client.post(
                DATASETS,
                headers=alice.headers,
                json={
                    "dataset": "cars",
                    "name": "Cars",
                    "visibility": "public",
                    "classNames": ["car", "bus"],
                    "tags": ["traffic"],
                    "owner": "alice",
                },
            ),
            201,
        )
        assert body["owner"] == "alice"
        assert body["dataset"] == "cars"
        assert body["region"]
        detail = ok(await client.get(f"{DATASETS}/alice/cars", headers=alice.headers))["dataset"]
        assert detail["id"] == body["id"]
        assert detail["classNames"] == ["car", "bus"]
        assert detail["classCount"] == 2
        assert detail["visibility"] == "public"
        assert detail["tags"] == ["traffic"]

    async def test_existing_slug_is_409(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_dataset(client, alice, "cars")
        response = await client.post(DATASETS, headers=alice.headers, json={"dataset": "cars", "name": "Again"})
        assert_error(response, 409, "CONFLICT")

    async def test_existing_slug_from_seed_name_is_409(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_dataset(client, alice, "my-cars")
        assert_error(await client.post(DATASETS, headers=alice.headers, json={"name": "My Cars"}), 409, "CONFLICT")

    async def test_same_slug_for_another_account_is_allowed(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        assert await create_dataset(client, alice, "cars") != await create_dataset(client, bob, "cars")

    @pytest.mark.parametrize("slug", ["my_data", "MyData", "-cars", "a b", "", "x" * 129])
    async def test_bad_slug_is_validation_error(self, client: httpx.AsyncClient, alice: User, slug: str) -> None:
        response = await client.post(DATASETS, headers=alice.headers, json={"dataset": slug, "name": "Cars"})
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_bad_task_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.post(DATASETS, headers=alice.headers, json={"name": "Cars", "task": "depth"})
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_no_name_and_no_slug_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.post(DATASETS, headers=alice.headers, json={}), 422, "VALIDATION_ERROR")

    async def test_other_owner_is_404(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        response = await client.post(DATASETS, headers=alice.headers, json={"dataset": "cars", "owner": "bob"})
        assert_error(response, 404, "NOT_FOUND")

    async def test_missing_key_is_401(self, client: httpx.AsyncClient) -> None:
        assert_error(await client.post(DATASETS, json={"dataset": "cars"}), 401, "UNAUTHORIZED")

    async def test_key_without_datasets_scope_is_403(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        key = await add_key(database, alice, scopes=["models"])
        response = await client.post(DATASETS, headers={"Authorization": f"Bearer {key}"}, json={"dataset": "cars"})
        assert_error(response, 403, "FORBIDDEN")


class TestGetDatasetById:
    async def test_own_dataset(self, client: httpx.AsyncClient, alice: User) -> None:
        dataset_id = await create_dataset(client, alice, "cars", description="street", metadata={"source": "cli"})
        data = ok(await client.get(f"{DATASETS}/{dataset_id}", headers=alice.headers))["data"]
        assert (data["id"], data["owner"], data["slug"]) == (dataset_id, "alice", "cars")
        assert data["metadata"] == {"source": "cli"}
        assert data["splits"] == {"train": 0, "val": 0, "test": 0, "labeled": 0}

    async def test_unknown_id_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.get(f"{DATASETS}/dataset_nope", headers=alice.headers), 404, "NOT_FOUND")

    async def test_other_accounts_private_dataset_is_404(
        self, client: httpx.AsyncClient, alice: User, bobs_private: str
    ) -> None:
        assert_error(await client.get(f"{DATASETS}/{bobs_private}", headers=alice.headers), 404, "NOT_FOUND")

    async def test_other_accounts_public_dataset_is_readable(
        self, client: httpx.AsyncClient, alice: User, bobs_public: str
    ) -> None:
        data = ok(await client.get(f"{DATASETS}/{bobs_public}", headers=alice.headers))["data"]
        assert (data["owner"], data["slug"]) == ("bob", "shared")


class TestDeleteDatasetById:
    async def test_moves_it_to_the_trash(self, client: httpx.AsyncClient, alice: User) -> None:
        dataset_id = await create_dataset(client, alice, "cars")
        body = ok(await client.delete(f"{DATASETS}/{dataset_id}", headers=alice.headers))
        assert body["data"] == {"id": dataset_id, "trashed": True}
        assert_error(await client.get(f"{DATASETS}/{dataset_id}", headers=alice.headers), 404, "NOT_FOUND")
        trash = ok(await client.get("/api/trash?type=dataset", headers=alice.headers))
        assert [item["_id"] for item in trash["items"]] == [dataset_id]

    async def test_other_accounts_private_dataset_is_404(
        self, client: httpx.AsyncClient, alice: User, bob: User, bobs_private: str
    ) -> None:
        assert_error(await client.delete(f"{DATASETS}/{bobs_private}", headers=alice.headers), 404, "NOT_FOUND")
        ok(await client.get(f"{DATASETS}/{bobs_private}", headers=bob.headers))

    async def test_other_accounts_public_dataset_is_403(
        self, client: httpx.AsyncClient, alice: User, bob: User, bobs_public: str
    ) -> None:
        assert_error(await client.delete(f"{DATASETS}/{bobs_public}", headers=alice.headers), 403, "FORBIDDEN")
        ok(await client.get(f"{DATASETS}/{bobs_public}", headers=bob.headers))


class TestExportDatasetById:
    async def test_returns_a_download_url(self, client: httpx.AsyncClient, alice: User, tmp_path: Path) -> None:
        dataset_id = await ingest_labels(client, alice, "cars", tmp_path)
        body = ok(await client.post(f"{DATASETS}/{dataset_id}/export", headers=alice.headers))
        assert body["data"]["downloadUrl"] == body["downloadUrl"]
        assert body["downloadUrl"].endswith("/cars.ndjson")
        download = await client.get(urlsplit(body["downloadUrl"]).path)
        assert download.status_code == 200
        assert len(download.text.splitlines()) == 1 + 3

    async def test_other_accounts_private_dataset_is_404(
        self, client: httpx.AsyncClient, alice: User, bobs_private: str
    ) -> None:
        response = await client.post(f"{DATASETS}/{bobs_private}/export", headers=alice.headers)
        assert_error(response, 404, "NOT_FOUND")

    async def test_other_accounts_public_dataset_is_exportable(
        self, client: httpx.AsyncClient, alice: User, bobs_public: str
    ) -> None:
        body = ok(await client.post(f"{DATASETS}/{bobs_public}/export", headers=alice.headers))
        assert body["downloadUrl"].endswith("/shared.ndjson")


class TestListOwnerDatasets:
    async def test_own_datasets(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_dataset(client, alice, "one")
        await create_dataset(client, alice, "two", visibility="public")
        body = ok(await client.get(f"{DATASETS}/alice", headers=alice.headers))
        assert [item["dataset"] for item in body["datasets"]] == ["two", "one"]
        assert body["total"] == 2
        assert body["region"]
        assert "data" not in body

    async def test_another_owner_shows_only_public(
        self, client: httpx.AsyncClient, alice: User, bobs_private: str, bobs_public: str
    ) -> None:
        body = ok(await client.get(f"{DATASETS}/bob", headers=alice.headers))
        assert [(item["owner"], item["dataset"]) for item in body["datasets"]] == [("bob", "shared")]
        assert body["total"] == 1

    async def test_task_filter_and_limit(self, client: httpx.AsyncClient, alice: User) -> None:
        for slug in ("a", "b", "c"):
            await create_dataset(client, alice, slug, task="pose")
        await create_dataset(client, alice, "d", task="obb")
        body = ok(await client.get(f"{DATASETS}/alice?task=pose&limit=2", headers=alice.headers))
        assert len(body["datasets"]) == 2
        assert body["total"] == 3

    async def test_unknown_owner_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.get(f"{DATASETS}/nobody", headers=alice.headers), 404, "NOT_FOUND")

    @pytest.mark.parametrize("limit", ["0", "101", "many"])
    async def test_limit_out_of_range_is_validation_error(
        self, client: httpx.AsyncClient, alice: User, limit: str
    ) -> None:
        response = await client.get(f"{DATASETS}/alice?limit={limit}", headers=alice.headers)
        assert_error(response, 422, "VALIDATION_ERROR")


class TestGetDataset:
    async def test_own_dataset(self, client: httpx.AsyncClient, alice: User) -> None:
        dataset_id = await create_dataset(client, alice, "cars", metadata={"k": "v"})
        body = ok(await client.get(f"{DATASETS}/alice/cars", headers=alice.headers))
        dataset = body["dataset"]
        assert (dataset["id"], dataset["owner"], dataset["dataset"]) == (dataset_id, "alice", "cars")
        assert dataset["metadata"] == {"k": "v"}
        for field in ("name", "visibility", "task", "imageCount", "splits", "starCount", "isStarred", "createdAt"):
            assert field in dataset

    async def test_unknown_slug_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.get(f"{DATASETS}/alice/nope", headers=alice.headers), 404, "NOT_FOUND")

    async def test_other_accounts_private_dataset_is_404(
        self, client: httpx.AsyncClient, alice: User, bobs_private: str
    ) -> None:
        assert_error(await client.get(f"{DATASETS}/bob/secret", headers=alice.headers), 404, "NOT_FOUND")

    async def test_other_accounts_public_dataset_is_readable(
        self, client: httpx.AsyncClient, alice: User, bobs_public: str
    ) -> None:
        dataset = ok(await client.get(f"{DATASETS}/bob/shared", headers=alice.headers))["dataset"]
        assert (dataset["id"], dataset["owner"]) == (bobs_public, "bob")


class TestUpdateDataset:
    async def test_rename_changes_the_slug(self, client: httpx.AsyncClient, alice: User) -> None:
        dataset_id = await create_dataset(client, alice, "cars")
        body = ok(await client.patch(f"{DATASETS}/alice/cars", headers=alice.headers, json={"name": "Fast Cars"}))
        assert body["dataset"] == "fast-cars"
        assert_error(await client.get(f"{DATASETS}/alice/cars", headers=alice.headers), 404, "NOT_FOUND")
        renamed = ok(await client.get(f"{DATASETS}/alice/fast-cars", headers=alice.headers))["dataset"]
        assert (renamed["id"], renamed["name"]) == (dataset_id, "Fast Cars")

    async def test_rename_onto_an_existing_slug_is_409(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_dataset(client, alice, "cars")
        await create_dataset(client, alice, "bikes")
        response = await client.patch(f"{DATASETS}/alice/cars", headers=alice.headers, json={"name": "Bikes"})
        assert_error(response, 409, "CONFLICT")

    async def test_class_names_bump_the_version(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_dataset(client, alice, "cars")
        before = ok(await client.get(f"{DATASETS}/alice/cars", headers=alice.headers))["dataset"]["version"]
        ok(await client.patch(f"{DATASETS}/alice/cars", headers=alice.headers, json={"classNames": ["car", "bus"]}))
        after = ok(await client.get(f"{DATASETS}/alice/cars", headers=alice.headers))["dataset"]
        assert after["classNames"] == ["car", "bus"]
        assert after["version"] == before + 1

    async def test_visibility_public_lets_others_read(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        await create_dataset(client, alice, "cars")
        assert_error(await client.get(f"{DATASETS}/alice/cars", headers=bob.headers), 404, "NOT_FOUND")
        ok(await client.patch(f"{DATASETS}/alice/cars", headers=alice.headers, json={"visibility": "public"}))
        assert ok(await client.get(f"{DATASETS}/alice/cars", headers=bob.headers))["dataset"]["visibility"] == "public"

    async def test_bad_visibility_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_dataset(client, alice, "cars")
        response = await client.patch(f"{DATASETS}/alice/cars", headers=alice.headers, json={"visibility": "open"})
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_other_accounts_private_dataset_is_404(
        self, client: httpx.AsyncClient, alice: User, bobs_private: str
    ) -> None:
        response = await client.patch(f"{DATASETS}/bob/secret", headers=alice.headers, json={"description": "x"})
        assert_error(response, 404, "NOT_FOUND")

    async def test_other_accounts_public_dataset_is_403(
        self, client: httpx.AsyncClient, alice: User, bob: User, bobs_public: str
    ) -> None:
        response = await client.patch(f"{DATASETS}/bob/shared", headers=alice.headers, json={"description": "x"})
        assert_error(response, 403, "FORBIDDEN")
        assert ok(await client.get(f"{DATASETS}/bob/shared", headers=bob.headers))["dataset"]["description"] is None


class TestDeleteDataset:
    async def test_moves_it_to_the_trash(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_dataset(client, alice, "cars")
        body = ok(await client.delete(f"{DATASETS}/alice/cars", headers=alice.headers))
        assert body == {"success": True}
        assert_error(await client.get(f"{DATASETS}/alice/cars", headers=alice.headers), 404, "NOT_FOUND")
        assert ok(await client.get(f"{DATASETS}/alice", headers=alice.headers))["total"] == 0

    async def test_other_accounts_private_dataset_is_404(
        self, client: httpx.AsyncClient, alice: User, bobs_private: str
    ) -> None:
        assert_error(await client.delete(f"{DATASETS}/bob/secret", headers=alice.headers), 404, "NOT_FOUND")

    async def test_other_accounts_public_dataset_is_403(
        self, client: httpx.AsyncClient, alice: User, bobs_public: str
    ) -> None:
        assert_error(await client.delete(f"{DATASETS}/bob/shared", headers=alice.headers), 403, "FORBIDDEN")


class TestExportDataset:
    async def test_other_accounts_private_dataset_is_404(
        self, client: httpx.AsyncClient, alice: User, bobs_private: str
    ) -> None:
        assert_error(await client.get(f"{DATASETS}/bob/secret/export", headers=alice.headers), 404, "NOT_FOUND")

    async def test_other_accounts_public_dataset_is_exportable(
        self, client: httpx.AsyncClient, alice: User, bobs_public: str
    ) -> None:
        body = ok(await client.get(f"{DATASETS}/bob/shared/export", headers=alice.headers))
        assert body["downloadUrl"].endswith("/shared.ndjson")
        assert isinstance(body["version"], int)


class TestIngestDataset:
    @pytest.mark.parametrize(
        "body",
        [{}, {"sessionId": ""}, {**INGEST_BODY, "targetSplit": "holdout"}, {**INGEST_BODY, "conflictPolicy": "merge"}],
    )
    async def test_bad_body_is_validation_error(
        self, client: httpx.AsyncClient, alice: User, body: dict[str, Any]
    ) -> None:
        await create_dataset(client, alice, "cars")
        response = await client.post(f"{DATASETS}/alice/cars/ingest", headers=alice.headers, json=body)
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_other_accounts_private_dataset_is_404(
        self, client: httpx.AsyncClient, alice: User, bobs_private: str
    ) -> None:
        response = await client.post(f"{DATASETS}/bob/secret/ingest", headers=alice.headers, json=INGEST_BODY)
        assert_error(response, 404, "NOT_FOUND")

    async def test_other_accounts_public_dataset_is_403(
        self, client: httpx.AsyncClient, alice: User, bobs_public: str
    ) -> None:
        response = await client.post(f"{DATASETS}/bob/shared/ingest", headers=alice.headers, json=INGEST_BODY)
        assert_error(response, 403, "FORBIDDEN")

    async def test_someone_elses_upload_is_404(
        self, client: httpx.AsyncClient, alice: User, bob: User, bobs_private: str, tmp_path: Path
    ) -> None:
        archive = zip_members(tmp_path / "b.zip", tree_members(yolo_tree(tmp_path / "b", LABELS, ["cat", "dog"])))
        bobs_session = await upload_archive(client, bob, bobs_private, archive)
        await create_dataset(client, alice, "cars")
        response = await client.post(
            f"{DATASETS}/alice/cars/ingest", headers=alice.headers, json={"sessionId": bobs_session}
        )
        assert_error(response, 404, "NOT_FOUND")


class TestListDatasetImagesAccess:
    async def test_bad_split_filter_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_dataset(client, alice, "cars")
        response = await client.get(f"{DATASETS}/alice/cars/images?split=holdout", headers=alice.headers)
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_other_accounts_private_dataset_is_404(
        self, client: httpx.AsyncClient, alice: User, bobs_private: str
    ) -> None:
        assert_error(await client.get(f"{DATASETS}/bob/secret/images", headers=alice.headers), 404, "NOT_FOUND")

    async def test_other_accounts_public_dataset_is_readable(
        self, client: httpx.AsyncClient, alice: User, bob: User, tmp_path: Path
    ) -> None:
        await ingest_labels(client, bob, "shared", tmp_path)
        ok(await client.patch(f"{DATASETS}/bob/shared", headers=bob.headers, json={"visibility": "public"}))
        body = ok(await client.get(f"{DATASETS}/bob/shared/images?includeLabels=true", headers=alice.headers))
        assert body["total"] == 3
        assert body["classes"] == ["cat", "dog"]


class TestTrashedDataset:
    async def test_restore_brings_it_back_with_its_images(
        self, client: httpx.AsyncClient, alice: User, tmp_path: Path
    ) -> None:
        dataset_id = await ingest_labels(client, alice, "cars", tmp_path)
        before = await all_images(client, alice, "alice", "cars")
        ok(await client.delete(f"{DATASETS}/alice/cars", headers=alice.headers))
        assert_error(await client.get(f"{DATASETS}/alice/cars/images", headers=alice.headers), 404, "NOT_FOUND")

        ok(await client.post("/api/trash", headers=alice.headers, json={"id": dataset_id, "type": "dataset"}))

        dataset = ok(await client.get(f"{DATASETS}/alice/cars", headers=alice.headers))["dataset"]
        assert (dataset["id"], dataset["status"], dataset["imageCount"]) == (dataset_id, "ready", 3)
        assert await all_images(client, alice, "alice", "cars") == before

    async def test_purge_deletes_unshared_image_files_only(
        self, client: httpx.AsyncClient, alice: User, tmp_path: Path, settings: Settings, links: FileLinks
    ) -> None:
        dataset_id = await ingest_labels(client, alice, "cars", tmp_path)
        keep = {key: LABELS[key] for key in ("train/a", "train/b")}
        await ingest_labels(client, alice, "subset", tmp_path, keep)  # the same pictures a and b
        keys = {
            image["name"]: image_key(alice.account.id, image["hash"], image["ext"])
            for image in await all_images(client, alice, "alice", "cars")
        }
        assert sorted(keys) == ["images/train/a.jpg", "images/train/b.jpg", "images/val/c.jpg"]
        objects = Path(settings.data_dir) / "objects"
        assert all((objects / key).is_file() for key in keys.values())

        ok(await client.delete(f"{DATASETS}/alice/cars", headers=alice.headers))
        body = ok(
            await client.request(
                "DELETE", "/api/trash", headers=alice.headers, json={"id": dataset_id, "type": "dataset"}
            )
        )

        assert body["deletedCount"] == 1
        assert await links.store.size(keys["images/val/c.jpg"]) is None
        assert not (objects / keys["images/val/c.jpg"]).exists()
        for shared in ("images/train/a.jpg", "images/train/b.jpg"):
            assert await links.store.size(keys[shared]) is not None
        restore = await client.post("/api/trash", headers=alice.headers, json={"id": dataset_id, "type": "dataset"})
        assert_error(restore, 404, "NOT_FOUND")
        subset = await all_images(client, alice, "alice", "subset")
        assert len(subset) == 2
        for image in subset:  # the surviving dataset's images still download
            picture = await client.get(
                urlsplit(ok(await client.get(f"/api/images/{image['id']}", headers=alice.headers))["imageUrl"]).path
            )
            assert picture.status_code == 200
