"""Datasets in the web app: the list, creating one, and an archive uploaded from the page (signed URL, PUT,
ingest) whose ingest status block polls itself to the end; only the owner gets the upload."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.fixtures.factories import User
from tests.fixtures.synthetic import make_yolo_detect, zip_dir
from tests.web.test_sign_in import signed_in
from yolostack.core.db import Database

# Page mechanics over the services: the sessions' database work has its PostgreSQL run in test_sign_in.py.
pytestmark = [pytest.mark.sqlite_only]


async def create_dataset(client: httpx.AsyncClient, csrf: str, name: str) -> httpx.Response:
    return await client.post("/datasets", data={"csrf_token": csrf, "name": name, "task": "detect"})


class TestDatasetsPage:
    async def test_create_then_listed(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        csrf = await signed_in(client, database, alice)
        created = await create_dataset(client, csrf, "Street <Scenes>")
        assert (created.status_code, created.headers["location"]) == (303, "/alice/datasets/street-scenes")
        listing = await client.get("/datasets")
        assert 'href="/alice/datasets/street-scenes">Street &lt;Scenes&gt;</a>' in listing.text
        blank = await create_dataset(client, csrf, "")
        assert blank.status_code == 422


class TestUploadFromThePage:
    async def test_upload_ingest_and_status(
        self, client: httpx.AsyncClient, database: Database, alice: User, tmp_path: Path
    ) -> None:
        csrf = await signed_in(client, database, alice)
        await create_dataset(client, csrf, "shapes")
        page = await client.get("/alice/datasets/shapes")
        assert 'data-upload="/alice/datasets/shapes/upload"' in page.text
        archive = zip_dir(make_yolo_detect(tmp_path / "src", images=5), tmp_path / "shapes.zip").read_bytes()
        headers = {"X-CSRF-Token": csrf}

        opened = await client.post(
            "/alice/datasets/shapes/upload",
            headers=headers,
            json={"filename": "shapes.zip", "totalBytes": len(archive)},
        )
        assert opened.status_code == 200, opened.text
        signed = opened.json()
        put = await client.put(urlsplit(signed["uploadUrl"]).path, content=archive)
        assert put.status_code == 200
        queued = await client.post(
            "/alice/datasets/shapes/ingest", headers=headers, json={"sessionId": signed["sessionId"]}
        )
        assert queued.status_code == 200, queued.text
        assert 'id="ingest-status"' in queued.text
        status = ""
        async with asyncio.timeout(60):
            while status not in ("completed", "failed"):
                block = await client.get("/alice/datasets/shapes/status")
                found = re.search(r'data-ingest-status="(\w+)"', block.text)
                assert found is not None, block.text
                status = found.group(1)
                await asyncio.sleep(0.2)
        assert status == "completed"
        assert "5 / 5 images" in block.text
        assert "hx-trigger" not in block.text  # an ended ingest stops polling
        assert "5 (train" in (await client.get("/alice/datasets/shapes")).text

    async def test_needs_the_csrf_token_and_ownership(
        self, client: httpx.AsyncClient, database: Database, alice: User, bob: User
    ) -> None:
        created = await client.post(
            "/api/datasets", headers=bob.headers, json={"dataset": "bobs", "name": "Bobs", "visibility": "public"}
        )
        assert created.status_code == 201
        csrf = await signed_in(client, database, alice)
        body = {"filename": "a.zip", "totalBytes": 10}
        assert (await client.post("/alice/datasets/bobs/upload", json=body)).status_code == 403
        public = await client.get("/bob/datasets/bobs")
        assert public.status_code == 200
        assert "data-upload" not in public.text
        # As the API answers: another account's public resource can be read, not changed (403).
        refused = await client.post("/bob/datasets/bobs/upload", headers={"X-CSRF-Token": csrf}, json=body)
        assert refused.status_code == 403
