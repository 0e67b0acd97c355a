"""safe_extract: hostile zip and tar archives are refused before anything escapes or explodes."""

import io
import os
import stat
import struct
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from yolostack.datasets.formats import ArchiveError, ArchiveLimits, archive_kind, safe_extract

MiB = 1024 * 1024
# Small enough that a 50 MiB bomb trips the ratio long before the member or total limits.
BOMB_LIMITS = ArchiveLimits(max_total_bytes=100 * MiB, max_member_bytes=100 * MiB, max_ratio=50, ratio_floor_bytes=MiB)


def make_zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return path


def make_tar(path: Path, members: Sequence[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:  # type: ignore[call-overload]
        for info, data in members:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def bytes_under(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class TestExtractsGoodArchives:
    def test_zip(self, tmp_path: Path) -> None:
        archive = make_zip(tmp_path / "ds.zip", {"ds/": b"", "ds/images/a.jpg": b"jpg", "ds/labels/a.txt": b"0 0.5"})
        safe_extract(archive, tmp_path / "out")
        assert files_under(tmp_path / "out") == {"ds/images/a.jpg": b"jpg", "ds/labels/a.txt": b"0 0.5"}

    @pytest.mark.parametrize("mode", ["w", "w:gz"])
    def test_tar(self, tmp_path: Path, mode: str) -> None:
        members = [(tar_member("ds", tarfile.DIRTYPE), None), (tar_member("ds/a.txt"), b"hello")]
        archive = make_tar(tmp_path / "ds.tar", members, mode)
        safe_extract(archive, tmp_path / "out")
        assert files_under(tmp_path / "out") == {"ds/a.txt": b"hello"}

    def test_kind_comes_from_magic_bytes_not_the_name(self, tmp_path: Path) -> None:
        archive = make_tar(tmp_path / "really-a-tgz.zip", [(tar_member("a.txt"), b"x")])
        assert archive_kind(archive) == "tar.gz"
        safe_extract(archive, tmp_path / "out")
        assert files_under(tmp_path / "out") == {"a.txt": b"x"}

    def test_skips_macos_debris_and_dotfiles(self, tmp_path: Path) -> None:
        members = {"__MACOSX/._a.jpg": b"junk", "ds/.DS_Store": b"junk", ".git/config": b"junk", "ds/a.jpg": b"ok"}
        safe_extract(make_zip(tmp_path / "ds.zip", members), tmp_path / "out")
        assert files_under(tmp_path / "out") == {"ds/a.jpg": b"ok"}

    def test_refuses_what_is_not_an_archive(self, tmp_path: Path) -> None:
        path = tmp_path / "notes.zip"
        path.write_bytes(b"just some text, long enough to look at" * 20)
        with pytest.raises(ArchiveError, match="not a zip, tar or tar.gz archive"):
            safe_extract(path, tmp_path / "out")


class TestRefusesEscapingPaths:
    @pytest.mark.parametrize(
        "name", ["../evil.txt", "ds/../../evil.txt", "/tmp/evil.txt", "C:/evil.txt", "..\\evil.txt"]
    )
    def test_zip_slip(self, tmp_path: Path, name: str) -> None:
        archive = make_zip(tmp_path / "slip.zip", {"ok.txt": b"ok", name: b"evil"})
        with pytest.raises(ArchiveError, match="refusing member") as refused:
            safe_extract(archive, tmp_path / "out" / "dest")
        assert repr(name) in str(refused.value)
        assert not list(tmp_path.rglob("evil.txt"))

    @pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil.txt"])
    def test_tar_slip(self, tmp_path: Path, name: str) -> None:
        archive = make_tar(tmp_path / "slip.tgz", [(tar_member(name), b"evil")])
        with pytest.raises(ArchiveError, match="refusing member"):
            safe_extract(archive, tmp_path / "out" / "dest")
        assert not list(tmp_path.rglob("evil.txt"))


class TestRefusesSpecialMembers:
    @pytest.mark.parametrize(
        ("kind", "message"),
        [
            (tarfile.SYMTYPE, "links are not allowed"),
            (tarfile.LNKTYPE, "links are not allowed"),
            (tarfile.CHRTYPE, "devices, fifos"),
            (tarfile.BLKTYPE, "devices, fifos"),
            (tarfile.FIFOTYPE, "devices, fifos"),
        ],
    )
    def test_tar(self, tmp_path: Path, kind: bytes, message: str) -> None:
        members = [(tar_member("a.txt"), b"x"), (tar_member("ds/special", kind, linkname="/etc/passwd"), None)]
        archive = make_tar(tmp_path / "special.tgz", members)
        with pytest.raises(ArchiveError, match=message) as refused:
            safe_extract(archive, tmp_path / "out")
        assert "'ds/special'" in str(refused.value)
        assert not (tmp_path / "out" / "ds" / "special").exists()

    def test_zip_symlink(self, tmp_path: Path) -> None:
        path = tmp_path / "link.zip"
        with zipfile.ZipFile(path, "w") as archive:
            info = zipfile.ZipInfo("ds/link")
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
        with pytest.raises(ArchiveError, match="'ds/link': symbolic links are not allowed"):
            safe_extract(path, tmp_path / "out")
        assert not os.path.lexists(tmp_path / "out" / "ds" / "link")

    def test_zip_with_an_unsupported_compression(self, tmp_path: Path) -> None:
        archive = make_zip(tmp_path / "bz.zip", {"a.txt": b"x" * 100}, zipfile.ZIP_BZIP2)
        with pytest.raises(ArchiveError, match="only stored or deflated"):
            safe_extract(archive, tmp_path / "out")


class TestRefusesBombs:
    def test_zip_bomb_by_ratio(self, tmp_path: Path) -> None:
        archive = make_zip(tmp_path / "bomb.zip", {"zeros.bin": bytes(50 * MiB)})
        assert archive.stat().st_size < MiB
        limits = ArchiveLimits(max_ratio=50, ratio_floor_bytes=MiB)
        with pytest.raises(ArchiveError, match="compression bomb"):
            safe_extract(archive, tmp_path / "out", limits)
        assert bytes_under(tmp_path / "out") <= max(50 * archive.stat().st_size, MiB)

    def test_zip_bomb_by_total(self, tmp_path: Path) -> None:
        archive = make_zip(tmp_path / "bomb.zip", {f"part{i}.bin": bytes(4 * MiB) for i in range(4)})
        limits = ArchiveLimits(max_total_bytes=10 * MiB, max_ratio=1e9)
        with pytest.raises(ArchiveError, match="over the 10 MiB limit"):
            safe_extract(archive, tmp_path / "out", limits)
        assert bytes_under(tmp_path / "out") <= 10 * MiB

    def test_member_over_the_size_limit(self, tmp_path: Path) -> None:
        archive = make_zip(tmp_path / "big.zip", {"big.bin": bytes(2 * MiB)})
        with pytest.raises(ArchiveError, match="'big.bin' is larger than the 1 MiB limit"):
            safe_extract(archive, tmp_path / "out", ArchiveLimits(max_member_bytes=MiB))

    def test_zip_whose_central_directory_understates_sizes(self, tmp_path: Path) -> None:
        archive = make_zip(tmp_path / "liar.zip", {"big.bin": bytes(5 * MiB)})
        data = bytearray(archive.read_bytes())
        for signature, size_offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
            at = data.index(signature) + size_offset
            struct.pack_into("<I", data, at, 1000)  # claims 1000 bytes uncompressed
        archive.write_bytes(bytes(data))
        with pytest.raises(ArchiveError):
            safe_extract(archive, tmp_path / "out", ArchiveLimits(max_member_bytes=MiB))
        assert bytes_under(tmp_path / "out") <= MiB

    def test_zip_whose_central_directory_overstates_sizes(self, tmp_path: Path) -> None:
        archive = make_zip(tmp_path / "liar.zip", {"small.bin": b"x" * 100})
        data = bytearray(archive.read_bytes())
        struct.pack_into("<I", data, data.index(b"PK\x01\x02") + 24, 0xFFFFFFF0)
        archive.write_bytes(bytes(data))
        with pytest.raises(ArchiveError, match="larger than"):
            safe_extract(archive, tmp_path / "out", ArchiveLimits(max_member_bytes=MiB))

    def test_tar_gz_bomb(self, tmp_path: Path) -> None:
        archive = make_tar(tmp_path / "bomb.tgz", [(tar_member("zeros.bin"), bytes(50 * MiB))])
        with pytest.raises(ArchiveError, match="compression bomb"):
            safe_extract(archive, tmp_path / "out", BOMB_LIMITS)
        assert bytes_under(tmp_path / "out") <= max(50 * archive.stat().st_size, MiB)

    def test_tar_gz_by_total(self, tmp_path: Path) -> None:
        members = [(tar_member(f"part{i}.bin"), os.urandom(MiB)) for i in range(4)]
        archive = make_tar(tmp_path / "big.tgz", members)
        with pytest.raises(ArchiveError, match="expands to more than the 3 MiB limit"):
            safe_extract(archive, tmp_path / "out", ArchiveLimits(max_total_bytes=3 * MiB))
        assert bytes_under(tmp_path / "out") <= 3 * MiB

    def test_tar_gz_bomb_hidden_in_a_skipped_member(self, tmp_path: Path) -> None:
        archive = make_tar(tmp_path / "bomb.tgz", [(tar_member(".hidden"), bytes(50 * MiB)), (tar_member("a"), b"x")])
        with pytest.raises(ArchiveError, match="compression bomb"):
            safe_extract(archive, tmp_path / "out", BOMB_LIMITS)

    def test_too_many_zip_members(self, tmp_path: Path) -> None:
        archive = make_zip(tmp_path / "many.zip", {f"f{i}.txt": b"x" for i in range(20)})
        with pytest.raises(ArchiveError, match="20 members; the limit is 10"):
            safe_extract(archive, tmp_path / "out", ArchiveLimits(max_members=10))
        assert not (tmp_path / "out" / "f0.txt").exists()

    def test_too_many_tar_members(self, tmp_path: Path) -> None:
        archive = make_tar(tmp_path / "many.tgz", [(tar_member(f"f{i}.txt"), b"x") for i in range(20)])
        with pytest.raises(ArchiveError, match="more than 10 members"):
            safe_extract(archive, tmp_path / "out", ArchiveLimits(max_members=10))


class TestRefusesDamagedArchives:
    def test_truncated_zip(self, tmp_path: Path) -> None:
        archive = make_zip(tmp_path / "ds.zip", {"a.bin": os.urandom(200_000), "b.bin": os.urandom(200_000)})
        archive.write_bytes(archive.read_bytes()[:150_000])
        with pytest.raises(ArchiveError, match="truncated or corrupt"):
            safe_extract(archive, tmp_path / "out")

    def test_truncated_tar_gz(self, tmp_path: Path) -> None:
        archive = make_tar(tmp_path / "ds.tgz", [(tar_member("a.bin"), os.urandom(200_000))])
        archive.write_bytes(archive.read_bytes()[:120_000])
        with pytest.raises(ArchiveError, match="truncated or corrupt"):
            safe_extract(archive, tmp_path / "out")

    def test_truncated_plain_tar(self, tmp_path: Path) -> None:
        archive = make_tar(tmp_path / "ds.tar", [(tar_member("a.bin"), os.urandom(200_000))], "w")
        archive.write_bytes(archive.read_bytes()[:120_000])
        with pytest.raises(ArchiveError, match="truncated or corrupt"):
            safe_extract(archive, tmp_path / "out")

    def test_corrupt_zip_member(self, tmp_path: Path) -> None:
        archive = make_zip(tmp_path / "ds.zip", {"a.txt": b"hello world " * 1000})
        data = bytearray(archive.read_bytes())
        data[60:80] = bytes(20)  # inside the deflated data
        archive.write_bytes(bytes(data))
        with pytest.raises(ArchiveError, match="'a.txt'"):
            safe_extract(archive, tmp_path / "out")


class TestRefusesUnwritableMembers:
    def test_file_and_folder_with_the_same_name(self, tmp_path: Path) -> None:
        archive = make_zip(tmp_path / "clash.zip", {"a": b"file", "a/b.txt": b"inside"})
        with pytest.raises(ArchiveError, match="'a/b.txt' conflicts with a file"):
            safe_extract(archive, tmp_path / "out")

    def test_name_too_long_for_the_filesystem(self, tmp_path: Path) -> None:
        archive = make_zip(tmp_path / "long.zip", {"x" * 300 + ".txt": b"x"})
        with pytest.raises(ArchiveError, match="cannot be created"):
            safe_extract(archive, tmp_path / "out")
