"""Request bodies are bounded while they stream (413 ``PAYLOAD_TOO_LARGE``), by a declared length at the first read
and by a chunked body at the chunk that passes the cap; uploads that declare their own larger cap keep working."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.fixtures.app import make_settings
from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User, create_model
from tests.fixtures.trash import create_project
from yolostack.config import Settings
from yolostack.core.db import Database

JSON_CAP = 64 * 1024
MAX_IMAGE = 256 * 1024
FORM_CAP = MAX_IMAGE + 1024**2  # inference.max_image_bytes (> max_video_bytes here) + 1 MiB
CHUNK = 16 * 1024
JSON = {"content-type": "application/json"}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        database_url,
        tmp_path / "data",
        limits={"json_body_bytes": JSON_CAP},
        inference={"max_image_bytes": MAX_IMAGE, "max_video_bytes": 128 * 1024},
    )


class Counted:
    """A chunked request body that counts how much of it the server pulled."""

    def __init__(self, total: int, head: bytes = b"", tail: bytes = b"") -> None:
        self.total, self.head, self.tail = total, head, tail
        self.pulled = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.head
        sent = len(self.head)
        while sent < self.total:
            self.pulled += CHUNK
            sent += CHUNK
            yield b" " * CHUNK
        yield self.tail


def multipart_head(boundary: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()


class TestJsonBodies:
    async def test_declared_length_over_the_cap_is_413(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.post("/api/projects", content=b"{" + b" " * JSON_CAP + b"}", headers=alice.headers)
        body = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert str(JSON_CAP) in body["error"]["message"]
        assert response.headers["x-request-id"]

    async def test_chunked_body_is_refused_while_streaming(self, client: httpx.AsyncClient, alice: User) -> None:
        body = Counted(50 * 1024**2, head=b'{"name": "', tail=b'"}')
        response = await client.post("/api/projects", content=body.chunks(), headers={**alice.headers, **JSON})
        assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert body.pulled <= JSON_CAP + CHUNK  # not one chunk past the cap was read

    async def test_hand_parsed_route_is_bounded_too(self, client: httpx.AsyncClient, alice: User) -> None:
        body = Counted(50 * 1024**2, head=b'{"modelId": "', tail=b'"}')
        response = await client.post("/api/training/start", content=body.chunks(), headers=alice.headers)
        assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert body.pulled <= JSON_CAP + CHUNK

    async def test_a_body_under_the_cap_is_read(self, client: httpx.AsyncClient, alice: User) -> None:
        description = "x" * 9_000
        body = ok(
            await client.post("/api/projects", json={"name": "p", "description": description}, headers=alice.headers),
            201,
        )
        assert body["data"]["description"] == description

    async def test_octet_stream_to_a_json_route_has_the_json_cap(self, client: httpx.AsyncClient, alice: User) -> None:
        headers = {**alice.headers, "content-type": "application/octet-stream"}
        body = Counted(50 * 1024**2)
        response = await client.post("/api/jobs/job_x/events", content=body.chunks(), headers=headers)
        assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert body.pulled <= JSON_CAP + CHUNK


class TestForms:
    async def test_chunked_predict_upload_is_refused_while_streaming(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        boundary = "x" * 16
        body = Counted(100 * 1024**2, head=multipart_head(boundary), tail=f"\r\n--{boundary}--\r\n".encode())
        headers = {**alice.headers, "content-type": f"multipart/form-data; boundary={boundary}"}
        response = await client.post("/api/models/model_x/predict", content=body.chunks(), headers=headers)
        assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert body.pulled <= FORM_CAP + CHUNK

    async def test_declared_predict_upload_over_the_cap_is_413(self, client: httpx.AsyncClient, alice: User) -> None:
        files = {"file": ("a.jpg", b"\xff" * (FORM_CAP + 1), "image/jpeg")}
        response = await client.post("/api/models/model_x/predict", files=files, headers=alice.headers)
        assert_error(response, 413, "PAYLOAD_TOO_LARGE")

    async def test_hub_route_is_bounded_too(self, client: httpx.AsyncClient, alice: User) -> None:
        boundary = "y" * 16
        body = Counted(100 * 1024**2, head=multipart_head(boundary))
        headers = {"x-api-key": alice.key, "content-type": f"multipart/form-data; boundary={boundary}"}
        response = await client.post("/v1/predict/model_x", content=body.chunks(), headers=headers)
        assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert body.pulled <= FORM_CAP + CHUNK


class TestSignedUpload:
    """The signed-URL PUT declares its own cap (storage.max_upload_bytes): bytes, never held, never JSON."""

    async def open(self, client: httpx.AsyncClient, database: Database, alice: User, size: int) -> str:
        project_id = await create_project(client, alice, "uploads")
        model_id = await create_model(database, alice, project_id, "weights")
        request = {"assetType": "models", "assetId": model_id, "filename": "best.pt", "totalBytes": size}
        opened = ok(await client.post("/api/upload/signed-url", json=request, headers=alice.headers))
        return str(urlsplit(opened["uploadUrl"]).path)

    @pytest.mark.parametrize("content_type", ["application/octet-stream", "application/json"], ids=str)
    async def test_put_past_the_json_cap_is_received(
        self, client: httpx.AsyncClient, database: Database, alice: User, content_type: str
    ) -> None:
        data = b"NaN " * (JSON_CAP // 2)  # twice the JSON cap, and JSON would refuse it
        path = await self.open(client, database, alice, len(data))
        body = ok(await client.put(path, content=data, headers={"content-type": content_type}))
        assert body["size"] == len(data)

    async def test_chunked_put_keeps_its_own_limit(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        path = await self.open(client, database, alice, 10)
        body = Counted(50 * 1024**2)
        response = await client.put(path, content=body.chunks(), headers={"content-type": "application/octet-stream"})
        assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert body.pulled <= 1024**2 + CHUNK
