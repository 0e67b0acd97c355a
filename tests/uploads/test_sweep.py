"""``uploads.sweep``: what a killed server's writes left (partial files, S3 multipart uploads, temp dirs) goes;
what live processes are writing stays."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.fixtures.storage import S3Bucket, s3_store, unfinished_writes
from yolostack.core.processes import owner_tag
from yolostack.storage import backends
from yolostack.storage.backends import LocalStore
from yolostack.uploads.tasks import sweep_leftovers


def gone_owner() -> str:
    """The owner name of a process of this host that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    host = owner_tag().rsplit("-", 2)[0]
    return f"{host}-{process.pid}-1"


async def cut_short() -> AsyncIterator[bytes]:
    yield b"x" * 1024
    raise ConnectionError("the client went away")


class TestLocal:
    async def test_a_gone_process_leftovers_go_and_live_ones_stay(self, tmp_path: Path) -> None:
        data = tmp_path / "data"
        store = LocalStore(data / "objects")
        dead = data / "objects" / ".partial" / gone_owner()
        dead.mkdir(parents=True)
        (dead / "0123abcd").write_bytes(b"half an upload")
        live = data / "objects" / ".partial" / owner_tag() / "4567ef01"
        live.parent.mkdir(parents=True)
        live.write_bytes(b"being written")
        dead_temp = data / "tmp" / gone_owner() / "yolostack-convert-x"
        dead_temp.mkdir(parents=True)
        (data / "tmp" / owner_tag()).mkdir()

        assert await sweep_leftovers(store, data) == 2
        assert unfinished_writes(store) == ["4567ef01"]
        assert [path.name for path in (data / "tmp").iterdir()] == [owner_tag()]

    async def test_nothing_to_sweep(self, tmp_path: Path) -> None:
        assert await sweep_leftovers(LocalStore(tmp_path / "objects"), tmp_path) == 0


class TestS3:
    async def test_multipart_uploads_a_day_old_are_aborted(
        self, s3_bucket: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = s3_store(s3_bucket)
        store.client.create_multipart_upload(Bucket=store.bucket, Key="uploads/a/b/left.pt")
        # The S3 test server dates every upload 2010: an upload younger than the cutoff is one it dates later.
        with monkeypatch.context() as patched:
            patched.setattr(backends, "STALE_MULTIPART", timedelta(days=365 * 100))
            assert await store.sweep_partial_writes() == 0
        assert unfinished_writes(store) == ["uploads/a/b/left.pt"]
        assert await sweep_leftovers(store, tmp_path) == 1
        assert unfinished_writes(store) == []

    async def test_only_this_stores_prefix(self, s3_bucket: S3Bucket) -> None:
        store = s3_store(s3_bucket, prefix="mine")
        store.client.create_multipart_upload(Bucket=store.bucket, Key="theirs/x.pt")
        store.client.create_multipart_upload(Bucket=store.bucket, Key="mine/x.pt")
        assert await store.sweep_partial_writes() == 1
        listed = store.client.list_multipart_uploads(Bucket=store.bucket)
        assert [upload["Key"] for upload in listed.get("Uploads", [])] == ["theirs/x.pt"]
