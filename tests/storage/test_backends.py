"""Object stores: local disk and S3 (a real S3-compatible server) behave the same through one interface."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import anyio
import httpx
import pytest

from tests.fixtures.storage import S3Bucket, chunks_of, collect, s3_store, unfinished_writes
from yolostack.storage.backends import (
    CHUNK_SIZE,
    S3_PART_SIZE,
    LocalStore,
    ObjectStore,
    ObjectTooLarge,
    S3Store,
    check_key,
)

KEY = "models/alice/weights/best.pt"
DATA = bytes(range(256)) * 4 + b"tail"  # 1028 bytes, every byte value, not a power of two
LARGE = os.urandom(2 * S3_PART_SIZE + 12_345)  # more than one part of an S3 multipart upload


async def put(store: ObjectStore, key: str, data: bytes, chunk_size: int = 100) -> None:
    await store.write(key, chunks_of(data, chunk_size))


class Broken(Exception):
    """The source of a write failing midway, as a dropped connection does."""


async def breaks_after(data: bytes, chunk_size: int) -> AsyncIterator[bytes]:
    async for chunk in chunks_of(data, chunk_size):
        yield chunk
    raise Broken()


async def stalls_after(data: bytes, chunk_size: int) -> AsyncIterator[bytes]:
    """A source that sends ``data`` and then hangs, until the request is cancelled."""
    async for chunk in chunks_of(data, chunk_size):
        yield chunk
    await anyio.sleep_forever()


class TestWrite:
    async def test_round_trip_reports_size_and_digests(self, store: ObjectStore) -> None:
        stored = await store.write(KEY, chunks_of(DATA, 100))
        assert stored.key == KEY
        assert stored.size == len(DATA)
        assert stored.sha256 == hashlib.sha256(DATA).hexdigest()
        assert stored.md5 == hashlib.md5(DATA).hexdigest()
        assert await collect(store.read(KEY)) == DATA

    async def test_many_small_chunks(self, store: ObjectStore) -> None:
        data = os.urandom(300_001)
        stored = await store.write(KEY, chunks_of(data, 1_000))
        assert stored.size == len(data)
        assert stored.sha256 == hashlib.sha256(data).hexdigest()
        assert await collect(store.read(KEY)) == data

    async def test_object_larger_than_one_s3_part(self, store: ObjectStore) -> None:
        stored = await store.write(KEY, chunks_of(LARGE, 1_000_003))
        assert stored.size == len(LARGE)
        assert stored.sha256 == hashlib.sha256(LARGE).hexdigest()
        assert stored.md5 == hashlib.md5(LARGE).hexdigest()
        assert await store.size(KEY) == len(LARGE)
        assert await collect(store.read(KEY)) == LARGE
        assert unfinished_writes(store) == []

    async def test_empty_object(self, store: ObjectStore) -> None:
        stored = await store.write(KEY, chunks_of(b"", 100))
        assert stored.size == 0
        assert stored.sha256 == hashlib.sha256(b"").hexdigest()
        assert await store.size(KEY) == 0

    async def test_overwrites_an_existing_object(self, store: ObjectStore) -> None:
        await put(store, KEY, b"old bytes")
        await put(store, KEY, DATA)
        assert await collect(store.read(KEY)) == DATA

    async def test_exactly_max_bytes_is_accepted(self, store: ObjectStore) -> None:
        stored = await store.write(KEY, chunks_of(DATA, 100), max_bytes=len(DATA))
        assert stored.size == len(DATA)

    async def test_over_max_bytes_is_413_and_leaves_nothing(self, store: ObjectStore) -> None:
        with pytest.raises(ObjectTooLarge) as raised:
            await store.write(KEY, chunks_of(DATA, 100), max_bytes=len(DATA) - 1)
        assert raised.value.status_code == 413
        assert raised.value.code == "PAYLOAD_TOO_LARGE"
        assert await store.size(KEY) is None
        assert unfinished_writes(store) == []

    async def test_over_max_bytes_after_a_whole_part_leaves_nothing(self, store: ObjectStore) -> None:
        with pytest.raises(ObjectTooLarge):
            await store.write(KEY, chunks_of(LARGE, 1_000_003), max_bytes=len(LARGE) - 1)
        assert await store.size(KEY) is None
        assert unfinished_writes(store) == []

    async def test_failing_source_leaves_nothing(self, store: ObjectStore) -> None:
        with pytest.raises(Broken):
            await store.write(KEY, breaks_after(LARGE[: S3_PART_SIZE + 500], 1_000_003))
        assert await store.size(KEY) is None
        assert unfinished_writes(store) == []

    async def test_cancelled_write_leaves_nothing(self, store: ObjectStore) -> None:
        with anyio.move_on_after(1):
            await store.write(KEY, stalls_after(LARGE[: S3_PART_SIZE + 500], 1_000_003))
        assert await store.size(KEY) is None
        assert unfinished_writes(store) == []

    async def test_failed_write_keeps_the_object_it_would_replace(self, store: ObjectStore) -> None:
        await put(store, KEY, DATA)
        with pytest.raises(ObjectTooLarge):
            await store.write(KEY, chunks_of(LARGE, 1_000_003), max_bytes=len(DATA))
        assert await collect(store.read(KEY)) == DATA
        assert unfinished_writes(store) == []

    @pytest.mark.parametrize("key", ["../x", "/abs", "a//b", "a\\b"])
    async def test_refuses_a_key_that_could_escape(self, store: ObjectStore, key: str) -> None:
        with pytest.raises(ValueError, match="invalid storage key"):
            await put(store, key, DATA)
        assert unfinished_writes(store) == []


class TestRead:
    async def test_inclusive_range(self, store: ObjectStore) -> None:
        await put(store, KEY, DATA)
        assert await collect(store.read(KEY, 10, 19)) == DATA[10:20]

    async def test_open_ended_range(self, store: ObjectStore) -> None:
        await put(store, KEY, DATA)
        assert await collect(store.read(KEY, 1000)) == DATA[1000:]

    async def test_single_byte(self, store: ObjectStore) -> None:
        await put(store, KEY, DATA)
        assert await collect(store.read(KEY, 7, 7)) == DATA[7:8]

    async def test_last_byte(self, store: ObjectStore) -> None:
        await put(store, KEY, DATA)
        last = len(DATA) - 1
        assert await collect(store.read(KEY, last, last)) == DATA[-1:]

    async def test_range_across_read_chunks(self, store: ObjectStore) -> None:
        await store.write(KEY, chunks_of(LARGE, 1_000_003))
        start, end = CHUNK_SIZE - 10, 3 * CHUNK_SIZE + 10
        assert await collect(store.read(KEY, start, end)) == LARGE[start : end + 1]

    async def test_empty_object(self, store: ObjectStore) -> None:
        await put(store, KEY, b"")
        assert await collect(store.read(KEY)) == b""


class TestSize:
    async def test_existing_object(self, store: ObjectStore) -> None:
        await put(store, KEY, DATA)
        assert await store.size(KEY) == len(DATA)

    async def test_missing_key_is_none(self, store: ObjectStore) -> None:
        assert await store.size("models/nobody/missing.pt") is None


class TestDelete:
    async def test_object_is_gone(self, store: ObjectStore) -> None:
        await put(store, KEY, DATA)
        await store.delete(KEY)
        assert await store.size(KEY) is None

    async def test_missing_key_is_fine(self, store: ObjectStore) -> None:
        await store.delete("models/nobody/missing.pt")
        assert await store.size("models/nobody/missing.pt") is None

    async def test_leaves_other_objects(self, store: ObjectStore) -> None:
        await put(store, KEY, DATA)
        await put(store, "models/alice/weights/last.pt", b"other")
        await store.delete(KEY)
        assert await store.size("models/alice/weights/last.pt") == len(b"other")


class TestMove:
    async def test_target_has_the_bytes_and_source_is_gone(self, store: ObjectStore) -> None:
        await put(store, "uploads/alice/upload_1/best.pt", DATA)
        await store.move("uploads/alice/upload_1/best.pt", KEY)
        assert await collect(store.read(KEY)) == DATA
        assert await store.size("uploads/alice/upload_1/best.pt") is None

    async def test_replaces_an_existing_target(self, store: ObjectStore) -> None:
        await put(store, KEY, b"old bytes")
        await put(store, "uploads/alice/upload_1/best.pt", DATA)
        await store.move("uploads/alice/upload_1/best.pt", KEY)
        assert await collect(store.read(KEY)) == DATA


class TestPutFile:
    async def test_stores_the_whole_file(self, store: ObjectStore, tmp_path: Path) -> None:
        source = tmp_path / "best.pt"
        source.write_bytes(DATA)
        await store.put_file(KEY, source)
        assert await store.size(KEY) == len(DATA)
        assert await collect(store.read(KEY)) == DATA
        assert unfinished_writes(store) == []

    async def test_missing_source_leaves_nothing(self, store: ObjectStore, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError):
            await store.put_file(KEY, tmp_path / "nothing-here.pt")
        assert await store.size(KEY) is None
        assert unfinished_writes(store) == []


class TestCheckKey:
    @pytest.mark.parametrize("key", ["a/b/best.pt", "best.pt", "a/..b/c.pt", "datasets/x/coco 8.zip"])
    def test_accepts_relative_paths(self, key: str) -> None:
        assert check_key(key) == key

    @pytest.mark.parametrize(
        "key", ["", "../x", "a/../../x", "a/..", "/abs", "a//b", "a/./b", "./a", "a/", "a\\b", "..\\x"]
    )
    def test_refuses_keys_that_escape_or_alias(self, key: str) -> None:
        with pytest.raises(ValueError, match="invalid storage key"):
            check_key(key)


class TestPresignedGet:
    def test_local_store_has_none(self, tmp_path: Path) -> None:
        assert LocalStore(tmp_path / "objects").presigned_get(KEY, 60) is None

    async def test_s3_url_serves_the_bytes_without_credentials(self, s3_bucket: S3Bucket) -> None:
        store = s3_store(s3_bucket)
        await put(store, KEY, DATA)
        url = store.presigned_get(KEY, 300)
        assert url is not None
        response = httpx.get(url, headers={"Accept-Encoding": "identity"})
        assert response.status_code == 200
        assert response.content == DATA
        assert int(response.headers["Content-Length"]) == len(DATA)

    async def test_s3_url_ends_with_the_file_name(self, s3_bucket: S3Bucket) -> None:
        store = s3_store(s3_bucket)
        await put(store, KEY, DATA)
        url = store.presigned_get(KEY, 300)
        assert url is not None
        assert PurePosixPath(urlsplit(url).path).name == "best.pt"

    async def test_s3_url_honours_a_resuming_range(self, s3_bucket: S3Bucket) -> None:
        store = s3_store(s3_bucket)
        await put(store, KEY, DATA)
        url = store.presigned_get(KEY, 300)
        assert url is not None
        response = httpx.get(url, headers={"Accept-Encoding": "identity", "Range": "bytes=1000-"})
        assert response.status_code == 206
        assert response.content == DATA[1000:]


class TestS3Store:
    async def test_large_object_is_a_multipart_upload(self, s3_bucket: S3Bucket) -> None:
        await s3_store(s3_bucket).write(KEY, chunks_of(LARGE, 1_000_003))
        etag = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=KEY)["ETag"]
        # A multipart object's ETag ends in "-<number of parts>".
        _, _, parts = etag.strip('"').rpartition("-")
        assert int(parts) >= 2

    async def test_prefix_keeps_objects_under_it(self, s3_bucket: S3Bucket) -> None:
        store = s3_store(s3_bucket, prefix="tenant/files")
        await put(store, KEY, DATA)
        assert s3_bucket.object_keys() == [f"tenant/files/{KEY}"]
        assert s3_bucket.read(f"tenant/files/{KEY}") == DATA
        assert await store.size(KEY) == len(DATA)

    def test_from_url_takes_bucket_and_prefix(self, s3_bucket: S3Bucket) -> None:
        store = S3Store.from_url(f"s3://{s3_bucket.name}/tenant/files/", endpoint_url=s3_bucket.endpoint, region=None)
        assert (store.bucket, store.prefix) == (s3_bucket.name, "tenant/files")
