"""Ultralytics YOLO datasets: a data.yaml naming the classes and splits, images/ and labels/ text files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from yolostack.datasets.formats.paths import inside, is_image, is_other_image, relative_name, walk_files
from yolostack.datasets.formats.records import SPLITS, FormatError, ImageRecord, ParsedDataset, Split, Task, as_task
from yolostack.datasets.formats.yolo_labels import (
    LineShapes,
    infer_task,
    label_path,
    max_class_id,
    parse_label_lines,
    read_label_lines,
)

MAX_YAML_BYTES = 1024 * 1024
YAML_SUFFIXES = (".yaml", ".yml")
# Folder names for each split when data.yaml does not say where the images are (Roboflow writes "valid").
_SPLIT_FOLDERS: dict[Split, tuple[str, ...]] = {
    "train": ("train",),
    "val": ("val", "valid", "validation"),
    "test": ("test",),
}

SplitImages = list[tuple[Split, Path]]
Resolve = Callable[[str, Path | None], Path | None]


def find_data_yaml(root: Path) -> Path | None:
    """The dataset's YAML up to 2 folders deep: data.yaml first, then the shallowest YAML with names or splits."""
    candidates = [p for p in walk_files(root, max_depth=2) if p.suffix.lower() in YAML_SUFFIXES]
    candidates.sort(key=lambda p: (p.stem.lower() != "data", len(p.relative_to(root).parts), p.as_posix()))
    for candidate in candidates:
        if candidate.stat().st_size > MAX_YAML_BYTES:
            continue
        try:
            config = load_yaml(candidate)
        except FormatError:
            if candidate.stem.lower() == "data":  # the dataset's own YAML is broken: say so rather than guess
                raise
            continue
        if any(key in config for key in ("names", "nc", "train", "val")):
            return candidate
    return None


def load_yaml(path: Path) -> dict[str, Any]:
    """The YAML mapping; raises FormatError when it is not valid YAML or not a mapping."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise FormatError(f"{path.name} is not valid YAML ({error})") from error
    if not isinstance(config, dict):
        raise FormatError(f"{path.name} must be a YAML mapping with names and train/val paths")
    return config


def parse_yolo(root: Path) -> ParsedDataset:
    """Read a YOLO detect, segment, pose or OBB dataset; each bad label file sets only that image's error."""
    root = root.resolve()
    warnings: list[str] = []
    yaml_path = find_data_yaml(root)
    config = load_yaml(yaml_path) if yaml_path else {}
    if yaml_path is None:
        warnings.append("no data.yaml found; class names are class0, class1, ...")
    base = _base_dir(root, yaml_path, config)
    kpt_shape = _kpt_shape(config)
    images = _split_images(root, base, config, warnings)
    if not images:
        raise FormatError("no images found: add images under images/train and images/val, or list them in data.yaml")
    label_files = [label_path(root, image) for _, image in images]
    shapes = LineShapes()
    for label_file in label_files:
        lines = read_label_lines(label_file)
        if isinstance(lines, list):
            shapes.add(lines)
    task = _task(config, shapes, kpt_shape)
    names = _names(config)
    if names is None:
        names = _placeholder_names(label_files)
        if yaml_path is not None:
            warnings.append("data.yaml has no names; classes are named class0, class1, ...")
    num_classes = max(names, default=-1) + 1 if yaml_path is not None else None
    records = [
        _record(root, split, image, label_file, task, kpt_shape, num_classes)
        for (split, image), label_file in zip(images, label_files, strict=True)
    ]
    return ParsedDataset(task, names, kpt_shape, _flip_idx(config, kpt_shape, warnings), records, warnings)


def _record(
    root: Path,
    split: Split,
    image: Path,
    label_file: Path,
    task: Task,
    kpt_shape: list[int] | None,
    num_classes: int | None,
) -> ImageRecord:
    record = ImageRecord(name=relative_name(root, image), split=split, path=image)
    lines = read_label_lines(label_file)
    if isinstance(lines, str):
        record.error = lines
    else:
        record.labels, record.error = parse_label_lines(lines, task, kpt_shape, num_classes)
    return record


def _task(config: dict[str, Any], shapes: LineShapes, kpt_shape: list[int] | None) -> Task:
    task = as_task(config["task"]) if "task" in config else infer_task(shapes, kpt_shape)
    if task == "classify":
        raise FormatError("a YOLO data.yaml cannot describe a classify dataset; upload class folders instead")
    if task == "pose" and kpt_shape is None:
        raise FormatError("a pose dataset needs kpt_shape in data.yaml, e.g. kpt_shape: [17, 3]")
    return task


# --- data.yaml keys -------------------------------------------------------------------------------------------------


def _names(config: dict[str, Any]) -> dict[int, str] | None:
    names = config.get("names")
    if names is None:
        count = config.get("nc")
        return {i: f"class{i}" for i in range(count)} if isinstance(count, int) and count > 0 else None
    if isinstance(names, list):
        named = dict(enumerate(str(name) for name in names))
    elif isinstance(names, dict):
        named = {_class_key(key): str(name) for key, name in names.items()}
    else:
        raise FormatError("data.yaml names must be a list or a mapping of class index to name")
    return {i: named.get(i, f"class{i}") for i in range(max(named, default=-1) + 1)}


def _class_key(key: object) -> int:
    try:
        value = int(str(key))
    except ValueError:
        raise FormatError(f"data.yaml names key {key!r} is not a class index") from None
    if value < 0:
        raise FormatError(f"data.yaml names key {key!r} is negative")
    return value


def _placeholder_names(label_files: list[Path]) -> dict[int, str]:
    lines = (read_label_lines(path) for path in label_files)
    highest = max_class_id(found for found in lines if isinstance(found, list))
    return {i: f"class{i}" for i in range(highest + 1)}


