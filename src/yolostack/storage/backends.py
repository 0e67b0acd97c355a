"""Where bytes live: one small interface over local disk and any S3-compatible store.

Writes stream through and become visible only when complete (a temporary file renamed into place, an
S3 multipart upload completed at the end), so a broken upload never leaves half an object behind. On disk
the temporary files are kept per process (``.partial/<owner>/``): what a killed server was writing is
swept by the next start and periodically (``sweep_partial_writes``); in S3, multipart uploads that a
killed process never completed nor aborted are aborted once a day old.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import shutil
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import anyio

from yolostack.core.errors import PayloadTooLarge
from yolostack.core.processes import owner_tag, sweep

CHUNK_SIZE = 1024 * 1024
# Partial files named the way older versions did (no owner) are removed once untouched this long.
UNOWNED_PARTIAL_SECONDS = 3600.0
# S3 says nothing of who started a multipart upload: one this old was abandoned (no upload lasts a day).
STALE_MULTIPART = timedelta(days=1)
# This process's multipart uploads under way, whichever store object writes them: a sweep never aborts them,
# whatever date the store reports for them (moto, S3's stand-in in the tests, says every upload began in 2010).
_WRITING: set[str] = set()
_starting = [0]  # writes whose upload S3 may list before it is in _WRITING
S3_PART_SIZE = 8 * 1024 * 1024  # S3 wants parts of at least 5 MiB, except the last


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str
    md5: str


class ObjectTooLarge(PayloadTooLarge):
    default_message = "Upload exceeds its size limit"


def check_key(key: str) -> str:
    """Keys are relative POSIX paths we build ourselves; refuse anything that could escape the root."""
    # Split by hand: PurePosixPath folds "a//b", "./a" and "a/" into clean paths, which disk would then
    # accept as aliases of another key while S3 keeps them as different objects.
    if "\\" in key or any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"invalid storage key {key!r}")
    return key


class _Digest:
    def __init__(self, max_bytes: int | None) -> None:
        self.size = 0
        self.max_bytes = max_bytes
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise ObjectTooLarge(f"Upload exceeds its limit of {self.max_bytes} bytes")
        self.sha256.update(chunk)
        self.md5.update(chunk)

    def result(self, key: str) -> StoredObject:
        return StoredObject(key=key, size=self.size, sha256=self.sha256.hexdigest(), md5=self.md5.hexdigest())


class ObjectStore(Protocol):
    """What every backend offers; keys are ``a/b/file.ext`` and end with the file's real name."""

    kind: str

    async def write(self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None) -> StoredObject: ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` inclusive (HTTP Range semantics), streamed."""
        ...

    async def size(self, key: str) -> int | None: ...

    async def delete(self, key: str) -> None: ...

    async def move(self, source: str, target: str) -> None: ...

    async def put_file(self, key: str, path: Path) -> None:
        """Store a local file whole (one call instead of a chunk stream: the ingest's many small images)."""
        ...

    def presigned_get(self, key: str, expires_in: int) -> str | None:
        """A URL the store itself serves, or None when the server must serve the bytes (local disk)."""
        ...

    async def sweep_partial_writes(self) -> int:
        """Remove what writes cut short by a killed process left behind; returns how many were removed."""
        ...

    def key_for_url(self, url: str) -> str | None:
        """The key a URL of this store's own points at (its presigned links), or None."""
        ...


async def iter_file(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as handle:
        while chunk := await handle.read(CHUNK_SIZE):
            yield chunk


async def download(store: ObjectStore, key: str, target: Path) -> None:
    """Copy an object to a local file (its folder created)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as handle:
        async for chunk in store.read(key):
            await asyncio.to_thread(handle.write, chunk)


class LocalStore:
    """Files under ``root``; the server signs and serves their URLs itself."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._partial = root / ".partial"

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _new_partial(self) -> Path:
        """A fresh temporary file name in this process's own folder (so a later process can sweep it)."""
        folder = self._partial / owner_tag()
        folder.mkdir(parents=True, exist_ok=True)
        return folder / secrets.token_hex(16)

    def sweep_partials(self) -> list[Path]:
        """Remove the temporary files of writes whose process is gone (a killed server's uploads)."""
        return sweep(self._partial, stale_after=UNOWNED_PARTIAL_SECONDS)

    async def sweep_partial_writes(self) -> int:
        return len(await asyncio.to_thread(self.sweep_partials))

    async def write(self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None) -> StoredObject:
        target = self.path(key)
        partial = self._new_partial()
        digest = _Digest(max_bytes)
        try:
            async with await anyio.open_file(partial, "wb") as handle:
                async for chunk in chunks:
                    digest.update(chunk)
                    await handle.write(chunk)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return digest.result(key)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` inclusive (HTTP Range semantics)."""
        remaining = None if end is None else end - start + 1
        async with await anyio.open_file(self.path(key), "rb") as handle:
            await handle.seek(start)
            while remaining is None or remaining > 0:
                chunk = await handle.read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    async def size(self, key: str) -> int | None:
        try:
            return (await anyio.Path(self.path(key)).stat()).st_size
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    async def move(self, source: str, target: str) -> None:
        destination = self.path(target)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path(source), destination)

    async def put_file(self, key: str, path: Path) -> None:
        target = self.path(key)
        partial = self._new_partial()
        try:
            await asyncio.to_thread(shutil.copyfile, path, partial)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)

    def key_for_url(self, url: str) -> str | None:
        return None

    def presigned_get(self, key: str, expires_in: int) -> str | None:
        return None


class S3Store:
    """Objects in a bucket of any S3-compatible server; downloads are presigned by the store."""

    kind = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @classmethod
    def from_url(cls, url: str, *, endpoint_url: str | None, region: str | None) -> S3Store:
        import boto3
        from botocore.config import Config

        parts = urlsplit(url)
        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )
        return cls(client, parts.netloc, parts.path)

    def object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    async def _call(self, method: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.client, method), Bucket=self.bucket, **kwargs)

    async def write(self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None) -> StoredObject:
        name = self.object_key(key)
        digest = _Digest(max_bytes)
        _starting[0] += 1
        try:
            upload = await self._call("create_multipart_upload", Key=name)
            upload_id = upload["UploadId"]
            _WRITING.add(upload_id)
        finally:
            _starting[0] -= 1
        parts: list[dict[str, Any]] = []
        buffer = bytearray()
        try:
            async for chunk in chunks:
                digest.update(chunk)
                buffer.extend(chunk)
                if len(buffer) >= S3_PART_SIZE:
                    parts.append(await self._part(name, upload_id, len(parts) + 1, bytes(buffer)))
                    buffer.clear()
            if buffer or not parts:
                parts.append(await self._part(name, upload_id, len(parts) + 1, bytes(buffer)))
            await self._call(
                "complete_multipart_upload", Key=name, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # Shielded: a cancelled request (anyio cancels every later await too) must still abort the
            # upload, or the store keeps its parts, unseen and billed, until a lifecycle rule sweeps them.
            with anyio.CancelScope(shield=True):
                await self._call("abort_multipart_upload", Key=name, UploadId=upload_id)
            raise
        finally:
            _WRITING.discard(upload_id)
        return digest.result(key)

    async def sweep_partial_writes(self) -> int:
        """Abort this store's multipart uploads started more than ``STALE_MULTIPART`` ago."""
        cutoff = datetime.now(UTC) - STALE_MULTIPART
        prefix = {"Prefix": f"{self.prefix}/"} if self.prefix else {}
        aborted = 0
        pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, **prefix)
        listed = await asyncio.to_thread(list, pages)
        if _starting[0]:
            return 0  # one of ours may be in the list unmarked yet: the next round sweeps
        for page in listed:
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < cutoff and upload["UploadId"] not in _WRITING:
                    await self._call("abort_multipart_upload", Key=upload["Key"], UploadId=upload["UploadId"])
                    aborted += 1
        return aborted

    async def _part(self, name: str, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        reply = await self._call("upload_part", Key=name, UploadId=upload_id, PartNumber=number, Body=body)
        return {"ETag": reply["ETag"], "PartNumber": number}

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        ranged: dict[str, str] = {}
        if start or end is not None:
            # Only when asked: S3 answers any Range on an empty object with 416, even "bytes=0-".
            ranged["Range"] = f"bytes={start}-{'' if end is None else end}"
        reply = await self._call("get_object", Key=self.object_key(key), **ranged)
        body = reply["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, CHUNK_SIZE):
                yield chunk
        finally:
            body.close()

    async def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            reply = await self._call("head_object", Key=self.object_key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(reply["ContentLength"])

    async def delete(self, key: str) -> None:
        await self._call("delete_object", Key=self.object_key(key))

    async def move(self, source: str, target: str) -> None:
        copy_source = {"Bucket": self.bucket, "Key": self.object_key(source)}
        # The managed copy switches to multipart above 5 GB, where a single CopyObject fails.
        await asyncio.to_thread(self.client.copy, copy_source, self.bucket, self.object_key(target))
        await self.delete(source)

    async def put_file(self, key: str, path: Path) -> None:
        # The managed transfer switches to multipart for big files and completes or aborts on its own.
        await asyncio.to_thread(self.client.upload_file, str(path), self.bucket, self.object_key(key))

    def key_for_url(self, url: str) -> str | None:
        parts = urlsplit(url)
        endpoint = str(self.client.meta.endpoint_url).rstrip("/")
        if f"{parts.scheme}://{parts.netloc}" != endpoint:
            return None
        root = f"/{self.bucket}/{self.prefix}/" if self.prefix else f"/{self.bucket}/"
        path = unquote(parts.path)
        if not path.startswith(root):
            return None
        try:
            return check_key(path.removeprefix(root))
        except ValueError:
            return None

    def presigned_get(self, key: str, expires_in: int) -> str | None:
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.object_key(key)}, ExpiresIn=expires_in
        )
        return url


def create_store(
    storage_url: str | None, data_dir: Path, *, endpoint_url: str | None, region: str | None
) -> ObjectStore:
    if storage_url:
        return S3Store.from_url(storage_url, endpoint_url=endpoint_url, region=region)
    return LocalStore(data_dir / "objects")
