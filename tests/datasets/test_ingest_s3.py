"""The dataset path with ``storage_url=s3://bucket``: images land in the bucket and links are presigned by it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest

from tests.datasets.helpers import DATASETS, all_images, new_dataset_from, tree_members, yolo_tree, zip_members
from tests.fixtures.app import make_settings
from tests.fixtures.assertions import ok
from tests.fixtures.factories import User
from tests.fixtures.storage import S3_REGION, S3Bucket
from yolostack.config import Settings
from yolostack.tables import image_key

LABELS: dict[str, str | None] = {
    "train/a": "0 0.5 0.5 0.2 0.2",
    "train/b": "1 0.3 0.3 0.1 0.1",
    "val/c": "0 0.4 0.4 0.2 0.2",
}


@pytest.fixture
def settings(database_url: str, tmp_path: Path, s3_bucket: S3Bucket, s3_endpoint: str) -> Settings:
    return make_settings(
        database_url,
        tmp_path / "data",
        storage_url=f"s3://{s3_bucket.name}",
        storage={"s3_endpoint_url": s3_endpoint, "s3_region": S3_REGION},
    )


class TestIngestIntoS3:
    async def test_create_upload_ingest_export_download(
        self, client: httpx.AsyncClient, alice: User, tmp_path: Path, s3_bucket: S3Bucket, settings: Settings
    ) -> None:
        root = yolo_tree(tmp_path / "cars", LABELS, ["cat", "dog"])
        archive = zip_members(tmp_path / "cars.zip", tree_members(root))

        dataset = await new_dataset_from(client, alice, "cars", archive)

        assert dataset["status"] == "ready", dataset
        assert (dataset["imageCount"], dataset["classNames"]) == (3, ["cat", "dog"])
        images = await all_images(client, alice, "alice", "cars")
        keys = {image_key(alice.account.id, image["hash"], image["ext"]) for image in images}
        stored = set(s3_bucket.object_keys())
        assert keys <= stored
        assert not [key for key in stored if key.startswith("uploads/")]  # the ingested archive is not kept
        assert not list((Path(settings.data_dir) / "objects").rglob("*.jpg"))  # nothing on local disk

        export = ok(await client.get(f"{DATASETS}/alice/cars/export", headers=alice.headers))
        assert export["downloadUrl"].startswith(s3_bucket.endpoint)
        async with httpx.AsyncClient() as outside:  # plain GETs to the presigned URLs, no key
            body = await outside.get(export["downloadUrl"])
            assert body.status_code == 200
            lines = [json.loads(line) for line in body.text.splitlines()]
            assert lines[0]["class_names"] == {"0": "cat", "1": "dog"}
            assert len(lines) == 1 + 3
            line = lines[1]
            assert line["url"].startswith(s3_bucket.endpoint)
            picture = await outside.get(line["url"])
        assert picture.status_code == 200
        assert hashlib.sha256(picture.content).hexdigest() == line["hash"]
        assert line["hash"] in {image["hash"] for image in images}

    async def test_ndjson_export_of_this_server_reingests(
        self, client: httpx.AsyncClient, alice: User, tmp_path: Path
    ) -> None:
        root = yolo_tree(tmp_path / "cars", LABELS, ["cat", "dog"])
        await new_dataset_from(client, alice, "cars", zip_members(tmp_path / "cars.zip", tree_members(root)))
        export = ok(await client.get(f"{DATASETS}/alice/cars/export", headers=alice.headers))
        async with httpx.AsyncClient() as outside:
            exported = tmp_path / "cars.ndjson"
            exported.write_text((await outside.get(export["downloadUrl"])).text)

        copy = await new_dataset_from(client, alice, "copy", exported)

        assert (copy["status"], copy["imageCount"], copy["errorCount"]) == ("ready", 3, 0)
