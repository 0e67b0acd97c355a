"""Typed prediction results and their ultralytics-compatible summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from yolostack_engine.ops.boxes import xywhr_to_corners


@dataclass
class Prediction:
    """One image's predictions, in original-image pixels, like ultralytics' Results."""

    task: str
    names: dict[int, str]
    orig_shape: tuple[int, int]
    speed: dict[str, float] = field(default_factory=dict)
    boxes: np.ndarray | None = None  # (N, 6) xyxy, conf, cls
    obb: np.ndarray | None = None  # (N, 7) xywhr, conf, cls
    masks: np.ndarray | None = None  # (N, h, w) uint8 at network-input resolution
    segments: list[np.ndarray] | None = None  # N polygons (K, 2) float32 in original-image pixels
    keypoints: np.ndarray | None = None  # (N, K, 3) x, y, visibility
    probs: np.ndarray | None = None  # (C,) class probabilities

    def __len__(self) -> int:
        """Return the number of instances (or classes for classification)."""
        for data in (self.boxes, self.obb, self.probs):
            if data is not None:
                return len(data)
        return 0

    def summary(self, normalize: bool = False, decimals: int = 5) -> list[dict[str, Any]]:
        """Return the same list of dicts as ultralytics' Results.summary()."""
        if self.probs is not None:
            return self._classify_summary(decimals)
        data = self.obb if self.obb is not None else self.boxes
        if data is None or len(data) == 0:
            return []
        coords = (xywhr_to_corners(data[:, :5]) if self.obb is not None else data[:, :4]).reshape(len(data), -1, 2)
        h, w = self.orig_shape if normalize else (1, 1)
        results = []
        for i, (box, row) in enumerate(zip(coords.tolist(), data, strict=True)):
            class_id = int(row[-1])
            xy: dict[str, float] = {}
            for j, (x, y) in enumerate(box):
                xy[f"x{j + 1}"] = round(x / w, decimals)
                xy[f"y{j + 1}"] = round(y / h, decimals)
            result: dict[str, Any] = {
                "name": self.names[class_id],
                "class": class_id,
                "confidence": round(float(row[-2]), decimals),
                "box": xy,
            }
            if self.segments is not None:
                seg = self.segments[i]
                result["segments"] = _xy_lists(seg, w, h, decimals)
            if self.keypoints is not None:
                kpt = self.keypoints[i]
                result["keypoints"] = _xy_lists(kpt, w, h, decimals)
                if kpt.shape[-1] == 3:
                    result["keypoints"]["visible"] = kpt[:, 2].astype(float).round(decimals).tolist()
            results.append(result)
        return results

    def _classify_summary(self, decimals: int) -> list[dict[str, Any]]:
        """Return the top-5 classes like ultralytics' classification summary."""
        assert self.probs is not None
        top5 = (-self.probs).argsort(0)[:5].tolist()
        confs = self.probs[top5].tolist()
        return [
            {"name": self.names[int(c)], "class": int(c), "confidence": round(conf, decimals)}
            for c, conf in zip(top5, confs, strict=True)
        ]


def _xy_lists(points: np.ndarray, w: float, h: float, decimals: int) -> dict[str, list[float]]:
    """Return {"x": [...], "y": [...]} rounded like ultralytics (float64 rounding of the divided values)."""
    return {
        "x": (points[:, 0] / w).astype(float).round(decimals).tolist(),
        "y": (points[:, 1] / h).astype(float).round(decimals).tolist(),
    }
