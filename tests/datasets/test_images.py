"""Dataset images: ``GET …/images`` paging and filters, and ``GET|PATCH|DELETE /api/images/{id}``."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI

from tests.datasets.helpers import (
    DATASETS,
    all_images,
    create_dataset,
    new_dataset_from,
    tree_members,
    yolo_tree,
    zip_members,
)
from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User
from yolostack.tables import image_key

IMAGES = "/api/images"
LABELS: dict[str, str | None] = {
    "train/a": "0 0.5 0.5 0.2 0.2",
    "train/b": "1 0.3 0.3 0.1 0.1\n0 0.6 0.6 0.2 0.2",
    "train/c": "1 0.4 0.4 0.2 0.2",
    "train/d": None,
    "train/e": "0 0.2 0.2 0.1 0.1",
    "val/f": "1 0.5 0.5 0.3 0.3",
    "val/g": None,
}


async def ingest_dataset(client: httpx.AsyncClient, user: User, slug: str, tmp_path: Path) -> list[dict[str, Any]]:
    """``user/slug`` with the seven LABELS images; returns them with their labels."""
    root = yolo_tree(tmp_path / f"{user.username}-{slug}", LABELS, ["cat", "dog"])
    archive = zip_members(root.with_suffix(".zip"), tree_members(root))
    assert (await new_dataset_from(client, user, slug, archive))["status"] == "ready"
    return await all_images(client, user, user.username, slug)


@pytest.fixture
async def cars(client: httpx.AsyncClient, alice: User, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Alice's private dataset ``alice/cars``: its images by name."""
    return {image["name"]: image for image in await ingest_dataset(client, alice, "cars", tmp_path)}


@pytest.fixture
async def bobs_private_image(client: httpx.AsyncClient, bob: User, tmp_path: Path) -> str:
    return str((await ingest_dataset(client, bob, "secret", tmp_path))[0]["id"])


@pytest.fixture
async def bobs_public_image(client: httpx.AsyncClient, bob: User, tmp_path: Path) -> str:
    images = await ingest_dataset(client, bob, "shared", tmp_path)
    ok(await client.patch(f"{DATASETS}/bob/shared", headers=bob.headers, json={"visibility": "public"}))
    return str(images[0]["id"])


async def dataset_of(client: httpx.AsyncClient, user: User, slug: str) -> dict[str, Any]:
    dataset: dict[str, Any] = ok(await client.get(f"{DATASETS}/{user.username}/{slug}", headers=user.headers))[
        "dataset"
    ]
    return dataset


class TestListDatasetImages:
    async def test_cursor_pages_through_everything_once(
        self, client: httpx.AsyncClient, alice: User, cars: dict[str, dict[str, Any]]
    ) -> None:
        seen: list[str] = []
        sizes = []
        cursor = ""
        while True:
            page = ok(await client.get(f"{DATASETS}/alice/cars/images?limit=3{cursor}", headers=alice.headers))
            seen += [image["id"] for image in page["images"]]
            sizes.append(len(page["images"]))
            assert page["total"] == 7
            assert page["classes"] == ["cat", "dog"]
            if page["nextCursor"] is None:
                assert page["hasMore"] is False
                break
            assert page["hasMore"] is True
            cursor = f"&cursor={page['nextCursor']}"
        assert sizes == [3, 3, 1]
        assert len(seen) == len(set(seen)) == 7
        assert set(seen) == {image["id"] for image in cars.values()}

    async def test_exact_page_ends_with_no_cursor(
        self, client: httpx.AsyncClient, alice: User, cars: dict[str, dict[str, Any]]
    ) -> None:
        page = ok(await client.get(f"{DATASETS}/alice/cars/images?limit=7", headers=alice.headers))
        assert len(page["images"]) == 7
        assert (page["hasMore"], page["nextCursor"]) == (False, None)

    async def test_split_filter(self, client: httpx.AsyncClient, alice: User, cars: dict[str, dict[str, Any]]) -> None:
        page = ok(await client.get(f"{DATASETS}/alice/cars/images?split=val", headers=alice.headers))
        assert sorted(image["name"] for image in page["images"]) == ["images/val/f.jpg", "images/val/g.jpg"]
        page = ok(await client.get(f"{DATASETS}/alice/cars/images?split=test", headers=alice.headers))
        assert page["images"] == []

    async def test_has_label_filter(
        self, client: httpx.AsyncClient, alice: User, cars: dict[str, dict[str, Any]]
    ) -> None:
        unlabeled = ok(await client.get(f"{DATASETS}/alice/cars/images?hasLabel=false", headers=alice.headers))
        assert sorted(image["name"] for image in unlabeled["images"]) == ["images/train/d.jpg", "images/val/g.jpg"]
        assert all(image["labelCount"] == 0 for image in unlabeled["images"])
        labeled = ok(await client.get(f"{DATASETS}/alice/cars/images?hasLabel=true&split=train", headers=alice.headers))
        assert len(labeled["images"]) == 4
        assert all(image["labelCount"] > 0 for image in labeled["images"])

    async def test_labels_and_urls_only_when_asked(
        self, client: httpx.AsyncClient, alice: User, cars: dict[str, dict[str, Any]]
    ) -> None:
        plain = ok(await client.get(f"{DATASETS}/alice/cars/images", headers=alice.headers))["images"][0]
        assert plain.get("labels") is None
        assert plain.get("imageUrl") is None

    async def test_image_urls_download_the_image(
        self, client: httpx.AsyncClient, alice: User, cars: dict[str, dict[str, Any]]
    ) -> None:
        page = ok(await client.get(f"{DATASETS}/alice/cars/images?includeImageUrls=true", headers=alice.headers))
        for image in page["images"]:
            assert image["imageUrl"].startswith("http")
            assert image["imageUrl"].endswith(f"{image['hash']}{image['ext']}")
            download = await client.get(urlsplit(image["imageUrl"]).path)  # no key needed
            assert download.status_code == 200
            assert hashlib.sha256(download.content).hexdigest() == image["hash"]
            assert int(download.headers["content-length"]) == image["bytes"]

    @pytest.mark.parametrize("query", ["limit=0", "limit=1001", "hasLabel=maybe", "cursor=" + "x" * 41])
    async def test_bad_query_is_validation_error(self, client: httpx.AsyncClient, alice: User, query: str) -> None:
        await create_dataset(client, alice, "empty")
        response = await client.get(f"{DATASETS}/alice/empty/images?{query}", headers=alice.headers)
        assert_error(response, 422, "VALIDATION_ERROR")


