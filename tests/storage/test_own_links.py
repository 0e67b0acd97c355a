"""Which URLs the server treats as its own files (NDJSON ingest follows only those)."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.storage import S3Bucket, s3_store
from yolostack.storage.backends import LocalStore, ObjectStore
from yolostack.storage.service import FileLinks
from yolostack.storage.signing import Signer

ALICE_IMAGE = "images/user_alice/ab/abcdef.jpg"
BOB_IMAGE = "images/user_bob/cd/cdef01.jpg"


def links(store: ObjectStore) -> FileLinks:
    return FileLinks(store, Signer(b"s" * 32), "http://127.0.0.1:8000", download_ttl=600, upload_ttl=600)


class TestLocalLinks:
    def test_own_signed_link_names_its_key(self, tmp_path: Path) -> None:
        files = links(LocalStore(tmp_path))
        assert files.local_key(files.download_url(BOB_IMAGE, "cdef01.jpg"), "user_alice") == BOB_IMAGE

    def test_forged_or_foreign_links_are_not_ours(self, tmp_path: Path) -> None:
        files = links(LocalStore(tmp_path))
        url = files.download_url(ALICE_IMAGE, "abcdef.jpg")
        assert files.local_key(url.replace("/abcdef.jpg", "/other.jpg"), "user_alice") is None
        assert files.local_key(url[:40] + "x" + url[41:], "user_alice") is None
        assert files.local_key("http://example.com/files/x/abcdef.jpg", "user_alice") is None


class TestS3Links:
    def test_presigned_link_into_own_images_is_followed(self, s3_bucket: S3Bucket) -> None:
        files = links(s3_store(s3_bucket, prefix="pre"))
        assert files.local_key(files.download_url(ALICE_IMAGE, "abcdef.jpg"), "user_alice") == ALICE_IMAGE

    def test_another_accounts_images_are_not(self, s3_bucket: S3Bucket) -> None:
        files = links(s3_store(s3_bucket, prefix="pre"))
        assert files.local_key(files.download_url(BOB_IMAGE, "cdef01.jpg"), "user_alice") is None

    def test_other_buckets_and_hosts_are_not(self, s3_bucket: S3Bucket) -> None:
        files = links(s3_store(s3_bucket, prefix="pre"))
        url = files.download_url(ALICE_IMAGE, "abcdef.jpg")
        assert files.local_key(url.replace(f"/{s3_bucket.name}/", "/elsewhere/"), "user_alice") is None
        assert files.local_key(url.replace("127.0.0.1", "localhost"), "user_alice") is None
