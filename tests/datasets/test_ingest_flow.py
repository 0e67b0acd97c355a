"""The whole dataset path through the API: create → upload → ingest → images → NDJSON export."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User
from tests.fixtures.synthetic import CLASSES, make_yolo_detect, zip_dir


async def upload_archive(client: httpx.AsyncClient, user: User, dataset_id: str, archive: Path) -> str:
    data = archive.read_bytes()
    signed = ok(
        await client.post(
            "/api/upload/signed-url",
            headers=user.headers,
            json={"assetType": "datasets", "assetId": dataset_id, "filename": archive.name, "totalBytes": len(data)},
        )
    )
    put = await client.put(
        urlsplit(signed["uploadUrl"]).path, content=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert put.status_code == 200, put.text
    checksum = hashlib.sha256(data).hexdigest()
    ok(
        await client.post(
            "/api/upload/complete", headers=user.headers, json={"sessionId": signed["sessionId"], "checksum": checksum}
        )
    )
    return str(signed["sessionId"])


async def wait_ready(client: httpx.AsyncClient, user: User, slug: str, timeout: float = 60) -> dict[str, Any]:
    for _ in range(int(timeout * 10)):
        dataset: dict[str, Any] = ok(await client.get(f"/api/datasets/{user.username}/{slug}", headers=user.headers))[
            "dataset"
        ]
        if dataset["status"] != "processing":
            return dataset
        await asyncio.sleep(0.1)
    raise AssertionError(f"dataset still processing after {timeout} s: {dataset}")


class TestIngestYoloZip:
    async def test_images_labels_and_export(self, client: httpx.AsyncClient, alice: User, tmp_path: Path) -> None:
        created = ok(
            await client.post("/api/datasets", headers=alice.headers, json={"dataset": "shapes", "name": "Shapes"}), 201
        )
        archive = zip_dir(make_yolo_detect(tmp_path / "shapes", images=12), tmp_path / "shapes.zip")
        session_id = await upload_archive(client, alice, created["id"], archive)
        queued = ok(
            await client.post(
                "/api/datasets/alice/shapes/ingest", headers=alice.headers, json={"sessionId": session_id}
            ),
            202,
        )
        assert queued["status"] == "queued"
        assert queued["jobId"].startswith("job_")

        dataset = await wait_ready(client, alice, "shapes")
        assert dataset["status"] == "ready", dataset
        assert dataset["imageCount"] == 12
        assert dataset["splits"] == {"train": 9, "val": 3, "test": 0, "labeled": 12}
        assert dataset["classNames"] == CLASSES
        assert dataset["task"] == "detect"

        images = ok(
            await client.get("/api/datasets/alice/shapes/images?limit=5&includeLabels=true", headers=alice.headers)
        )
        assert len(images["images"]) == 5
        assert images["hasMore"] is True
        assert images["nextCursor"] == images["images"][-1]["id"]
        first = images["images"][0]
        assert (first["width"], first["height"]) == (64, 64)
        assert first["labels"][0]["classId"] in (0, 1)
        assert len(first["labels"][0]["bbox"]) == 4

        export = ok(await client.get("/api/datasets/alice/shapes/export", headers=alice.headers))
        assert export["downloadUrl"].endswith("/shapes.ndjson")
        body = await client.get(urlsplit(export["downloadUrl"]).path)
        assert body.status_code == 200
        lines = [json.loads(line) for line in body.text.splitlines()]
        assert lines[0]["type"] == "dataset"
        assert lines[0]["class_names"] == {"0": "square", "1": "circle"}
        assert len(lines) == 13
        image_line = lines[1]
        assert image_line["split"] in ("train", "val")
        assert list(image_line["annotations"]) == ["boxes"]
        picture = await client.get(urlsplit(image_line["url"]).path)
        assert picture.status_code == 200
        assert hashlib.sha256(picture.content).hexdigest() == image_line["hash"]

    async def test_ingest_without_completed_upload_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        ok(await client.post("/api/datasets", headers=alice.headers, json={"dataset": "empty", "name": "Empty"}), 201)
        response = await client.post(
            "/api/datasets/alice/empty/ingest", headers=alice.headers, json={"sessionId": "upload_nope"}
        )
        assert_error(response, 404, "NOT_FOUND")

    async def test_garbage_archive_fails_with_a_reason(
        self, client: httpx.AsyncClient, alice: User, tmp_path: Path
    ) -> None:
        created = ok(
            await client.post("/api/datasets", headers=alice.headers, json={"dataset": "junk", "name": "Junk"}), 201
        )
        archive = tmp_path / "junk.zip"
        archive.write_bytes(b"PK\x03\x04 this is not really a zip file")
        session_id = await upload_archive(client, alice, created["id"], archive)
        ok(
            await client.post("/api/datasets/alice/junk/ingest", headers=alice.headers, json={"sessionId": session_id}),
            202,
        )
        dataset = await wait_ready(client, alice, "junk")
        assert dataset["status"] == "failed"
        assert dataset["processingError"]["message"]
