"""YOLO label files: where an image's labels live, what task the lines describe, and parsing them into Labels."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from yolostack.datasets.formats.geometry import box_of_points
from yolostack.datasets.formats.records import FormatError, Label, Task

MAX_LABEL_FILE_BYTES = 16 * 1024 * 1024
LabelLines = list[tuple[int, list[str]]]


@dataclass(slots=True)
class LineShapes:
    """How many label lines look like boxes (5 values), 9-value rows (OBB or 4-point polygons) or polygons."""

    boxes: int = 0
    nines: int = 0
    polygons: int = 0

    def add(self, lines: LabelLines) -> None:
        for _, tokens in lines:
            count = len(tokens)
            if count == 5:
                self.boxes += 1
            elif count == 9:
                self.nines += 1
            elif count >= 7 and count % 2:
                self.polygons += 1


def label_path(root: Path, image: Path) -> Path:
    """The image's label file, as ultralytics `img2label_paths`: last /images/ -> /labels/, extension -> .txt.

    The rule is applied to the path inside the dataset, so folders above the dataset never take part.
    """
    relative = "/" + image.relative_to(root).as_posix()
    swapped = "/labels/".join(relative.rsplit("/images/", 1))
    return root / (swapped.rsplit(".", 1)[0] + ".txt").lstrip("/")


def read_label_lines(path: Path) -> LabelLines | str:
    """Numbered, split non-blank lines of a label file; an error message when it cannot be read; [] if absent."""
    if not path.is_file() or path.is_symlink():
        return []
    if path.stat().st_size > MAX_LABEL_FILE_BYTES:
        return f"label file {path.name} is larger than {MAX_LABEL_FILE_BYTES // (1024 * 1024)} MiB"
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        return f"label file {path.name} is not UTF-8 text"
    return [(number, line.split()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def infer_task(shapes: LineShapes, kpt_shape: Sequence[int] | None) -> Task:
    """Pose with kpt_shape; else OBB when 9-value rows dominate, segment when polygons do, else detect."""
    if kpt_shape:
        return "pose"
    if shapes.polygons + shapes.nines == 0:
        return "detect"
    if shapes.polygons == 0 and shapes.nines >= shapes.boxes:
        return "obb"
    if shapes.polygons + shapes.nines >= shapes.boxes:
        return "segment"
    return "detect"


def parse_label_lines(
    lines: LabelLines, task: Task, kpt_shape: Sequence[int] | None, num_classes: int | None
) -> tuple[list[Label], str | None]:
    """All labels of one image, or none and an error naming the first bad line."""
    labels: list[Label] = []
    problems: list[str] = []
    for number, tokens in lines:
        try:
            labels.append(parse_line(tokens, task, kpt_shape, num_classes))
        except FormatError as error:
            problems.append(f"line {number}: {error}")
    if not problems:
        return labels, None
    more = f" (and {len(problems) - 1} more bad line(s))" if len(problems) > 1 else ""
    return [], problems[0] + more


def parse_line(tokens: Sequence[str], task: Task, kpt_shape: Sequence[int] | None, num_classes: int | None) -> Label:
    """One YOLO label line for the task; raises FormatError with a short reason."""
    values = _numbers(tokens)
    class_id = _class_id(tokens[0], values[0])
    coords = values[1:]
    count = len(values)
    if task == "pose":
        label = _pose(class_id, coords, kpt_shape)
    elif task == "obb":
        _expect(count == 9, f"expected 9 values, got {count}")
        label = Label(class_id, bbox=box_of_points(coords), obb=coords)
    elif count >= 7 and count % 2:
        label = Label(class_id, bbox=box_of_points(coords), segments=coords)
    elif task == "segment":
        found = "a box (5 values)" if count == 5 else f"{count} values"
        raise FormatError(f"expected class + 3 or more x,y points, got {found}")
    else:
        _expect(count == 5, f"expected 5 values, got {count}")
        label = Label(class_id, bbox=(coords[0], coords[1], coords[2], coords[3]))
    label.validate(kpt_shape=kpt_shape if task == "pose" else None, num_classes=num_classes)
    return label


def max_class_id(lines: Iterable[LabelLines]) -> int:
    """The highest integral class index on any line, -1 when there is none."""
    highest = -1
    for file_lines in lines:
        for _, tokens in file_lines:
            try:
                value = float(tokens[0])
            except ValueError:
                continue
            if math.isfinite(value) and value.is_integer():
                highest = max(highest, int(value))
    return highest


def _pose(class_id: int, coords: list[float], kpt_shape: Sequence[int] | None) -> Label:
    expected = 5 + (kpt_shape[0] * kpt_shape[1] if kpt_shape else 0)
    _expect(len(coords) + 1 == expected, f"expected {expected} values, got {len(coords) + 1}")
    return Label(class_id, bbox=(coords[0], coords[1], coords[2], coords[3]), keypoints=coords[4:])


def _numbers(tokens: Sequence[str]) -> list[float]:
    values = []
    for token in tokens:
        try:
            value = float(token)
        except ValueError:
            raise FormatError(f"{token!r} is not a number") from None
        if not math.isfinite(value):
            raise FormatError(f"{token!r} is not a finite number")
        values.append(value)
    return values


def _class_id(token: str, value: float) -> int:
    if not value.is_integer() or value < 0:
        raise FormatError(f"class {token!r} must be a non-negative integer")
    return int(value)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise FormatError(message)
