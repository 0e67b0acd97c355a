"""Extracting uploaded zip and tar archives, which are treated as hostile.

Every member name is checked before anything is written, links and special files are refused, and sizes are
counted from the bytes actually decompressed: declared sizes in a zip or tar header can lie.
"""

from __future__ import annotations

import gzip
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Literal, cast

from yolostack.datasets.formats.paths import is_hidden
from yolostack.datasets.formats.records import ArchiveError

ArchiveKind = Literal["zip", "tar", "tar.gz"]

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
CHUNK_BYTES = MiB
# Tar headers (pax records, GNU long names) are read in one piece; real ones are tiny.
MAX_TAR_HEADER_READ = 16 * MiB
READ_ERRORS = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError, ValueError)
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """How much an archive may hold; anything over a limit is refused."""

    max_total_bytes: int = 20 * GiB
    max_member_bytes: int = 2 * GiB
    max_ratio: float = 200.0  # total uncompressed bytes / archive bytes
    max_members: int = 1_000_000
    # Below this much output the ratio is not checked: a small archive of label text compresses very well.
    ratio_floor_bytes: int = 10 * MiB


class _Budget:
    """Counts members and decompressed bytes against the limits."""

    def __init__(self, limits: ArchiveLimits, archive_bytes: int) -> None:
        self.limits = limits
        self.archive_bytes = max(archive_bytes, 1)
        self.members = 0
        self.total = 0

    def add_member(self, name: str) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise ArchiveError(f"the archive has more than {self.limits.max_members} members (at member {name!r})")

    def check_member_size(self, name: str, size: int) -> None:
        if size > self.limits.max_member_bytes:
            raise ArchiveError(
                f"member {name!r} is larger than the {_human(self.limits.max_member_bytes)} limit for one file"
            )

    def add_bytes(self, name: str, member_bytes: int, count: int) -> None:
        self.total += count
        self.check_member_size(name, member_bytes)
        self.check_position(self.total, f"at member {name!r}")

    def check_position(self, position: int, where: str) -> None:
        """Refuse once `position` decompressed bytes exceed the total or the compression-ratio limit."""
        if position > self.limits.max_total_bytes:
            raise ArchiveError(
                f"the archive expands to more than the {_human(self.limits.max_total_bytes)} limit ({where})"
            )
        ratio_limit = self.limits.max_ratio * self.archive_bytes
        if position > max(ratio_limit, self.limits.ratio_floor_bytes):
            raise ArchiveError(
                f"the archive expands more than {self.limits.max_ratio:g} times its size ({where}); "
                "it looks like a compression bomb"
            )


def archive_kind(path: Path) -> ArchiveKind:
    """Zip, tar or gzipped tar, told by the file's magic bytes rather than its name."""
    with path.open("rb") as handle:
        head = handle.read(512)
    if not head:
        raise ArchiveError(f"{path.name} is empty")
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "tar.gz"
    if head[257:262] == b"ustar" or _is_v7_tar_header(head):
        return "tar"
    if zipfile.is_zipfile(path):  # a zip with data before it, as self-extracting archives have
        return "zip"
    raise ArchiveError(f"{path.name} is not a zip, tar or tar.gz archive")


def safe_extract(archive: Path, dest: Path, limits: ArchiveLimits | None = None) -> None:
    """Extract a zip, tar or tar.gz into dest, refusing anything unsafe with an ArchiveError.

    On error dest may hold part of the archive; the caller removes it.
    """
    limits = limits or ArchiveLimits()
    kind = archive_kind(archive)
    dest.mkdir(parents=True, exist_ok=True)
    budget = _Budget(limits, archive.stat().st_size)
    if kind == "zip":
        _extract_zip(archive, dest.resolve(), budget)
    else:
        _extract_tar(archive, dest.resolve(), budget, compressed=kind == "tar.gz")


def member_path(name: str) -> PurePosixPath | None:
    """The safe relative path of a member, None for entries we skip; raises on absolute or escaping names."""
    if "\x00" in name:
        raise ArchiveError(f"refusing member {name!r}: the name contains a NUL byte")
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or _DRIVE.match(normalized):
        raise ArchiveError(f"refusing member {name!r}: absolute paths are not allowed")
    parts = [part for part in normalized.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"refusing member {name!r}: '..' would write outside the archive folder")
    if not parts or any(is_hidden(part) for part in parts):
        return None
    return PurePosixPath(*parts)


# --- zip ------------------------------------------------------------------------------------------------------------


def _extract_zip(archive: Path, dest: Path, budget: _Budget) -> None:
    with _reading(f"{archive.name} is a truncated or corrupt zip archive"):
        zip_file = zipfile.ZipFile(archive)
    with zip_file:
        infos = zip_file.infolist()
        if len(infos) > budget.limits.max_members:
            raise ArchiveError(f"the archive has {len(infos)} members; the limit is {budget.limits.max_members}")
        _check_declared_zip_sizes(infos, budget)
        for info in infos:
            budget.add_member(info.filename)
            relative = _checked_zip_member(info)
            if relative is None:
                continue
            target = _target(dest, relative, info.filename)
            if info.is_dir():
                _make_dir(target, info.filename)
                continue
            with _open_zip_member(zip_file, info) as source:
                _copy(_reader(source, info.filename), target, info.filename, budget)


