"""Small pure helpers on flat coordinate lists shared by the parsers."""

from __future__ import annotations

from collections.abc import Sequence


def clip01(value: float) -> float:
    """Clamp a normalized coordinate into 0..1."""
    return min(max(value, 0.0), 1.0)


def box_of_points(points: Sequence[float], dims: int = 2) -> tuple[float, float, float, float]:
    """The cx, cy, w, h box around flat x,y (dims=2) or x,y,v (dims=3) points, as ultralytics segments2boxes."""
    xs = points[0::dims]
    ys = points[1::dims]
    x1, x2, y1, y2 = min(xs), max(xs), min(ys), max(ys)
    return (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1


def polygon_area(points: Sequence[float]) -> float:
    """Absolute shoelace area of a flat x1, y1, x2, y2, ... polygon."""
    xs = points[0::2]
    ys = points[1::2]
    count = len(xs)
    twice = sum(xs[i] * ys[(i + 1) % count] - xs[(i + 1) % count] * ys[i] for i in range(count))
    return abs(twice) / 2


def box_corners(bbox: Sequence[float]) -> list[float]:
    """The four corners x1, y1, ..., x4, y4 of a cx, cy, w, h box, clockwise from top-left."""
    cx, cy, w, h = bbox
    x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    return [x1, y1, x2, y1, x2, y2, x1, y2]
