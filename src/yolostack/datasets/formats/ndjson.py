"""The Ultralytics NDJSON dataset format (clients.md §2.5): reading it, and writing the lines an export serves.

Line 1 is the dataset record; every further line is one image with its split, file, url and annotations. Only
the first key of `annotations` is used by ultralytics, and its rows are YOLO label lines.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from yolostack.core.validation import loads_strict
from yolostack.datasets.formats.geometry import box_corners, box_of_points
from yolostack.datasets.formats.records import (
    FormatError,
    ImageRecord,
    Label,
    ParsedDataset,
    Split,
    Task,
    as_class_id,
    as_number,
    as_split,
    as_task,
)

ANNOTATION_KEYS: dict[Task, str] = {
    "detect": "boxes",
    "segment": "segments",
    "pose": "pose",
    "obb": "obb",
    "classify": "classification",
}
_KPT_SAMPLE = 50  # pose rows ultralytics looks at to infer kpt_shape


def parse_ndjson(path: Path) -> ParsedDataset:
    """Read an Ultralytics NDJSON file into image records that reference their images by URL."""
    header = _read_header(path)
    task = as_task(header.get("task", "detect"))
    class_names = _class_names(header.get("class_names", {}))
    kpt_shape = _int_list(header.get("kpt_shape"), "kpt_shape")
    if task == "pose" and kpt_shape is None:
        kpt_shape = _infer_kpt_shape(path)
    flip_idx = _int_list(header.get("flip_idx"), "flip_idx")
    local_root = _local_root(path, header.get("path"))
    images: list[ImageRecord] = []
    warnings: list[str] = []
    unreachable = 0
    for number, record in _image_lines(path):
        image = _image_record(number, record, kpt_shape, local_root)
        if image.url is None and image.path is None:
            unreachable += 1
            continue
        images.append(image)
    if unreachable:
        warnings.append(f"{unreachable} image(s) have no url and no local file; skipped")
    class_names = _fill_class_names(class_names, images, warnings)
    return ParsedDataset(task, class_names, kpt_shape, flip_idx, images, warnings)


def ndjson_header(
    task: Task,
    class_names: Mapping[int, str],
    *,
    kpt_shape: Sequence[int] | None = None,
    flip_idx: Sequence[int] | None = None,
    name: str | None = None,
    description: str | None = None,
    url: str | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """The dataset record on line 1; every key but type and class_names lands in the client's data.yaml."""
    header: dict[str, Any] = {"type": "dataset", "task": task}
    optional: dict[str, Any] = {"name": name, "description": description, "url": url}
    header.update({key: value for key, value in optional.items() if value is not None})
    header["class_names"] = {str(class_id): class_names[class_id] for class_id in sorted(class_names)}
    if kpt_shape is not None:
        header["kpt_shape"] = list(kpt_shape)
    if flip_idx is not None:
        header["flip_idx"] = list(flip_idx)
    if version is not None:
        header["version"] = version
    return header


def ndjson_image_line(
    split: Split,
    file: str,
    url: str,
    width: int | None,
    height: int | None,
    hash: str | None,
    labels: Sequence[Label],
    task: Task,
) -> dict[str, Any]:
    """One image record, with its labels as the single annotations key ultralytics reads for the task."""
    line: dict[str, Any] = {"type": "image", "file": file, "url": url}
    if width is not None and height is not None:
        line["width"], line["height"] = width, height
    line["split"] = split
    if hash is not None:
        line["hash"] = hash
    line["annotations"] = annotations_for(labels, task)
    return line


def annotations_for(labels: Sequence[Label], task: Task) -> dict[str, list[Any]]:
    """The `annotations` object: `{key: rows}`, or `{}` for an image without labels."""
    if not labels:
        return {}
    if task == "classify":
        return {"classification": [labels[0].class_id]}  # ultralytics reads classification[0] as an int
    return {ANNOTATION_KEYS[task]: [label_row(label, task) for label in labels]}