def _check_declared_zip_sizes(infos: list[zipfile.ZipInfo], budget: _Budget) -> None:
    # Declared sizes can only be trusted to refuse early; the real count happens while extracting.
    for info in infos:
        budget.check_member_size(info.filename, info.file_size)
    declared = sum(info.file_size for info in infos)
    if declared > budget.limits.max_total_bytes:
        raise ArchiveError(
            f"the archive declares {_human(declared)}, over the {_human(budget.limits.max_total_bytes)} limit"
        )


def _checked_zip_member(info: zipfile.ZipInfo) -> PurePosixPath | None:
    relative = member_path(info.filename)
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ArchiveError(f"refusing member {info.filename!r}: symbolic links are not allowed")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise ArchiveError(f"refusing member {info.filename!r}: only files and folders are allowed")
    if info.flag_bits & 0x1:
        raise ArchiveError(f"refusing member {info.filename!r}: encrypted archives are not supported")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ArchiveError(f"refusing member {info.filename!r}: only stored or deflated zip members are supported")
    return relative


def _open_zip_member(zip_file: zipfile.ZipFile, info: zipfile.ZipInfo) -> IO[bytes]:
    with _reading(f"member {info.filename!r} is corrupt"):
        return zip_file.open(info)


# --- tar ------------------------------------------------------------------------------------------------------------


class _GuardedStream:
    """A read/seek stream over the decompressed tar bytes that refuses to go past the limits."""

    def __init__(self, inner: IO[bytes], budget: _Budget) -> None:
        self.inner = inner
        self.budget = budget

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > MAX_TAR_HEADER_READ:
            raise ArchiveError("the archive has an oversized tar header")
        with _reading("the archive is truncated or corrupt"):
            data = self.inner.read(size)
        self.budget.check_position(self.inner.tell(), "while reading the tar stream")
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:  # check before seeking: a forward seek in a gzip stream decompresses everything it skips
            self.budget.check_position(offset, "while skipping through the tar stream")
        with _reading("the archive is truncated or corrupt"):
            return self.inner.seek(offset, whence)

    def tell(self) -> int:
        return self.inner.tell()


def _extract_tar(archive: Path, dest: Path, budget: _Budget, *, compressed: bool) -> None:
    with archive.open("rb") as raw:
        inner = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw)
        stream = cast(IO[bytes], _GuardedStream(inner, budget))
        with _reading(f"{archive.name} is a truncated or corrupt tar archive"):
            tar = tarfile.TarFile(fileobj=stream, mode="r")
        with tar:
            while (member := _next_member(tar)) is not None:
                # TarFile remembers every member it has read; a million-member archive need not stay in memory.
                tar.__dict__["members"].clear()
                _extract_tar_member(tar, member, dest, budget)


def _next_member(tar: tarfile.TarFile) -> tarfile.TarInfo | None:
    with _reading("the archive is truncated or corrupt"):
        return tar.next()


def _extract_tar_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path, budget: _Budget) -> None:
    budget.add_member(member.name)
    relative = member_path(member.name)
    if member.issym() or member.islnk():
        raise ArchiveError(f"refusing member {member.name!r}: links are not allowed")
    if not (member.isreg() or member.isdir()):
        raise ArchiveError(f"refusing member {member.name!r}: devices, fifos and other special files are not allowed")
    budget.check_member_size(member.name, member.size)
    if relative is None:
        return
    target = _target(dest, relative, member.name)
    if member.isdir():
        _make_dir(target, member.name)
        return
    source = tar.extractfile(member)
    if source is None:
        raise ArchiveError(f"member {member.name!r} cannot be read")
    with source:
        _copy(_reader(source, member.name), target, member.name, budget)


def _is_v7_tar_header(head: bytes) -> bool:
    if len(head) < 512 or not head.strip(b"\x00"):
        return False
    try:
        tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


# --- shared ---------------------------------------------------------------------------------------------------------


def _target(dest: Path, relative: PurePosixPath, name: str) -> Path:
    target = dest.joinpath(*relative.parts)
    resolved = target.resolve()
    if not resolved.is_relative_to(dest):
        raise ArchiveError(f"refusing member {name!r}: it would write outside the archive folder")
    return target


def _make_dir(target: Path, name: str) -> None:
    try:
        target.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise ArchiveError(f"member {name!r} conflicts with a file of the same name") from error
    except OSError as error:  # a name too long or invalid for this filesystem
        raise ArchiveError(f"member {name!r} cannot be created ({error.strerror})") from error


@contextmanager
def _reading(problem: str) -> Iterator[None]:
    """Turn the many ways a damaged archive fails to read into one ArchiveError."""
    try:
        yield
    except ArchiveError:
        raise
    except READ_ERRORS as error:
        raise ArchiveError(f"{problem} ({error})") from error


def _reader(source: IO[bytes], name: str) -> Callable[[int], bytes]:
    def read(size: int) -> bytes:
        with _reading(f"member {name!r} is truncated or corrupt"):
            return source.read(size)

    return read


def _copy(read: Callable[[int], bytes], target: Path, name: str, budget: _Budget) -> None:
    _make_dir(target.parent, name)
    try:
        out = target.open("wb")
    except (IsADirectoryError, NotADirectoryError, FileExistsError) as error:
        raise ArchiveError(f"member {name!r} conflicts with a folder of the same name") from error
    except OSError as error:
        raise ArchiveError(f"member {name!r} cannot be created ({error.strerror})") from error
    with out:
        member_bytes = 0
        while chunk := read(CHUNK_BYTES):
            member_bytes += len(chunk)
            budget.add_bytes(name, member_bytes, len(chunk))  # before writing: nothing over a limit reaches disk
            out.write(chunk)


def _human(size: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} bytes"
