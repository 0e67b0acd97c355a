"""Tiny synthetic datasets written with Pillow for the format parser tests."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from PIL import Image, ImageDraw


def make_image(path: Path, size: tuple[int, int] = (32, 32), image_format: str | None = None) -> Path:
    """A small picture with a shape on it, in the format its extension names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, (40, 90, 160))
    ImageDraw.Draw(image).ellipse((2, 2, size[0] // 2, size[1] // 2), fill=(250, 200, 30))
    image.save(path, image_format)
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_yaml(path: Path, data: Mapping[str, Any]) -> Path:
    return write_text(path, yaml.safe_dump(dict(data), sort_keys=False))


def write_json(path: Path, data: Any) -> Path:
    return write_text(path, json.dumps(data))


def write_ndjson(path: Path, lines: Iterable[Mapping[str, Any]]) -> Path:
    return write_text(path, "".join(json.dumps(dict(line)) + "\n" for line in lines))


def yolo_dataset(
    root: Path,
    labels: Mapping[str, str | None],
    names: list[str] | dict[int, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """images/<split>/<stem>.jpg with labels/<split>/<stem>.txt for every `"<split>/<stem>": "label text"` entry."""
    for key, text in labels.items():
        make_image(root / "images" / f"{key}.jpg")
        if text is not None:
            write_text(root / "labels" / f"{key}.txt", text)
    config: dict[str, Any] = {"path": ".", "train": "images/train", "val": "images/val"}
    if names is not None:
        config["names"] = names
    config.update(extra or {})
    write_yaml(root / "data.yaml", config)
    return root
