"""Walking a dataset folder: image files, hidden entries and paths that must stay inside the root."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
# Image files we recognise but do not ingest; counted in a warning rather than silently ignored.
OTHER_IMAGE_SUFFIXES = frozenset({".avif", ".heic", ".heif", ".gif", ".dng", ".mpo", ".jp2", ".pfm", ".svg"})


def is_hidden(name: str) -> bool:
    """Dotfiles and macOS archive debris, which every parser skips."""
    return name.startswith(".") or name == "__MACOSX"


def is_image(path: Path) -> bool:
    """Whether the file name has an ingestible image extension."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def is_other_image(path: Path) -> bool:
    """Whether the file name looks like an image format we do not ingest."""
    return path.suffix.lower() in OTHER_IMAGE_SUFFIXES


def walk_files(root: Path, max_depth: int | None = None) -> Iterator[Path]:
    """Regular files under root in sorted order, skipping hidden entries and symlinks."""
    base_depth = len(root.parts)
    for directory, dirs, files in os.walk(root):
        current = Path(directory)
        depth = len(current.parts) - base_depth
        dirs[:] = sorted(d for d in dirs if not is_hidden(d) and not (current / d).is_symlink())
        if max_depth is not None and depth >= max_depth:
            dirs.clear()
        for name in sorted(files):
            path = current / name
            if not is_hidden(name) and not path.is_symlink():
                yield path


def walk_images(root: Path) -> Iterator[Path]:
    """Ingestible image files under root, sorted."""
    return (path for path in walk_files(root) if is_image(path))


def subdirs(folder: Path) -> list[Path]:
    """Visible, non-symlink subfolders, sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink() and not is_hidden(p.name))


def inside(root: Path, path: Path) -> Path | None:
    """The resolved path if it stays inside the (resolved) root, else None."""
    resolved = path.resolve()
    return resolved if resolved == root or resolved.is_relative_to(root) else None


def relative_name(root: Path, path: Path) -> str:
    """The image's name inside the dataset, as a POSIX path."""
    return path.relative_to(root).as_posix()


def unwrap(root: Path, keep: frozenset[str] = frozenset()) -> Path:
    """Descend through folders that hold nothing but one folder, as archives made of a folder do.

    Stops before a folder named in `keep` (lowercase) and before one that holds no folders itself.
    """
    for _ in range(4):
        entries = [p for p in root.iterdir() if not is_hidden(p.name)]
        if len(entries) != 1 or not entries[0].is_dir() or entries[0].is_symlink():
            break
        if entries[0].name.lower() in keep or not subdirs(entries[0]):
            break
        root = entries[0]
    return root
