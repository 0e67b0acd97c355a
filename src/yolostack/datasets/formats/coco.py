"""COCO datasets: JSON files with images, annotations and categories, converted to normalized YOLO labels."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yolostack.core.validation import StrictJsonError, loads_strict
from yolostack.datasets.formats.geometry import clip01, polygon_area
from yolostack.datasets.formats.images import image_size
from yolostack.datasets.formats.paths import inside, relative_name, walk_files, walk_images
from yolostack.datasets.formats.records import (
    FormatError,
    ImageError,
    ImageRecord,
    Label,
    ParsedDataset,
    Split,
    Task,
    as_number,
)

_SPLIT_WORDS: tuple[tuple[Split, str], ...] = (("train", "train"), ("val", "val"), ("test", "test"))
_COCO_NAME = re.compile(r"instances|keypoints|annotations|coco", re.IGNORECASE)
_SMALL_JSON_BYTES = 64 * 1024 * 1024
_KEYS = ("images", "annotations", "categories")
_WARNINGS = {
    "crowd": "{} crowd (iscrowd) annotation(s) skipped",
    "rle": "{} RLE mask annotation(s) skipped: only polygons are supported",
    "merged": "{} annotation(s) had several polygons; the largest was kept",
    "empty": "{} annotation(s) with an empty box skipped",
    "no_polygon": "{} annotation(s) without a polygon kept as boxes only",
    "missing": "{} image(s) listed in the JSON were not found in the upload; skipped",
    "duplicate": "{} image(s) listed twice kept once",
}


@dataclass(slots=True)
class _Context:
    """What converting one annotation needs to know about the whole dataset."""

    task: Task
    class_index: dict[Any, int]
    keypoint_count: int
    stats: Counter[str] = field(default_factory=Counter)


def find_coco_files(root: Path) -> list[Path]:
    """COCO annotation JSON files up to 3 folders deep."""
    return [p for p in walk_files(root, max_depth=3) if p.suffix.lower() == ".json" and _looks_like_coco(p)]


def parse_coco(root: Path) -> ParsedDataset:
    """Read COCO detection, polygon segmentation or keypoint JSON files; the split comes from each file's name."""
    root = root.resolve()
    documents = [(path, _load(path)) for path in find_coco_files(root)]
    if not documents:
        raise FormatError("no COCO annotation file found (a .json with images, annotations and categories)")
    warnings: list[str] = []
    categories = _categories([doc for _, doc in documents], warnings)
    class_ids = sorted(categories, key=_sort_key)
    task, keypoint_names, keypoint_count = _task([doc for _, doc in documents])
    context = _Context(task, {cat_id: index for index, cat_id in enumerate(class_ids)}, keypoint_count)
    finder = _ImageFinder(root)
    records: list[ImageRecord] = []
    seen: set[Path] = set()
    for path, document in documents:
        split = split_of(path)
        for image, image_annotations in _images_with_annotations(document):
            found = finder.find(path, str(image.get("file_name", "")), split)
            if found is None or found in seen:
                context.stats["missing" if found is None else "duplicate"] += 1
                continue
            seen.add(found)
            records.append(_record(root, found, split, image, image_annotations, context))
    warnings += [_WARNINGS[key].format(count) for key, count in context.stats.items() if count]
    names = {index: categories[cat_id] for index, cat_id in enumerate(class_ids)}
    kpt_shape = [keypoint_count, 3] if task == "pose" else None
    flip_idx = flip_from_names(keypoint_names) if task == "pose" else None
    return ParsedDataset(task, names, kpt_shape, flip_idx, records, warnings)


def split_of(path: Path) -> Split:
    """The split named in the JSON's name (instances_val2017), else in its folder (Roboflow valid/), else train."""
    for text in (path.stem.lower(), path.parent.name.lower()):
        found = [(text.find(word), split) for split, word in _SPLIT_WORDS if word in text]
        if found:
            return min(found)[1]
    return "train"


