"""Hostile uploads through the API: an archive that tries to escape, explode or lie fails its ingest cleanly.

The ingest's temporary work folder is moved under ``tmp_path`` so that a member escaping it would land
somewhere this test looks; every escaping member is named with a token no other file has.
"""

from __future__ import annotations

import io
import secrets
import struct
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.datasets.helpers import create_dataset, ingest, picture, tree_members, yolo_tree, zip_members
from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User
from yolostack.config import Settings

# What this checks (archive extraction and image probing) does not depend on the database.
pytestmark = pytest.mark.sqlite_only

EVIL = f"evil-{secrets.token_hex(6)}.txt"
SYSTEM_TMP = Path(tempfile.gettempdir())
REPO = Path(__file__).resolve().parents[2]
LABELS = {"train/a": "0 0.5 0.5 0.2 0.2", "train/b": "1 0.3 0.3 0.1 0.1", "val/c": "0 0.4 0.4 0.2 0.2"}
BOMB_SIDE = 20_000  # 400 MP, four times the per-image pixel limit; about 50 KB as a 1-bit PNG


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the ingest worker makes its temporary work folder for this test."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def good_members(tmp_path: Path) -> dict[str, bytes]:
    return tree_members(yolo_tree(tmp_path / "good", LABELS, ["cat", "dog"]))


def zip_slip(tmp_path: Path) -> Path:
    members = {**good_members(tmp_path), f"images/../../../../{EVIL}": b"pwned", f"../{EVIL}": b"pwned"}
    return zip_members(tmp_path / "slip.zip", members)


def absolute_member(tmp_path: Path) -> Path:
    return zip_members(tmp_path / "absolute.zip", {**good_members(tmp_path), str(tmp_path / EVIL): b"pwned"})


def tar_symlink(tmp_path: Path) -> Path:
    """A link to a folder outside, then a file written through the link."""
    target = tmp_path / "symlink.tar"
    with tarfile.open(target, "w") as archive:
        for name, data in good_members(tmp_path).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("outside")
        link.type = tarfile.SYMTYPE
        link.linkname = str(tmp_path)
        archive.addfile(link)
        evil = tarfile.TarInfo(f"outside/{EVIL}")
        evil.size = 5
        archive.addfile(evil, io.BytesIO(b"pwned"))
    return target


def zip_bomb(tmp_path: Path) -> Path:
    """64 MiB of zeros deflate to about 64 KB: past the ratio limit of 200 and over its 10 MiB floor."""
    return zip_members(tmp_path / "bomb.zip", {**good_members(tmp_path), "images/train/zeros.bin": bytes(64 << 20)})


def truncated_zip(tmp_path: Path) -> Path:
    whole = zip_members(tmp_path / "whole.zip", good_members(tmp_path)).read_bytes()
    target = tmp_path / "truncated.zip"
    target.write_bytes(whole[: len(whole) // 2])
    return target


def not_an_archive(tmp_path: Path) -> Path:
    target = tmp_path / "photo.zip"
    target.write_bytes(picture(tmp_path / "photo.png", 1).read_bytes())
    return target


HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "zip-slip": (zip_slip, "would write outside the archive folder"),
    "absolute-path": (absolute_member, "absolute paths are not allowed"),
    "tar-symlink": (tar_symlink, "links are not allowed"),
    "zip-bomb": (zip_bomb, "compression bomb"),
    "truncated-zip": (truncated_zip, "truncated or corrupt zip archive"),
    "not-an-archive": (not_an_archive, "is not a zip, tar or tar.gz archive"),
}


def escaped_files(tmp_path: Path, settings: Settings) -> list[Path]:
    """Every file named EVIL wherever an escaping member could have landed."""
    found = list(tmp_path.rglob(EVIL)) + list(Path(settings.data_dir).rglob(EVIL))
    found += list(SYSTEM_TMP.glob(EVIL)) + list(SYSTEM_TMP.glob(f"*/{EVIL}"))
    found += [path for path in (REPO / EVIL, Path.cwd() / EVIL, REPO.parent / EVIL) if path.exists()]
    return found


def png_bomb(side: int = BOMB_SIDE) -> bytes:
    """A valid, all-black 1-bit PNG of ``side`` x ``side`` pixels: tiny on disk, huge decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (side + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


class TestHostileArchive:
    @pytest.mark.parametrize("case", list(HOSTILE))
    async def test_fails_cleanly_and_the_dataset_recovers(
        self, client: httpx.AsyncClient, alice: User, tmp_path: Path, settings: Settings, scratch: Path, case: str
    ) -> None:
        build, reason = HOSTILE[case]
        dataset_id = await create_dataset(client, alice, "hostile")

        failed = await ingest(client, alice, "hostile", dataset_id, build(tmp_path))

        assert failed["status"] == "failed", failed
        assert reason in failed["processingError"]["message"]
        assert failed["processingError"]["timestamp"]
        assert failed["imageCount"] == 0
        assert escaped_files(tmp_path, settings) == []
        assert list(scratch.glob("yolostack-ingest-*")) == []  # the work folder is gone too

        good = zip_members(tmp_path / "good.zip", good_members(tmp_path))
        recovered = await ingest(client, alice, "hostile", dataset_id, good)
        assert recovered["status"] == "ready", recovered
        assert recovered["processingError"] is None
        assert recovered["imageCount"] == 3


class TestDecompressionBombImage:
    async def test_marks_only_that_image(self, client: httpx.AsyncClient, alice: User, tmp_path: Path) -> None:
        members = {
            **good_members(tmp_path),
            "images/train/bomb.png": png_bomb(),
            "labels/train/bomb.txt": b"0 0.5 0.5 0.2 0.2\n",
        }
        dataset_id = await create_dataset(client, alice, "bomb")

        dataset = await ingest(client, alice, "bomb", dataset_id, zip_members(tmp_path / "bomb.zip", members))

        assert dataset["status"] == "ready", dataset
        assert (dataset["imageCount"], dataset["errorCount"]) == (4, 1)
        errors = ok(await client.get("/api/datasets/alice/bomb/images?hasError=true", headers=alice.headers))
        (bomb,) = errors["images"]
        assert bomb["name"].endswith("bomb.png")
        assert "decompression bomb" in bomb["error"]


class TestUploadFilename:
    @pytest.mark.parametrize("filename", ["data.rar", "data.zip.exe", "photo.jpg", "labels.json", "zip"])
    async def test_non_archive_name_is_422(self, client: httpx.AsyncClient, alice: User, filename: str) -> None:
        dataset_id = await create_dataset(client, alice, "names")
        response = await client.post(
            "/api/upload/signed-url",
            headers=alice.headers,
            json={"assetType": "datasets", "assetId": dataset_id, "filename": filename, "totalBytes": 10},
        )
        assert_error(response, 422, "VALIDATION_ERROR")
