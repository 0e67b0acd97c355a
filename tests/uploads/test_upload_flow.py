"""The signed-URL upload flow (clients.md §1.5): ``POST /api/upload/signed-url`` → ``PUT`` raw bytes with no
key → ``POST /api/upload/complete``, here with a model as the asset."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from tests.fixtures.activity_log import activity_events
from tests.fixtures.app import make_settings
from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User, add_key, create_model
from tests.fixtures.storage import S3Bucket, collect
from tests.fixtures.trash import create_project, trash_model
from yolostack.config import Settings
from yolostack.core.db import Database
from yolostack.core.timeutil import utcnow
from yolostack.storage.service import FileLinks
from yolostack.tables import UploadSession

SIGNED_URL = "/api/upload/signed-url"
COMPLETE = "/api/upload/complete"
NAME = "best.pt"
DATA = os.urandom(5000)
SHA256 = hashlib.sha256(DATA).hexdigest()
MD5 = hashlib.md5(DATA).hexdigest()
OCTET_STREAM = {"Content-Type": "application/octet-stream"}


@pytest.fixture
async def model_id(client: httpx.AsyncClient, database: Database, alice: User) -> str:
    """Alice's model, in a project created through the API: the asset the weights are uploaded to."""
    project_id = await create_project(client, alice, "uploads")
    return await create_model(database, alice, project_id, "weights")


@pytest.fixture
def links(app: FastAPI) -> FileLinks:
    file_links: FileLinks = app.state.file_links
    return file_links


def request_body(asset_id: str, **overrides: Any) -> dict[str, Any]:
    """What the SDK sends to open an upload."""
    return {
        "assetType": "models",
        "assetId": asset_id,
        "filename": NAME,
        "contentType": "application/octet-stream",
        "totalBytes": len(DATA),
        **overrides,
    }


async def open_upload(client: httpx.AsyncClient, user: User, asset_id: str, **overrides: Any) -> dict[str, Any]:
    return ok(await client.post(SIGNED_URL, json=request_body(asset_id, **overrides), headers=user.headers))


def path_of(url: str) -> str:
    """The served path of an absolute upload URL, for the in-process client."""
    return urlsplit(url).path


async def put_bytes(client: httpx.AsyncClient, opened: dict[str, Any], data: bytes = DATA) -> httpx.Response:
    """The PUT as the SDK sends it: raw bytes, the returned headers, no key."""
    return await client.put(path_of(opened["uploadUrl"]), content=data, headers={**OCTET_STREAM, **opened["headers"]})


async def complete(client: httpx.AsyncClient, user: User, session_id: str, **fields: str) -> httpx.Response:
    return await client.post(COMPLETE, json={"sessionId": session_id, **fields}, headers=user.headers)


async def uploaded(client: httpx.AsyncClient, user: User, asset_id: str, data: bytes = DATA) -> str:
    """Open a session and PUT ``data``; returns the session id."""
    opened = await open_upload(client, user, asset_id, totalBytes=len(data))
    assert (await put_bytes(client, opened, data)).status_code == 200
    session_id: str = opened["sessionId"]
    return session_id


async def upload_row(database: Database, session_id: str) -> UploadSession:
    async with database.sessionmaker() as session:
        row = await session.get(UploadSession, session_id)
        assert row is not None
        return row


