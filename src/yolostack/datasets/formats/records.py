"""What every dataset parser returns: labels, image records and the parsed dataset, plus the format errors."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

Task = Literal["detect", "segment", "pose", "obb", "classify"]
Split = Literal["train", "val", "test"]
TASKS: tuple[Task, ...] = get_args(Task)
SPLITS: tuple[Split, ...] = get_args(Split)

# Ultralytics accepts normalized coordinates up to 1% outside the image (verify_image_label).
COORD_TOLERANCE = 0.01
MAX_VISIBILITY = 2.0


class FormatError(ValueError):
    """A dataset, label file or label that does not follow its format."""


class ArchiveError(ValueError):
    """An uploaded archive that cannot be extracted safely."""


class ImageError(ValueError):
    """A file that is not an image we can ingest."""


@dataclass(slots=True)
class Label:
    """One annotation in normalized coordinates, shaped like the clients' `Label`."""

    class_id: int
    bbox: tuple[float, float, float, float] | None = None  # cx, cy, w, h
    segments: list[float] | None = None  # x1, y1, x2, y2, ... polygon
    keypoints: list[float] | None = None  # x, y[, v] per keypoint
    obb: list[float] | None = None  # x1, y1, ..., x4, y4 corners

    def to_wire(self) -> dict[str, Any]:
        """The clients' Label JSON: `{classId, bbox?, segments?, keypoints?, obb?}`."""
        wire: dict[str, Any] = {"classId": self.class_id}
        if self.bbox is not None:
            wire["bbox"] = list(self.bbox)
        for key in ("segments", "keypoints", "obb"):
            value = getattr(self, key)
            if value is not None:
                wire[key] = list(value)
        return wire

    @classmethod
    def from_wire(cls, data: object, *, kpt_shape: Sequence[int] | None = None) -> Label:
        """Read and validate a clients' Label JSON object; raises FormatError on a bad shape."""
        if not isinstance(data, Mapping):
            raise FormatError(f"a label must be an object, got {type(data).__name__}")
        if "classId" not in data:
            raise FormatError("a label needs a classId")
        bbox = _optional_numbers(data.get("bbox"), "bbox")
        label = cls(
            class_id=as_class_id(data["classId"]),
            bbox=None if bbox is None else _as_bbox(bbox),
            segments=_optional_numbers(data.get("segments"), "segments"),
            keypoints=_optional_numbers(data.get("keypoints"), "keypoints"),
            obb=_optional_numbers(data.get("obb"), "obb"),
        )
        label.validate(kpt_shape=kpt_shape)
        return label

    def validate(self, *, kpt_shape: Sequence[int] | None = None, num_classes: int | None = None) -> None:
        """Check lengths, ranges and the class; raises FormatError naming the first problem."""
        if isinstance(self.class_id, bool) or not isinstance(self.class_id, int) or self.class_id < 0:
            raise FormatError(f"class {self.class_id!r} must be a non-negative integer")
        if num_classes is not None and self.class_id >= num_classes:
            raise FormatError(f"class {self.class_id} is out of range: the dataset has {num_classes} classes")
        if self.bbox is not None:
            _check_bbox(self.bbox)
        if self.segments is not None:
            _check_polygon(self.segments)
        if self.obb is not None:
            _check_length(self.obb, 8, "obb")
            _check_coords(self.obb, "obb")
        if self.keypoints is not None:
            _check_keypoints(self.keypoints, kpt_shape)


@dataclass(slots=True)
class ImageRecord:
    """One image of a parsed dataset: where it is, its split and its labels."""

    name: str  # path inside the dataset, for messages
    split: Split
    path: Path | None = None  # a local file
    url: str | None = None  # NDJSON images referenced by URL
    labels: list[Label] = field(default_factory=list)
    error: str | None = None  # label problem for this image; the image is still kept


