"""Served-model directories built from ultralytics' yaml files (no downloads), once per session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

YAMLS = {
    "detect": "yolo11n.yaml",
    "segment": "yolo11n-seg.yaml",
    "pose": "yolo11n-pose.yaml",
    "obb": "yolo11n-obb.yaml",
    "classify": "yolo11n-cls.yaml",
    "confident": "yolo11n.yaml",
}
# Set to a folder to keep the built models between runs (they depend only on the ultralytics version).
CACHE_ENV = "YOLOSTACK_ENGINE_TEST_MODELS"


def asset(name: str) -> np.ndarray:
    """Return one of ultralytics' bundled sample images as BGR uint8."""
    from ultralytics.utils import ASSETS

    image = cv2.imread(str(ASSETS / name))
    assert image is not None
    return image


def _calibrate(model: Any, class_bias: float) -> None:
    """Give a random-init network lively, varied outputs: BN statistics from real images, a spread-out class head.

    Fresh networks' activations vanish layer by layer (BN running stats are identity), so every anchor scores the
    same; BN statistics recomputed on two images and a tempered class head give distinct confidences.
    """
    import torch

    net = model.model
    torch.manual_seed(0)
    images = [cv2.resize(asset(n), (256, 256))[..., ::-1] for n in ("bus.jpg", "zidane.jpg")]
    batch = torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).copy()).float() / 255
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration passes
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(batch)
    net.eval()
    for seq in getattr(net.model[-1], "cv3", []):
        seq[-1].weight.data *= 0.02  # tempered logits: confidences spread around sigmoid(class_bias)
        seq[-1].bias.data[:] = class_bias


def _export(model: Any, directory: Path) -> Path:
    """Save model.pt and a dynamic, simplified model.onnx into directory, as the server's converter does."""
    from ultralytics import YOLO  # type: ignore[attr-defined]

    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / "model.pt")
    exported = YOLO(directory / "model.pt").export(format="onnx", dynamic=True, simplify=True, verbose=False)
    shutil.move(str(exported), directory / "model.onnx")
    return directory


def build_random(kind: str, directory: Path) -> Path:
    """Build a calibrated random-weight model of one task ("confident": a detector with high scores)."""
    import torch
    from ultralytics import YOLO  # type: ignore[attr-defined]

    torch.manual_seed(0)  # the same random network every session, so the tests see the same detections
    model = YOLO(YAMLS[kind])
    _calibrate(model, class_bias=1.0 if kind == "confident" else -2.0)
    return _export(model, directory)


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return where served-model directories are built (a persistent cache when the env var says so)."""
    cached = os.environ.get(CACHE_ENV)
    if cached:
        Path(cached).mkdir(parents=True, exist_ok=True)
        return Path(cached)
    return tmp_path_factory.mktemp("served-models")


@pytest.fixture(scope="session")
def model_dir(model_root: Path) -> Callable[[str], Path]:
    """Return a builder kind -> served-model directory ("detect", ..., "classify", "confident"), built once."""

    def get(kind: str) -> Path:
        directory = model_root / kind
        if not (directory / "model.onnx").is_file():
            shutil.rmtree(directory, ignore_errors=True)
            build_random(kind, directory)
        return directory

    return get


@pytest.fixture(scope="session")
def bus() -> np.ndarray:
    """Return bus.jpg (1080x810) as BGR."""
    return asset("bus.jpg")


@pytest.fixture(scope="session")
def zidane() -> np.ndarray:
    """Return zidane.jpg (720x1280) as BGR."""
    return asset("zidane.jpg")