def label_row(label: Label, task: Task) -> list[int | float]:
    """One YOLO label line as a list: class first, then the task's coordinates."""
    if task == "classify":
        return [label.class_id]
    if task == "segment":
        return [label.class_id, *_polygon_of(label)]
    if task == "obb":
        return [label.class_id, *_corners_of(label)]
    if task == "pose":
        if label.keypoints is None:
            raise FormatError(f"a pose label of class {label.class_id} has no keypoints")
        return [label.class_id, *_box_of(label), *label.keypoints]
    return [label.class_id, *_box_of(label)]


def row_label(key: str, row: object, kpt_shape: Sequence[int] | None = None) -> Label:
    """A Label from one annotation row under `key`; raises FormatError on a bad row."""
    if key == "classification":
        return Label(as_class_id(row[0] if isinstance(row, list) and row else row))
    if not isinstance(row, list) or not row:
        raise FormatError(f"a {key} row must be a non-empty list")
    class_id = as_class_id(row[0])
    values = [as_number(value, key) for value in row[1:]]
    label = _geometry_label(key, class_id, values, kpt_shape)
    label.validate(kpt_shape=kpt_shape if key == "pose" else None)
    return label


def _geometry_label(key: str, class_id: int, values: list[float], kpt_shape: Sequence[int] | None) -> Label:
    if key == "boxes":
        _expect(len(values) == 4, f"a box row needs 5 values, got {len(values) + 1}")
        return Label(class_id, bbox=(values[0], values[1], values[2], values[3]))
    if key == "segments":
        _expect(
            len(values) >= 6 and len(values) % 2 == 0,
            f"a polygon row needs class + 3 or more x,y points, got {len(values) + 1} values",
        )
        return Label(class_id, bbox=box_of_points(values), segments=values)
    if key == "obb":
        _expect(len(values) == 8, f"an obb row needs 9 values, got {len(values) + 1}")
        return Label(class_id, bbox=box_of_points(values), obb=values)
    if key == "pose":
        if kpt_shape:
            expected = 5 + kpt_shape[0] * kpt_shape[1]
            _expect(len(values) + 1 == expected, f"a pose row needs {expected} values, got {len(values) + 1}")
        _expect(len(values) > 4, "a pose row needs a class, a box and keypoints")
        return Label(class_id, bbox=(values[0], values[1], values[2], values[3]), keypoints=values[4:])
    raise FormatError(f"unknown annotation type {key!r}")


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise FormatError(message)


def _box_of(label: Label) -> tuple[float, float, float, float]:
    if label.bbox is not None:
        return label.bbox
    for points in (label.segments, label.obb):
        if points:
            return box_of_points(points)
    raise FormatError(f"a label of class {label.class_id} has no box, polygon or corners")


def _polygon_of(label: Label) -> list[float]:
    if label.segments is not None:
        return label.segments
    if label.obb is not None:
        return label.obb
    return box_corners(_box_of(label))


def _corners_of(label: Label) -> list[float]:
    if label.obb is not None:
        return label.obb
    return box_corners(_box_of(label))


# --- reading --------------------------------------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig") as handle:
        try:
            for number, text in enumerate(handle, start=1):
                if text.strip():
                    yield number, _json_object(text, f"{path.name} line {number}")
        except UnicodeDecodeError as error:
            raise FormatError(f"{path.name} is not UTF-8 text") from error


def _json_object(text: str, where: str) -> dict[str, Any]:
    # Strict, as request bodies are: NaN, 1e400, lone surrogates or NUL in a label would be stored altered
    # (or refused by PostgreSQL mid-ingest), and a record nested thousands deep would exhaust the stack.
    try:
        value = loads_strict(text)
    except ValueError as error:
        raise FormatError(f"{where} is not valid JSON ({error})") from error
    if not isinstance(value, dict):
        raise FormatError(f"{where} must be a JSON object")
    return value


def _read_header(path: Path) -> dict[str, Any]:
    try:
        number, header = next(_lines(path))
    except StopIteration:
        raise FormatError(f"{path.name} is empty") from None
    if header.get("type", "dataset") != "dataset":
        raise FormatError(f"{path.name} line {number} must be the dataset record (type 'dataset')")
    return header


def _image_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    lines = _lines(path)
    next(lines)
    for number, record in lines:
        if record.get("type", "image") == "image":
            yield number, record


