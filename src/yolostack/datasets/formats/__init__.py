"""Reading uploaded datasets: YOLO, COCO, class folders and Ultralytics NDJSON, plus safe archive extraction.

A pure library: no web or database imports. Parsers return a `ParsedDataset`; a bad label marks only its image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from yolostack.datasets.formats.archives import ArchiveLimits, archive_kind, safe_extract
from yolostack.datasets.formats.classify import looks_like_classify, parse_classify
from yolostack.datasets.formats.coco import find_coco_files, parse_coco
from yolostack.datasets.formats.images import ImageInfo, probe_image
from yolostack.datasets.formats.ndjson import ndjson_header, ndjson_image_line, parse_ndjson
from yolostack.datasets.formats.paths import walk_files, walk_images
from yolostack.datasets.formats.records import (
    ArchiveError,
    FormatError,
    ImageError,
    ImageRecord,
    Label,
    ParsedDataset,
    Split,
    Task,
)
from yolostack.datasets.formats.yolo import find_data_yaml, parse_yolo

DatasetFormat = Literal["yolo", "coco", "classify", "ndjson"]
NDJSON_SUFFIXES = (".ndjson", ".jsonl")

__all__ = [
    "ArchiveError",
    "ArchiveLimits",
    "DatasetFormat",
    "FormatError",
    "ImageError",
    "ImageInfo",
    "ImageRecord",
    "Label",
    "ParsedDataset",
    "Split",
    "Task",
    "archive_kind",
    "detect_format",
    "ndjson_header",
    "ndjson_image_line",
    "parse_classify",
    "parse_coco",
    "parse_dataset",
    "parse_ndjson",
    "parse_yolo",
    "probe_image",
    "safe_extract",
]


def detect_format(root: Path) -> DatasetFormat:
    """Which format an extracted upload (a folder) or an .ndjson file is in; raises FormatError if none fits."""
    if root.is_file():
        if root.suffix.lower() in NDJSON_SUFFIXES:
            return "ndjson"
        raise FormatError(f"{root.name} is not a dataset: upload a zip or tar archive, or an .ndjson file")
    if not root.is_dir():
        raise FormatError(f"{root} does not exist")
    if find_data_yaml(root) is not None:
        return "yolo"
    if find_coco_files(root):
        return "coco"
    if _ndjson_files(root):
        return "ndjson"
    if _has_yolo_labels(root):
        return "yolo"
    if looks_like_classify(root):
        return "classify"
    if next(walk_images(root), None) is not None:
        return "yolo"  # loose images: an unlabeled detect dataset
    raise FormatError("no images found: the upload holds no JPEG, PNG, BMP, WebP or TIFF files")


def parse_dataset(root: Path) -> ParsedDataset:
    """Detect the format and parse it; raises FormatError when nothing usable is found."""
    found = detect_format(root)
    if found == "ndjson":
        dataset = parse_ndjson(root if root.is_file() else _single_ndjson(root))
    elif found == "coco":
        dataset = parse_coco(root)
    elif found == "classify":
        dataset = parse_classify(root)
    else:
        dataset = parse_yolo(root)
    if not dataset.images:
        raise FormatError(f"no images found in the {found} dataset")
    return dataset


def _ndjson_files(root: Path) -> list[Path]:
    return [path for path in walk_files(root, max_depth=2) if path.suffix.lower() in NDJSON_SUFFIXES]


def _single_ndjson(root: Path) -> Path:
    files = _ndjson_files(root)
    if len(files) != 1:
        raise FormatError(f"found {len(files)} .ndjson files; upload exactly one")
    return files[0]


def _has_yolo_labels(root: Path) -> bool:
    return any(
        path.suffix.lower() == ".txt" and "labels" in path.relative_to(root).parts[:-1]
        for path in walk_files(root, max_depth=4)
    )