@dataclass(slots=True)
class ParsedDataset:
    """A dataset read from any supported format, ready to ingest."""

    task: Task
    class_names: dict[int, str]
    kpt_shape: list[int] | None
    flip_idx: list[int] | None
    images: list[ImageRecord]
    warnings: list[str] = field(default_factory=list)


def as_number(value: object, what: str) -> float:
    """A finite float from a JSON/YAML number; raises FormatError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FormatError(f"{what} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise FormatError(f"{what} must be a finite number, got {value!r}")
    return number


def as_class_id(value: object) -> int:
    """A class index from an int or an integral float; raises FormatError otherwise."""
    number = as_number(value, "class")
    if not number.is_integer() or number < 0:
        raise FormatError(f"class {value!r} must be a non-negative integer")
    return int(number)


def as_task(value: object) -> Task:
    """One of the five tasks; raises FormatError otherwise."""
    for task in TASKS:
        if value == task:
            return task
    raise FormatError(f"unsupported task {value!r}; expected one of {', '.join(TASKS)}")


def as_split(value: object) -> Split:
    """One of train, val or test; raises FormatError otherwise."""
    for split in SPLITS:
        if value == split:
            return split
    raise FormatError(f"unknown split {value!r}; expected train, val or test")


def _optional_numbers(value: object, what: str) -> list[float] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise FormatError(f"{what} must be a list of numbers")
    return [as_number(item, what) for item in value]


def _as_bbox(values: list[float]) -> tuple[float, float, float, float]:
    _check_length(values, 4, "bbox")
    return values[0], values[1], values[2], values[3]


def _check_length(values: Sequence[float], expected: int, what: str) -> None:
    if len(values) != expected:
        raise FormatError(f"{what} must have {expected} values, got {len(values)}")


def _check_finite(values: Sequence[float], what: str) -> None:
    for value in values:
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise FormatError(f"{what} has a value that is not a finite number: {value!r}")


def _check_coords(values: Sequence[float], what: str) -> None:
    _check_finite(values, what)
    for value in values:
        if not -COORD_TOLERANCE <= value <= 1 + COORD_TOLERANCE:
            raise FormatError(f"{what} value {value:g} is outside 0..1: coordinates must be normalized")


def _check_bbox(bbox: Sequence[float]) -> None:
    _check_length(bbox, 4, "bbox")
    _check_finite(bbox, "bbox")
    if bbox[2] < 0 or bbox[3] < 0:
        raise FormatError(f"bbox width and height must not be negative, got {bbox[2]:g} x {bbox[3]:g}")
    _check_coords(bbox, "bbox")


def _check_polygon(points: Sequence[float]) -> None:
    if len(points) % 2 or len(points) < 6:
        raise FormatError(f"segments must be at least 3 x,y points (an even count >= 6), got {len(points)} values")
    _check_coords(points, "segments")


def _check_keypoints(values: Sequence[float], kpt_shape: Sequence[int] | None) -> None:
    _check_finite(values, "keypoints")
    if kpt_shape is not None:
        count, dims = kpt_shape[0], kpt_shape[1]
        _check_length(values, count * dims, "keypoints")
        _check_keypoint_dims(values, dims)
        return
    problems = []
    for dims in (3, 2):
        if len(values) % dims:
            continue
        try:
            _check_keypoint_dims(values, dims)
        except FormatError as error:
            problems.append(str(error))
        else:
            return
    raise FormatError(problems[0] if problems else f"keypoints must be x,y or x,y,v groups, got {len(values)} values")


def _check_keypoint_dims(values: Sequence[float], dims: int) -> None:
    if not values:
        raise FormatError("keypoints must not be empty")
    for index in range(0, len(values), dims):
        _check_coords(values[index : index + 2], "keypoints")
        if dims == 3 and not 0 <= values[index + 2] <= MAX_VISIBILITY:
            raise FormatError(f"keypoint visibility {values[index + 2]:g} must be 0, 1 or 2")