def _image_record(
    number: int, record: Mapping[str, Any], kpt_shape: Sequence[int] | None, local_root: Path | None
) -> ImageRecord:
    try:
        split = as_split(record.get("split"))
    except FormatError as error:
        raise FormatError(f"line {number}: {error}") from None
    file = record.get("file")
    if not isinstance(file, str) or not file:
        raise FormatError(f"line {number}: an image needs a non-empty 'file' name")
    url = record.get("url")
    image = ImageRecord(name=file, split=split, url=url if isinstance(url, str) and url else None)
    if local_root is not None and Path(file).name == file:
        local = local_root / "images" / split / file
        image.path = local if local.is_file() else None
    image.labels, image.error = _record_labels(record.get("annotations"), kpt_shape)
    return image


def _record_labels(annotations: object, kpt_shape: Sequence[int] | None) -> tuple[list[Label], str | None]:
    if not annotations:
        return [], None
    if not isinstance(annotations, dict):
        return [], "annotations must be an object"
    key, rows = next(iter(annotations.items()))
    if key == "classification":
        rows = [rows] if isinstance(rows, list) and rows and not isinstance(rows[0], list) else rows
    if not isinstance(rows, list):
        return [], f"annotations.{key} must be a list of rows"
    labels = []
    for index, row in enumerate(rows, start=1):
        try:
            labels.append(row_label(key, row, kpt_shape))
        except FormatError as error:
            return [], f"annotation {index}: {error}"
    return labels, None


def _class_names(value: object) -> dict[int, str]:
    if not isinstance(value, dict):
        raise FormatError('class_names must be an object like {"0": "cat"}')
    names: dict[int, str] = {}
    for key, name in value.items():
        try:
            class_id = int(key)
        except ValueError:
            raise FormatError(f"class_names key {key!r} is not a class index") from None
        if class_id < 0:
            raise FormatError(f"class_names key {key!r} is negative")
        names[class_id] = str(name)
    return dict(sorted(names.items()))


def _int_list(value: object, what: str) -> list[int] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise FormatError(f"{what} must be a list of integers")
    if what == "kpt_shape" and (len(value) != 2 or value[0] < 1 or value[1] not in (2, 3)):
        raise FormatError(f"kpt_shape must be [keypoints, 2 or 3], got {value}")
    return list(value)


def _local_root(path: Path, value: object) -> Path | None:
    # A local NDJSON may keep its images beside it, in {path}/images/{split}/{file}; never outside its folder.
    if not isinstance(value, str):
        return None
    folder = path.parent.resolve()
    root = (folder / value).resolve()
    return root if root.is_relative_to(folder) else None


def _infer_kpt_shape(path: Path) -> list[int]:
    """Keypoint count and dims from the first pose rows, as ultralytics `_infer_ndjson_kpt_shape`."""
    samples: list[list[Any]] = []
    for _, record in _image_lines(path):
        annotations = record.get("annotations")
        rows = annotations.get("pose", []) if isinstance(annotations, dict) else []
        samples.extend(row[5:] for row in rows if isinstance(row, list) and len(row) > 5)
        if len(samples) >= _KPT_SAMPLE:
            break
    lengths = {len(sample) for sample in samples}
    if len(lengths) != 1:
        raise FormatError("cannot infer kpt_shape from the pose rows; add kpt_shape to the dataset record")
    length = lengths.pop()
    if length % 3 == 0 and all(value in (0, 1, 2) for sample in samples for value in sample[2::3]):
        return [length // 3, 3]
    if length % 2 == 0:
        return [length // 2, 2]
    raise FormatError(f"pose rows have {length} keypoint values, neither x,y nor x,y,v groups")


def _fill_class_names(class_names: dict[int, str], images: list[ImageRecord], warnings: list[str]) -> dict[int, str]:
    # As ultralytics does, class ids beyond class_names get placeholder names rather than failing the dataset.
    used = {label.class_id for image in images for label in image.labels}
    highest = max(used | set(class_names), default=-1)
    missing = [class_id for class_id in range(highest + 1) if class_id not in class_names]
    if missing:
        warnings.append(f"class_names has no name for class(es) {', '.join(map(str, missing))}; named class<id>")
    return dict(sorted((class_names | {class_id: f"class{class_id}" for class_id in missing}).items()))