def _kpt_shape(config: dict[str, Any]) -> list[int] | None:
    value = config.get("kpt_shape")
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or value[0] < 1
        or value[1] not in (2, 3)
    ):
        raise FormatError(f"data.yaml kpt_shape must be [keypoints, 2 or 3], got {value!r}")
    return [value[0], value[1]]


def _flip_idx(config: dict[str, Any], kpt_shape: list[int] | None, warnings: list[str]) -> list[int] | None:
    value = config.get("flip_idx")
    if value is None or kpt_shape is None:
        return None
    valid = isinstance(value, list) and len(value) == kpt_shape[0]
    if not valid or not all(isinstance(v, int) and 0 <= v < kpt_shape[0] for v in value):
        warnings.append(f"data.yaml flip_idx must list {kpt_shape[0]} keypoint indices; ignored")
        return None
    return list(value)


# --- finding the images of each split -------------------------------------------------------------------------------


def _base_dir(root: Path, yaml_path: Path | None, config: dict[str, Any]) -> Path:
    # data.yaml `path` is the dataset root relative to the YAML; an absolute one points at the uploader's disk.
    if yaml_path is None:
        return root
    folder = yaml_path.parent
    declared = config.get("path")
    if isinstance(declared, str) and declared:
        candidate = inside(root, folder / declared)
        if candidate is not None and candidate.is_dir():
            return candidate
    return folder


def _split_images(root: Path, base: Path, config: dict[str, Any], warnings: list[str]) -> SplitImages:
    resolve = _resolver(root, base)
    sources = {split: _declared_sources(config.get(split)) for split in SPLITS}
    if not any(sources.values()):
        return _dedupe(_conventional_images(root, base, warnings), warnings)
    images: SplitImages = []
    for split, entries in sources.items():
        for entry in entries:
            source = resolve(entry, None)
            if source is None:
                warnings.append(f"data.yaml {split}: {entry!r} was not found in the upload")
                continue
            images.extend((split, image) for image in _source_images(root, source, resolve, warnings))
    if not images:
        images = _conventional_images(root, base, warnings)
    return _dedupe(images, warnings)


def _declared_sources(value: object) -> list[str]:
    if isinstance(value, str) and value.strip():
        return [value.strip()]
    if isinstance(value, list):
        return [v.strip() for v in value if isinstance(v, str) and v.strip()]
    return []


def _resolver(root: Path, base: Path) -> Resolve:
    """Resolve a path from data.yaml or a list file to something inside the upload, or None."""

    def resolve(text: str, near: Path | None) -> Path | None:
        relative = PurePosixPath(text.replace("\\", "/"))
        parts = [part for part in relative.parts if part not in ("/", ".", "..")]
        candidates: list[Path] = []
        if not relative.is_absolute():
            candidates += [folder / relative for folder in (near, base, root) if folder is not None]
            if text.startswith("../"):  # ultralytics retries a ../ path from the dataset root itself
                candidates.append(base / text[3:])
        # Absolute or moved paths: the longest tail of 2+ parts that exists in the upload
        # (/content/ds/images/train -> images/train); one part alone ("images") would match too much.
        candidates += [folder.joinpath(*parts[i:]) for i in range(1, len(parts) - 1) for folder in (base, root)]
        for candidate in candidates:
            found = inside(root, candidate)
            if found is not None and found.exists():
                return found
        return None

    return resolve


def _source_images(root: Path, source: Path, resolve: Resolve, warnings: list[str]) -> list[Path]:
    if source.is_dir():
        return _folder_images(source, warnings)
    if is_image(source):
        return [source]
    if source.suffix.lower() != ".txt":
        warnings.append(f"{relative_name(root, source)} is neither a folder of images nor a .txt list; ignored")
        return []
    found, missing = [], 0
    for line in source.read_text(encoding="utf-8-sig", errors="replace").splitlines():
        entry = line.strip()
        if not entry:
            continue
        near = source.parent if entry.startswith("./") else None
        image = resolve(entry[2:] if near else entry, near)
        if image is not None and image.is_file() and is_image(image):
            found.append(image)
        else:
            missing += 1
    if missing:
        warnings.append(f"{relative_name(root, source)}: {missing} listed image(s) were not found in the upload")
    return found


def _folder_images(folder: Path, warnings: list[str]) -> list[Path]:
    files = list(walk_files(folder))
    others = sum(1 for path in files if is_other_image(path))
    if others:
        warnings.append(f"{others} image(s) in an unsupported format skipped; use JPEG, PNG, BMP, WebP or TIFF")
    return [path for path in files if is_image(path)]


def _conventional_images(root: Path, base: Path, warnings: list[str]) -> SplitImages:
    images: SplitImages = []
    for split, names in _SPLIT_FOLDERS.items():
        for name in names:
            for folder in (base / "images" / name, base / name / "images"):
                if folder.is_dir() and inside(root, folder):
                    images.extend((split, image) for image in _folder_images(folder, warnings))
    if images:
        return images
    folder = base / "images" if (base / "images").is_dir() else base
    images = [("train", image) for image in _folder_images(folder, warnings)]
    if images:
        warnings.append("no train/val split folders found; every image is in train")
    return images


def _dedupe(images: SplitImages, warnings: list[str]) -> SplitImages:
    seen: set[Path] = set()
    unique: SplitImages = []
    for split, image in images:
        if image not in seen:
            seen.add(image)
            unique.append((split, image))
    if len(unique) < len(images):
        warnings.append(f"{len(images) - len(unique)} image(s) listed in more than one split kept in the first only")
    return unique