class TestGetImage:
    async def test_properties_labels_and_class_names(
        self, client: httpx.AsyncClient, alice: User, cars: dict[str, dict[str, Any]]
    ) -> None:
        image = cars["images/train/b.jpg"]
        body = ok(await client.get(f"{IMAGES}/{image['id']}", headers=alice.headers))
        properties = body["properties"]
        assert properties["id"] == image["id"]
        assert properties["datasetId"] == (await dataset_of(client, alice, "cars"))["id"]
        assert properties["filename"] == "images/train/b.jpg"
        assert (properties["hash"], properties["width"], properties["height"]) == (image["hash"], 48, 48)
        assert (properties["split"], properties["labelCount"]) == ("train", 2)
        assert body["labels"] == image["labels"]
        assert [label["classId"] for label in body["labels"]] == [1, 0]
        assert body["classNames"] == ["cat", "dog"]
        download = await client.get(urlsplit(body["imageUrl"]).path)
        assert hashlib.sha256(download.content).hexdigest() == image["hash"]

    async def test_properties_carry_what_the_sdk_types_read(
        self, client: httpx.AsyncClient, alice: User, cars: dict[str, dict[str, Any]]
    ) -> None:
        image = cars["images/train/b.jpg"]
        properties = ok(await client.get(f"{IMAGES}/{image['id']}", headers=alice.headers))["properties"]
        assert properties["annotationCount"] == 2
        assert properties["extension"] == "jpg"
        assert properties["retainedByVersion"] is False
        assert datetime.fromisoformat(properties["createdAt"]).tzinfo is not None

    async def test_unknown_image_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.get(f"{IMAGES}/image_nope", headers=alice.headers), 404, "NOT_FOUND")

    async def test_other_accounts_private_image_is_404(
        self, client: httpx.AsyncClient, alice: User, bobs_private_image: str
    ) -> None:
        assert_error(await client.get(f"{IMAGES}/{bobs_private_image}", headers=alice.headers), 404, "NOT_FOUND")

    async def test_other_accounts_public_image_is_readable(
        self, client: httpx.AsyncClient, alice: User, bobs_public_image: str
    ) -> None:
        body = ok(await client.get(f"{IMAGES}/{bobs_public_image}", headers=alice.headers))
        assert body["properties"]["id"] == bobs_public_image

    async def test_missing_key_is_401(self, client: httpx.AsyncClient, bobs_private_image: str) -> None:
        assert_error(await client.get(f"{IMAGES}/{bobs_private_image}"), 401, "UNAUTHORIZED")


