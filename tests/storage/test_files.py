"""``GET /files/{token}/{filename}``: signed download links, as ``ultralytics`` fetches them (clients.md §2.4).

No key, ``Accept-Encoding: identity``, an exact ``Content-Length``, ``Range: bytes=N-`` on a resumed retry,
and the local file name taken from the URL's last path segment.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from tests.fixtures.app import make_settings
from tests.fixtures.assertions import assert_error
from tests.fixtures.storage import S3Bucket, chunks_of
from yolostack.config import Settings
from yolostack.storage.backends import S3Store
from yolostack.storage.service import FileLinks

# What this checks (signed links and the stores) does not depend on the database.
pytestmark = pytest.mark.sqlite_only

KEY = "models/alice/project/model/best.pt"
NAME = "best.pt"
DATA = os.urandom(3000)
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
# What ultralytics' safe_download sends: no key, no compression.
DOWNLOAD_HEADERS = {"Accept-Encoding": "identity"}


@pytest.fixture
def links(app: FastAPI) -> FileLinks:
    file_links: FileLinks = app.state.file_links
    return file_links


@pytest.fixture
async def url(links: FileLinks) -> str:
    """A fresh download link to ``DATA`` stored at ``KEY``."""
    await links.store.write(KEY, chunks_of(DATA, 1000))
    return links.download_url(KEY, NAME)


def path_of(url: str) -> str:
    """The served path of an absolute link, for the in-process client."""
    return urlsplit(url).path


def token_of(url: str) -> str:
    """The signed token: the segment between ``/files/`` and the file name."""
    return path_of(url).split("/")[2]


async def download(client: httpx.AsyncClient, url: str, **headers: str) -> httpx.Response:
    return await client.get(path_of(url), headers={**DOWNLOAD_HEADERS, **headers})


class TestDownloadUrl:
    def test_is_absolute_on_the_public_origin(self, url: str, settings: Settings) -> None:
        assert url.startswith(f"{settings.base_url}/files/")

    def test_last_segment_is_the_file_name(self, url: str) -> None:
        assert PurePosixPath(urlsplit(url).path).name == NAME
        assert urlsplit(url).query == ""

    async def test_name_with_a_space_is_quoted(self, links: FileLinks, client: httpx.AsyncClient) -> None:
        await links.store.write("models/alice/my weights.pt", chunks_of(DATA, 1000))
        url = links.download_url("models/alice/my weights.pt", "my weights.pt")
        assert url.endswith("/my%20weights.pt")
        assert unquote(PurePosixPath(urlsplit(url).path).name) == "my weights.pt"
        response = await download(client, url)
        assert response.status_code == 200
        assert response.content == DATA


class TestDownloadFile:
    async def test_needs_no_key(self, client: httpx.AsyncClient, url: str) -> None:
        response = await download(client, url)
        assert response.status_code == 200, response.text
        assert response.content == DATA

    async def test_exact_content_length(self, client: httpx.AsyncClient, url: str) -> None:
        response = await download(client, url)
        assert response.headers["Content-Length"] == str(len(DATA))
        assert "Content-Encoding" not in response.headers

    async def test_advertises_ranges(self, client: httpx.AsyncClient, url: str) -> None:
        response = await download(client, url)
        assert response.headers["Accept-Ranges"] == "bytes"

    async def test_large_file_arrives_whole(
        self, client: httpx.AsyncClient, links: FileLinks, settings: Settings
    ) -> None:
        data = os.urandom(3 * 1024 * 1024 + 17)
        await links.store.write("models/alice/large.pt", chunks_of(data, 65_536))
        response = await download(client, links.download_url("models/alice/large.pt", "large.pt"))
        assert response.headers["Content-Length"] == str(len(data))
        assert hashlib.sha256(response.content).hexdigest() == hashlib.sha256(data).hexdigest()

    async def test_is_not_rate_limited(self, client: httpx.AsyncClient, url: str) -> None:
        response = await download(client, url)
        assert response.status_code == 200
        assert not [name for name in RATE_HEADERS if name in response.headers]

    async def test_head_has_length_and_no_body(self, client: httpx.AsyncClient, url: str) -> None:
        response = await client.head(path_of(url), headers=DOWNLOAD_HEADERS)
        assert response.status_code == 200
        assert response.headers["Content-Length"] == str(len(DATA))
        assert response.content == b""

    async def test_zero_lifetime_is_already_expired(
        self, client: httpx.AsyncClient, links: FileLinks, url: str
    ) -> None:
        # 0 means "expires now", not "the default lifetime".
        expired = links.download_url(KEY, NAME, expires_in=0)
        assert_error(await download(client, expired), 403, "FORBIDDEN")

    async def test_expired_link_is_403(self, client: httpx.AsyncClient, links: FileLinks, url: str) -> None:
        expired = links.download_url(KEY, NAME, expires_in=-1)
        assert_error(await download(client, expired), 403, "FORBIDDEN")

    async def test_tampered_token_is_403(self, client: httpx.AsyncClient, url: str) -> None:
        token = token_of(url)
        flipped = "0" if token[-1] != "0" else "1"
        assert_error(await download(client, url.replace(token, token[:-1] + flipped)), 403, "FORBIDDEN")

    async def test_link_to_another_key_cannot_be_forged(
        self, client: httpx.AsyncClient, links: FileLinks, url: str
    ) -> None:
        other_payload, _, _ = token_of(links.download_url("models/bob/best.pt", NAME)).partition(".")
        _, _, signature = token_of(url).partition(".")
        forged = f"/files/{other_payload}.{signature}/{NAME}"
        assert_error(await client.get(forged, headers=DOWNLOAD_HEADERS), 403, "FORBIDDEN")

    async def test_other_file_name_in_the_path_is_404(self, client: httpx.AsyncClient, url: str) -> None:
        renamed = url.removesuffix(NAME) + "last.pt"
        assert_error(await download(client, renamed), 404, "NOT_FOUND")

    async def test_deleted_object_is_404(self, client: httpx.AsyncClient, links: FileLinks, url: str) -> None:
        await links.store.delete(KEY)
        assert_error(await download(client, url), 404, "NOT_FOUND")


class TestDownloadRange:
    async def test_inclusive_range_is_206(self, client: httpx.AsyncClient, url: str) -> None:
        response = await download(client, url, Range="bytes=10-19")
        assert response.status_code == 206
        assert response.headers["Content-Range"] == f"bytes 10-19/{len(DATA)}"
        assert response.headers["Content-Length"] == "10"
        assert response.content == DATA[10:20]

    async def test_resume_from_an_offset(self, client: httpx.AsyncClient, url: str) -> None:
        response = await download(client, url, Range="bytes=1000-")
        assert response.status_code == 206
        assert response.headers["Content-Range"] == f"bytes 1000-{len(DATA) - 1}/{len(DATA)}"
        assert response.headers["Content-Length"] == str(len(DATA) - 1000)
        assert response.content == DATA[1000:]

    async def test_suffix_range(self, client: httpx.AsyncClient, url: str) -> None:
        response = await download(client, url, Range="bytes=-5")
        assert response.status_code == 206
        assert response.headers["Content-Range"] == f"bytes {len(DATA) - 5}-{len(DATA) - 1}/{len(DATA)}"
        assert response.content == DATA[-5:]

    async def test_end_past_the_size_is_clamped(self, client: httpx.AsyncClient, url: str) -> None:
        response = await download(client, url, Range="bytes=2990-99999")
        assert response.status_code == 206
        assert response.headers["Content-Range"] == f"bytes 2990-{len(DATA) - 1}/{len(DATA)}"
        assert response.content == DATA[2990:]

    async def test_start_past_the_size_is_416(self, client: httpx.AsyncClient, url: str) -> None:
        response = await download(client, url, Range="bytes=100000-")
        assert_error(response, 416, "RANGE_NOT_SATISFIABLE")
        assert response.headers["Content-Range"] == f"bytes */{len(DATA)}"

    async def test_backwards_range_is_ignored(self, client: httpx.AsyncClient, url: str) -> None:
        response = await download(client, url, Range="bytes=20-10")
        assert response.status_code == 200
        assert response.content == DATA

    async def test_empty_suffix_is_416(self, client: httpx.AsyncClient, url: str) -> None:
        response = await download(client, url, Range="bytes=-0")
        assert_error(response, 416, "RANGE_NOT_SATISFIABLE")

    async def test_malformed_range_serves_the_whole_file(self, client: httpx.AsyncClient, url: str) -> None:
        response = await download(client, url, Range="bytes=0-1,5-6")
        assert response.status_code == 200
        assert response.content == DATA


class TestDownloadFromS3:
    """With ``storage_url=s3://…`` the links are the store's own presigned URLs, served by the store."""

    @pytest.fixture
    def settings(self, database_url: str, tmp_path: Path, s3_bucket: S3Bucket) -> Settings:
        return make_settings(
            database_url,
            tmp_path / "data",
            storage_url=f"s3://{s3_bucket.name}/files",
            storage={"s3_endpoint_url": s3_bucket.endpoint, "s3_region": "us-east-1"},
        )

    async def test_app_stores_in_the_bucket(self, links: FileLinks, s3_bucket: S3Bucket) -> None:
        assert isinstance(links.store, S3Store)
        await links.store.write(KEY, chunks_of(DATA, 1000))
        assert s3_bucket.read(f"files/{KEY}") == DATA

    async def test_presigned_link_needs_no_key(self, url: str, s3_bucket: S3Bucket) -> None:
        assert url.startswith(s3_bucket.endpoint)
        response = httpx.get(url, headers=DOWNLOAD_HEADERS)
        assert response.status_code == 200
        assert response.headers["Content-Length"] == str(len(DATA))
        assert response.content == DATA

    def test_presigned_link_ends_with_the_file_name(self, url: str) -> None:
        assert PurePosixPath(urlsplit(url).path).name == NAME