def flip_from_names(names: Sequence[str]) -> list[int] | None:
    """flip_idx from keypoint names by swapping left and right (left_eye <-> right_eye), None without pairs."""
    index = {name: i for i, name in enumerate(names)}
    swap = {"left": "right", "right": "left"}
    flipped = [index.get(re.sub(r"left|right", lambda m: swap[m.group(0)], name), i) for i, name in enumerate(names)]
    return flipped if any(i != j for i, j in enumerate(flipped)) else None


# --- reading the JSON -----------------------------------------------------------------------------------------------


def _looks_like_coco(path: Path) -> bool:
    if path.stat().st_size > _SMALL_JSON_BYTES:  # too big to load just to look: trust the name or folder
        return bool(_COCO_NAME.search(path.name)) or path.parent.name.lower() == "annotations"
    try:
        document = loads_strict(path.read_bytes())
    except StrictJsonError:  # JSON, but not strict (NaN, 1e400, nested too deep): a COCO-named one says why
        return bool(_COCO_NAME.search(path.name))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(document, dict) and all(isinstance(document.get(key), list) for key in _KEYS)


def _load(path: Path) -> dict[str, Any]:
    try:
        document = loads_strict(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as error:
        raise FormatError(f"{path.name} is not valid JSON ({error})") from error
    if not isinstance(document, dict) or not all(isinstance(document.get(key), list) for key in _KEYS):
        raise FormatError(f"{path.name} must be a COCO object with images, annotations and categories lists")
    return document


def _categories(documents: list[dict[str, Any]], warnings: list[str]) -> dict[Any, str]:
    names: dict[Any, str] = {}
    for document in documents:
        for category in document["categories"]:
            if not isinstance(category, dict) or "id" not in category:
                raise FormatError("every COCO category needs an id")
            cat_id, name = category["id"], str(category.get("name", category["id"]))
            if names.setdefault(cat_id, name) != name:
                warnings.append(f"category {cat_id} is named both {names[cat_id]!r} and {name!r}; kept the first")
    if not names:
        raise FormatError("the COCO files define no categories")
    return names


def _sort_key(cat_id: Any) -> tuple[int, float, str]:
    return (
        (0, float(cat_id), "")
        if isinstance(cat_id, int | float) and not isinstance(cat_id, bool)
        else (1, 0, str(cat_id))
    )


def _task(documents: list[dict[str, Any]]) -> tuple[Task, list[str], int]:
    keypoint_names: list[str] = []
    for document in documents:
        for category in document["categories"]:
            names = category.get("keypoints") if isinstance(category, dict) else None
            if isinstance(names, list) and len(names) > len(keypoint_names):
                keypoint_names = [str(name) for name in names]
    annotations = [a for document in documents for a in document["annotations"] if isinstance(a, dict)]
    longest = max((len(a["keypoints"]) // 3 for a in annotations if isinstance(a.get("keypoints"), list)), default=0)
    count = max(len(keypoint_names), longest)
    if count:
        return "pose", keypoint_names, count
    has_polygons = any(isinstance(a.get("segmentation"), list) and a["segmentation"] for a in annotations)
    return ("segment" if has_polygons else "detect"), [], 0


def _images_with_annotations(document: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    by_image: defaultdict[Any, list[dict[str, Any]]] = defaultdict(list)
    for annotation in document["annotations"]:
        if isinstance(annotation, dict):
            by_image[annotation.get("image_id")].append(annotation)
    return [(image, by_image.get(image.get("id"), [])) for image in document["images"] if isinstance(image, dict)]


class _ImageFinder:
    """Finds a COCO file_name in the upload: beside the JSON, under images/, or anywhere by its basename."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._by_name: dict[str, list[Path]] | None = None

    def find(self, json_path: Path, file_name: str, split: str) -> Path | None:
        if not file_name:
            return None
        folder = json_path.parent
        for base in (
            folder,
            folder.parent,
            self.root,
            self.root / "images",
            self.root / "images" / split,
            folder.parent / "images",
        ):
            found = inside(self.root, base / file_name)
            if found is not None and found.is_file():
                return found
        return self._by_basename(Path(file_name).name, split)

    def _by_basename(self, name: str, split: str) -> Path | None:
        if self._by_name is None:
            self._by_name = defaultdict(list)
            for path in walk_images(self.root):
                self._by_name[path.name].append(path)
        matches = self._by_name.get(name, [])
        preferred = [path for path in matches if split in path.relative_to(self.root).parts[:-1]]
        candidates = preferred or matches
        return candidates[0] if candidates else None


# --- converting annotations -----------------------------------------------------------------------------------------


def _record(
    root: Path, path: Path, split: Split, image: dict[str, Any], annotations: list[dict[str, Any]], context: _Context
) -> ImageRecord:
    record = ImageRecord(name=relative_name(root, path), split=split, path=path)
    try:
        width, height = _image_dimensions(image, path)
        labels = [_label(annotation, width, height, context) for annotation in annotations]
    except (FormatError, ImageError) as error:
        record.error = str(error)
        return record
    record.labels = [label for label in labels if label is not None]
    return record


def _image_dimensions(image: Mapping[str, Any], path: Path) -> tuple[float, float]:
    width, height = image.get("width"), image.get("height")
    if isinstance(width, int | float) and isinstance(height, int | float) and width > 0 and height > 0:
        return float(width), float(height)
    stored_width, stored_height = image_size(path)
    return float(stored_width), float(stored_height)


def _label(annotation: Mapping[str, Any], width: float, height: float, context: _Context) -> Label | None:
    where = f"annotation {annotation.get('id', '?')}"
    category = annotation.get("category_id")
    if category not in context.class_index:
        raise FormatError(f"{where} uses category {category!r}, which is not in categories")
    if annotation.get("iscrowd"):
        context.stats["crowd"] += 1
        return None
    if context.task == "segment" and isinstance(annotation.get("segmentation"), dict):
        context.stats["rle"] += 1
        return None
    bbox = _normalized_box(annotation.get("bbox"), width, height, where)
    if bbox is None:
        context.stats["empty"] += 1
        return None
    label = Label(context.class_index[category], bbox=bbox)
    if context.task == "segment":
        label.segments = _polygon(annotation.get("segmentation"), width, height, context.stats)
        if label.segments is None:
            context.stats["no_polygon"] += 1
    elif context.task == "pose":
        label.keypoints = _keypoints(annotation.get("keypoints"), width, height, context.keypoint_count, where)
    try:
        label.validate(kpt_shape=[context.keypoint_count, 3] if context.task == "pose" else None)
    except FormatError as error:
        raise FormatError(f"{where}: {error}") from None
    return label


def _normalized_box(value: object, width: float, height: float, where: str) -> tuple[float, float, float, float] | None:
    if not isinstance(value, list) or len(value) != 4:
        raise FormatError(f"{where}: bbox must be [x, y, width, height]")
    x, y, w, h = (as_number(v, f"{where} bbox") for v in value)
    x1, y1 = clip01(x / width), clip01(y / height)
    x2, y2 = clip01((x + w) / width), clip01((y + h) / height)
    if x2 <= x1 or y2 <= y1:
        return None
    return (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1


def _polygon(value: object, width: float, height: float, stats: Counter[str]) -> list[float] | None:
    if not isinstance(value, list):
        return None
    polygons = [p for p in value if isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0]
    if not polygons:
        return None
    if len(polygons) > 1:
        stats["merged"] += 1
    largest = max(polygons, key=lambda p: polygon_area([as_number(v, "segmentation") for v in p]))
    return [clip01(as_number(v, "segmentation") / (width if i % 2 == 0 else height)) for i, v in enumerate(largest)]


def _keypoints(value: object, width: float, height: float, count: int, where: str) -> list[float]:
    raw = [as_number(v, f"{where} keypoints") for v in value] if isinstance(value, list) else []
    if len(raw) % 3 or len(raw) > count * 3:
        raise FormatError(f"{where}: keypoints must be up to {count} x,y,v triples, got {len(raw)} values")
    raw += [0.0] * (count * 3 - len(raw))  # annotations may list fewer keypoints than their category
    scale = (width, height, 1.0)
    points = [raw[i] / scale[i % 3] for i in range(len(raw))]
    return [value if i % 3 == 2 else clip01(value) for i, value in enumerate(points)]
