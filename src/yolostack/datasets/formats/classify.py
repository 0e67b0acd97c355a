"""Classification datasets: one folder per class, optionally inside train/, val/ and test/ folders."""

from __future__ import annotations

from pathlib import Path

from yolostack.datasets.formats.paths import is_image, is_other_image, relative_name, subdirs, unwrap, walk_files
from yolostack.datasets.formats.records import FormatError, ImageRecord, Label, ParsedDataset, Split

SPLIT_FOLDERS: dict[str, Split] = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
# Folders that mean a YOLO or COCO layout, never a class.
NOT_CLASSES = frozenset({"images", "labels", "annotations"})


def split_folders(root: Path) -> dict[Split, Path]:
    """train/, val/ (or valid/) and test/ folders directly under root."""
    found: dict[Split, Path] = {}
    for folder in subdirs(root):
        split = SPLIT_FOLDERS.get(folder.name.lower())
        if split is not None and split not in found:
            found[split] = folder
    return found


def looks_like_classify(root: Path) -> bool:
    """Whether root holds class folders of images, directly or in split folders, and no YOLO/COCO folders."""
    root = unwrap(root, frozenset(SPLIT_FOLDERS))
    splits = split_folders(root)
    parents = list(splits.values()) if splits else [root]
    classes = [folder for parent in parents for folder in subdirs(parent)]
    if not classes or any(folder.name.lower() in NOT_CLASSES for folder in classes):
        return False
    return any(is_image(path) for folder in classes for path in walk_files(folder))


def parse_classify(root: Path) -> ParsedDataset:
    """Read class folders; class names are the sorted folder names and each image gets one label."""
    root = unwrap(root.resolve(), frozenset(SPLIT_FOLDERS))
    splits = split_folders(root)
    layout: dict[Split, Path] = splits or {"train": root}
    warnings: list[str] = []
    class_folders = {split: subdirs(parent) for split, parent in layout.items()}
    names = sorted({folder.name for folders in class_folders.values() for folder in folders})
    if not names:
        raise FormatError("no class folders found: put each class's images in a folder named after the class")
    class_ids = {name: index for index, name in enumerate(names)}
    images: list[ImageRecord] = []
    skipped = 0
    for split, folders in class_folders.items():
        skipped += sum(1 for path in layout[split].iterdir() if path.is_file() and is_image(path))
        for folder in folders:
            images += _class_images(root, folder, split, class_ids[folder.name], warnings)
    if skipped:
        warnings.append(f"{skipped} image(s) outside any class folder skipped")
    return ParsedDataset("classify", dict(enumerate(names)), None, None, images, warnings)


def _class_images(root: Path, folder: Path, split: Split, class_id: int, warnings: list[str]) -> list[ImageRecord]:
    files = list(walk_files(folder))
    others = sum(1 for path in files if is_other_image(path))
    if others:
        warnings.append(f"{others} image(s) in {relative_name(root, folder)} are in an unsupported format; skipped")
    return [
        ImageRecord(name=relative_name(root, path), split=split, path=path, labels=[Label(class_id)])
        for path in files
        if is_image(path)
    ]