class TestCreateSignedUrl:
    async def test_returns_session_and_put_url(
        self, client: httpx.AsyncClient, alice: User, model_id: str, settings: Settings
    ) -> None:
        body = await open_upload(client, alice, model_id)
        assert body["sessionId"].startswith("upload_")
        assert body["uploadUrl"].startswith(f"{settings.base_url}/uploads/")
        assert body["uploadUrl"].endswith(f"/{NAME}")
        assert body["headers"] == OCTET_STREAM
        assert body["expiresAt"].endswith("Z")
        assert body["data"]["sessionId"] == body["sessionId"]

    async def test_without_total_bytes(self, client: httpx.AsyncClient, alice: User, model_id: str) -> None:
        body = ok(await client.post(SIGNED_URL, json=request_body(model_id, totalBytes=None), headers=alice.headers))
        assert body["sessionId"].startswith("upload_")

    async def test_unknown_model_is_404(self, client: httpx.AsyncClient, alice: User, model_id: str) -> None:
        response = await client.post(SIGNED_URL, json=request_body("model_missing"), headers=alice.headers)
        assert_error(response, 404, "NOT_FOUND")

    async def test_other_accounts_model_is_404(self, client: httpx.AsyncClient, bob: User, model_id: str) -> None:
        response = await client.post(SIGNED_URL, json=request_body(model_id), headers=bob.headers)
        assert_error(response, 404, "NOT_FOUND")

    async def test_trashed_model_is_404(
        self, client: httpx.AsyncClient, database: Database, alice: User, model_id: str
    ) -> None:
        await trash_model(database, alice, model_id)
        response = await client.post(SIGNED_URL, json=request_body(model_id), headers=alice.headers)
        assert_error(response, 404, "NOT_FOUND")

    async def test_key_without_models_scope_is_403(
        self, client: httpx.AsyncClient, database: Database, alice: User, model_id: str
    ) -> None:
        key = await add_key(database, alice, scopes=["datasets"])
        response = await client.post(SIGNED_URL, json=request_body(model_id), headers={"x-api-key": key})
        assert_error(response, 403, "FORBIDDEN")

    async def test_key_with_models_scope_is_allowed(
        self, client: httpx.AsyncClient, database: Database, alice: User, model_id: str
    ) -> None:
        key = await add_key(database, alice, scopes=["models"])
        ok(await client.post(SIGNED_URL, json=request_body(model_id), headers={"x-api-key": key}))

    @pytest.mark.parametrize("filename", ["weights/best.pt", "..", ".", "a\\best.pt", "best\x00.pt", ""])
    async def test_filename_with_a_path_is_validation_error(
        self, client: httpx.AsyncClient, alice: User, model_id: str, filename: str
    ) -> None:
        response = await client.post(SIGNED_URL, json=request_body(model_id, filename=filename), headers=alice.headers)
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_unknown_asset_type_is_validation_error(
        self, client: httpx.AsyncClient, alice: User, model_id: str
    ) -> None:
        response = await client.post(
            SIGNED_URL, json=request_body(model_id, assetType="exports"), headers=alice.headers
        )
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_negative_total_bytes_is_validation_error(
        self, client: httpx.AsyncClient, alice: User, model_id: str
    ) -> None:
        response = await client.post(SIGNED_URL, json=request_body(model_id, totalBytes=-1), headers=alice.headers)
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_missing_key_is_401(self, client: httpx.AsyncClient, model_id: str) -> None:
        assert_error(await client.post(SIGNED_URL, json=request_body(model_id)), 401, "UNAUTHORIZED")