class TestUpdateImage:
    async def test_valid_labels_are_saved_and_bump_the_version(
        self, client: httpx.AsyncClient, alice: User, cars: dict[str, dict[str, Any]]
    ) -> None:
        image_id = cars["images/train/d.jpg"]["id"]
        before = await dataset_of(client, alice, "cars")
        labels = [{"classId": 1, "bbox": [0.5, 0.5, 0.25, 0.5]}, {"classId": 0, "bbox": [0.1, 0.1, 0.1, 0.1]}]

        body = ok(await client.patch(f"{IMAGES}/{image_id}", headers=alice.headers, json={"labels": labels}))

        assert (body["labels"], body["labelCount"]) == (labels, 2)
        assert ok(await client.get(f"{IMAGES}/{image_id}", headers=alice.headers))["labels"] == labels
        after = await dataset_of(client, alice, "cars")
        assert after["version"] == before["version"] + 1
        assert after["splits"]["labeled"] == before["splits"]["labeled"] + 1

    async def test_invalid_labels_are_validation_errors(
        self, client: httpx.AsyncClient, alice: User, cars: dict[str, dict[str, Any]]
    ) -> None:
        image = cars["images/train/a.jpg"]
        before = await dataset_of(client, alice, "cars")
        invalid = [
            {"classId": 2, "bbox": [0.5, 0.5, 0.2, 0.2]},  # the dataset has two classes
            {"classId": 0, "bbox": [0.5, 0.5, 0.2]},
            {"classId": 0, "bbox": [1.5, 0.5, 0.2, 0.2]},
            {"classId": -1, "bbox": [0.5, 0.5, 0.2, 0.2]},
            {"bbox": [0.5, 0.5, 0.2, 0.2]},
            {"classId": 0, "segments": [0.1, 0.1, 0.2, 0.2]},
        ]
        for label in invalid:
            labels = [{"classId": 0, "bbox": [0.5, 0.5, 0.1, 0.1]}, label]
            response = await client.patch(f"{IMAGES}/{image['id']}", headers=alice.headers, json={"labels": labels})
            body = assert_error(response, 422, "VALIDATION_ERROR")
            assert body["error"]["message"].startswith("labels[1]"), label
        assert ok(await client.get(f"{IMAGES}/{image['id']}", headers=alice.headers))["labels"] == image["labels"]
        assert (await dataset_of(client, alice, "cars"))["version"] == before["version"]

    async def test_split_moves_the_image(
        self, client: httpx.AsyncClient, alice: User, cars: dict[str, dict[str, Any]]
    ) -> None:
        image = cars["images/train/a.jpg"]
        body = ok(await client.patch(f"{IMAGES}/{image['id']}", headers=alice.headers, json={"split": "test"}))
        assert body["split"] == "test"
        assert body["labels"] == image["labels"]
        assert (await dataset_of(client, alice, "cars"))["splits"] == {"train": 4, "val": 2, "test": 1, "labeled": 5}
        page = ok(await client.get(f"{DATASETS}/alice/cars/images?split=test", headers=alice.headers))
        assert [moved["id"] for moved in page["images"]] == [image["id"]]

    async def test_bad_split_is_validation_error(
        self, client: httpx.AsyncClient, alice: User, cars: dict[str, dict[str, Any]]
    ) -> None:
        response = await client.patch(
            f"{IMAGES}/{cars['images/train/a.jpg']['id']}", headers=alice.headers, json={"split": "holdout"}
        )
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_other_accounts_private_image_is_404(
        self, client: httpx.AsyncClient, alice: User, bobs_private_image: str
    ) -> None:
        response = await client.patch(f"{IMAGES}/{bobs_private_image}", headers=alice.headers, json={"labels": []})
        assert_error(response, 404, "NOT_FOUND")

    async def test_other_accounts_public_image_is_403(
        self, client: httpx.AsyncClient, alice: User, bob: User, bobs_public_image: str
    ) -> None:
        before = ok(await client.get(f"{IMAGES}/{bobs_public_image}", headers=bob.headers))["labels"]
        response = await client.patch(f"{IMAGES}/{bobs_public_image}", headers=alice.headers, json={"labels": []})
        assert_error(response, 403, "FORBIDDEN")
        assert ok(await client.get(f"{IMAGES}/{bobs_public_image}", headers=bob.headers))["labels"] == before


class TestDeleteImage:
    async def test_removes_the_image_and_its_file(
        self, client: httpx.AsyncClient, alice: User, app: FastAPI, cars: dict[str, dict[str, Any]]
    ) -> None:
        image = cars["images/val/f.jpg"]
        store = app.state.file_links.store
        key = image_key(alice.account.id, image["hash"], image["ext"])
        assert await store.size(key) == image["bytes"]
        version = (await dataset_of(client, alice, "cars"))["version"]

        body = ok(await client.delete(f"{IMAGES}/{image['id']}", headers=alice.headers))

        assert (body["deletedImageId"], body["deletedCount"]) == (image["id"], 1)
        assert_error(await client.get(f"{IMAGES}/{image['id']}", headers=alice.headers), 404, "NOT_FOUND")
        dataset = await dataset_of(client, alice, "cars")
        assert (dataset["imageCount"], dataset["splits"]["val"]) == (6, 1)
        assert dataset["version"] == version + 1
        assert await store.size(key) is None

    async def test_other_accounts_private_image_is_404(
        self, client: httpx.AsyncClient, alice: User, bob: User, bobs_private_image: str
    ) -> None:
        assert_error(await client.delete(f"{IMAGES}/{bobs_private_image}", headers=alice.headers), 404, "NOT_FOUND")
        ok(await client.get(f"{IMAGES}/{bobs_private_image}", headers=bob.headers))

    async def test_other_accounts_public_image_is_403(
        self, client: httpx.AsyncClient, alice: User, bob: User, bobs_public_image: str
    ) -> None:
        assert_error(await client.delete(f"{IMAGES}/{bobs_public_image}", headers=alice.headers), 403, "FORBIDDEN")
        ok(await client.get(f"{IMAGES}/{bobs_public_image}", headers=bob.headers))