class TestPutUpload:
    async def test_stores_the_bytes_at_the_session_key(
        self, client: httpx.AsyncClient, database: Database, links: FileLinks, alice: User, model_id: str
    ) -> None:
        opened = await open_upload(client, alice, model_id)
        body = ok(await put_bytes(client, opened))
        assert body["size"] == len(DATA)
        row = await upload_row(database, opened["sessionId"])
        assert row.storage_key.endswith(f"/{NAME}")
        assert await collect(links.store.read(row.storage_key)) == DATA

    async def test_is_not_rate_limited(self, client: httpx.AsyncClient, alice: User, model_id: str) -> None:
        response = await put_bytes(client, await open_upload(client, alice, model_id))
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response.headers

    async def test_retried_put_replaces_the_bytes(
        self, client: httpx.AsyncClient, database: Database, links: FileLinks, alice: User, model_id: str
    ) -> None:
        opened = await open_upload(client, alice, model_id)
        ok(await put_bytes(client, opened, DATA[::-1]))
        ok(await put_bytes(client, opened))
        row = await upload_row(database, opened["sessionId"])
        assert await collect(links.store.read(row.storage_key)) == DATA

    async def test_more_than_total_bytes_is_413_and_stores_nothing(
        self, client: httpx.AsyncClient, database: Database, links: FileLinks, alice: User, model_id: str
    ) -> None:
        opened = await open_upload(client, alice, model_id)
        assert_error(await put_bytes(client, opened, DATA + b"x"), 413, "PAYLOAD_TOO_LARGE")
        row = await upload_row(database, opened["sessionId"])
        assert await links.store.size(row.storage_key) is None
        assert row.size is None

    async def test_tampered_token_is_403(self, client: httpx.AsyncClient, alice: User, model_id: str) -> None:
        opened = await open_upload(client, alice, model_id)
        token = path_of(opened["uploadUrl"]).split("/")[2]
        flipped = "0" if token[-1] != "0" else "1"
        response = await client.put(f"/uploads/{token[:-1]}{flipped}/{NAME}", content=DATA, headers=OCTET_STREAM)
        assert_error(response, 403, "FORBIDDEN")

    async def test_expired_token_is_403(
        self, client: httpx.AsyncClient, links: FileLinks, alice: User, model_id: str
    ) -> None:
        opened = await open_upload(client, alice, model_id)
        expired = FileLinks(links.store, links.signer, links.base_url, download_ttl=60, upload_ttl=-1)
        response = await client.put(
            path_of(expired.upload_url(opened["sessionId"], NAME)), content=DATA, headers=OCTET_STREAM
        )
        assert_error(response, 403, "FORBIDDEN")

    async def test_download_token_is_403(
        self, client: httpx.AsyncClient, links: FileLinks, alice: User, model_id: str
    ) -> None:
        opened = await open_upload(client, alice, model_id)
        # A download link's token, with the session id as its key: signed, but for another purpose.
        token = path_of(links.download_url(opened["sessionId"], NAME)).split("/")[2]
        response = await client.put(f"/uploads/{token}/{NAME}", content=DATA, headers=OCTET_STREAM)
        assert_error(response, 403, "FORBIDDEN")

    async def test_other_filename_in_the_path_is_404(
        self, client: httpx.AsyncClient, alice: User, model_id: str
    ) -> None:
        opened = await open_upload(client, alice, model_id)
        renamed = path_of(opened["uploadUrl"]).removesuffix(NAME) + "last.pt"
        assert_error(await client.put(renamed, content=DATA, headers=OCTET_STREAM), 404, "NOT_FOUND")

    async def test_expired_session_is_404(
        self, client: httpx.AsyncClient, database: Database, alice: User, model_id: str
    ) -> None:
        opened = await open_upload(client, alice, model_id)
        async with database.engine.begin() as connection:
            await connection.execute(
                update(UploadSession)
                .where(UploadSession.id == opened["sessionId"])
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        assert_error(await put_bytes(client, opened), 404, "NOT_FOUND")

    async def test_completed_session_is_404(self, client: httpx.AsyncClient, alice: User, model_id: str) -> None:
        opened = await open_upload(client, alice, model_id)
        ok(await put_bytes(client, opened))
        ok(await complete(client, alice, opened["sessionId"], checksum=SHA256))
        assert_error(await put_bytes(client, opened, DATA[::-1]), 404, "NOT_FOUND")


class TestCompleteUpload:
    async def test_with_sha256_checksum(self, client: httpx.AsyncClient, alice: User, model_id: str) -> None:
        session_id = await uploaded(client, alice, model_id)
        body = ok(await complete(client, alice, session_id, checksum=SHA256))
        assert body["success"] is True
        assert body["file"]["size"] == len(DATA)
        assert body["file"]["contentType"] == "application/octet-stream"
        assert body["file"]["sha256"] == SHA256

    async def test_with_prefixed_checksum(self, client: httpx.AsyncClient, alice: User, model_id: str) -> None:
        session_id = await uploaded(client, alice, model_id)
        ok(await complete(client, alice, session_id, checksum=f"sha256:{SHA256.upper()}"))

    async def test_with_md5(self, client: httpx.AsyncClient, alice: User, model_id: str) -> None:
        session_id = await uploaded(client, alice, model_id)
        body = ok(await complete(client, alice, session_id, md5=MD5))
        assert body["file"]["size"] == len(DATA)

    async def test_without_digests_checks_the_size(self, client: httpx.AsyncClient, alice: User, model_id: str) -> None:
        session_id = await uploaded(client, alice, model_id)
        assert ok(await complete(client, alice, session_id))["file"]["size"] == len(DATA)

    async def test_records_an_activity_event(self, client: httpx.AsyncClient, alice: User, model_id: str) -> None:
        session_id = await uploaded(client, alice, model_id)
        ok(await complete(client, alice, session_id, checksum=SHA256))
        (event,) = await activity_events(client, alice, "upload.completed")
        assert event["resourceType"] == "model"
        assert event["resourceId"] == model_id
        assert event["resourceName"] == NAME

    async def test_is_idempotent(self, client: httpx.AsyncClient, alice: User, model_id: str) -> None:
        session_id = await uploaded(client, alice, model_id)
        first = ok(await complete(client, alice, session_id, checksum=SHA256))
        again = ok(await complete(client, alice, session_id, checksum=SHA256))
        assert again["file"] == first["file"]
        assert len(await activity_events(client, alice, "upload.completed")) == 1

    async def test_wrong_checksum_is_422(self, client: httpx.AsyncClient, alice: User, model_id: str) -> None:
        session_id = await uploaded(client, alice, model_id)
        wrong = hashlib.sha256(b"other").hexdigest()
        assert_error(await complete(client, alice, session_id, checksum=wrong), 422, "VALIDATION_ERROR")
        assert await activity_events(client, alice, "upload.completed") == []

    async def test_wrong_md5_is_400(self, client: httpx.AsyncClient, alice: User, model_id: str) -> None:
        session_id = await uploaded(client, alice, model_id)
        wrong = hashlib.md5(b"other").hexdigest()
        assert_error(await complete(client, alice, session_id, md5=wrong), 422, "VALIDATION_ERROR")

    async def test_size_other_than_total_bytes_is_422(
        self, client: httpx.AsyncClient, alice: User, model_id: str
    ) -> None:
        opened = await open_upload(client, alice, model_id)
        ok(await put_bytes(client, opened, DATA[:-1]))
        response = await complete(client, alice, opened["sessionId"], checksum=hashlib.sha256(DATA[:-1]).hexdigest())
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_before_put_is_409(self, client: httpx.AsyncClient, alice: User, model_id: str) -> None:
        opened = await open_upload(client, alice, model_id)
        assert_error(await complete(client, alice, opened["sessionId"], checksum=SHA256), 409, "CONFLICT")

    async def test_unknown_session_is_404(self, client: httpx.AsyncClient, alice: User, model_id: str) -> None:
        assert_error(await complete(client, alice, "upload_missing"), 404, "NOT_FOUND")

    async def test_other_accounts_session_is_404(
        self, client: httpx.AsyncClient, alice: User, bob: User, model_id: str
    ) -> None:
        session_id = await uploaded(client, alice, model_id)
        assert_error(await complete(client, bob, session_id, checksum=SHA256), 404, "NOT_FOUND")

    async def test_key_without_models_scope_is_403(
        self, client: httpx.AsyncClient, database: Database, alice: User, model_id: str
    ) -> None:
        session_id = await uploaded(client, alice, model_id)
        key = await add_key(database, alice, scopes=["datasets"])
        response = await client.post(COMPLETE, json={"sessionId": session_id}, headers={"x-api-key": key})
        assert_error(response, 403, "FORBIDDEN")

    async def test_missing_key_is_401(self, client: httpx.AsyncClient, alice: User, model_id: str) -> None:
        session_id = await uploaded(client, alice, model_id)
        assert_error(await client.post(COMPLETE, json={"sessionId": session_id}), 401, "UNAUTHORIZED")


class TestUploadLimit:
    """``storage.max_upload_bytes`` holds when the session opens and again while the bytes stream in."""

    LIMIT = 1000

    @pytest.fixture
    def settings(self, database_url: str, tmp_path: Path) -> Settings:
        return make_settings(database_url, tmp_path / "data", storage={"max_upload_bytes": self.LIMIT})

    async def test_total_bytes_above_the_limit_is_413(
        self, client: httpx.AsyncClient, alice: User, model_id: str
    ) -> None:
        response = await client.post(
            SIGNED_URL, json=request_body(model_id, totalBytes=self.LIMIT + 1), headers=alice.headers
        )
        assert_error(response, 413, "PAYLOAD_TOO_LARGE")

    async def test_total_bytes_at_the_limit_is_allowed(
        self, client: httpx.AsyncClient, alice: User, model_id: str
    ) -> None:
        await open_upload(client, alice, model_id, totalBytes=self.LIMIT)

    async def test_undeclared_size_above_the_limit_is_413_at_put(
        self, client: httpx.AsyncClient, database: Database, links: FileLinks, alice: User, model_id: str
    ) -> None:
        opened = await open_upload(client, alice, model_id, totalBytes=None)
        assert_error(await put_bytes(client, opened, DATA[: self.LIMIT + 1]), 413, "PAYLOAD_TOO_LARGE")
        row = await upload_row(database, opened["sessionId"])
        assert await links.store.size(row.storage_key) is None


class TestUploadToS3:
    """With ``storage_url=s3://bucket`` the same flow lands the bytes in the bucket."""

    @pytest.fixture
    def settings(self, database_url: str, tmp_path: Path, s3_bucket: S3Bucket) -> Settings:
        return make_settings(
            database_url,
            tmp_path / "data",
            storage_url=f"s3://{s3_bucket.name}",
            storage={"s3_endpoint_url": s3_bucket.endpoint, "s3_region": "us-east-1"},
        )

    async def test_completed_upload_is_in_the_bucket(
        self, client: httpx.AsyncClient, database: Database, s3_bucket: S3Bucket, alice: User, model_id: str
    ) -> None:
        session_id = await uploaded(client, alice, model_id)
        ok(await complete(client, alice, session_id, checksum=SHA256, md5=MD5))
        # Completing a model upload attaches it: the checkpoint moves to the model's weights key.
        row = await upload_row(database, session_id)
        weights = f"models/{alice.account.id}/{model_id}/weights/{row.filename}"
        assert s3_bucket.object_keys() == [weights]
        assert s3_bucket.read(weights) == DATA

    async def test_too_large_put_leaves_nothing_in_the_bucket(
        self, client: httpx.AsyncClient, s3_bucket: S3Bucket, alice: User, model_id: str
    ) -> None:
        opened = await open_upload(client, alice, model_id)
        assert_error(await put_bytes(client, opened, DATA + b"x"), 413, "PAYLOAD_TOO_LARGE")
        assert s3_bucket.object_keys() == []
        assert s3_bucket.multipart_uploads() == []
