"""Box conversions and rescaling from network-input to original-image pixels (ultralytics utils/ops.py)."""

from __future__ import annotations

import numpy as np


def xywh_to_xyxy(x: np.ndarray) -> np.ndarray:
    """Convert (..., 4) centre-size boxes to corner boxes."""
    y = np.empty_like(x)
    xy, half = x[..., :2], x[..., 2:4] / 2
    y[..., :2] = xy - half
    y[..., 2:4] = xy + half
    return y


def clip_boxes(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Clip xyxy boxes in place to an (h, w) image."""
    h, w = shape[:2]
    boxes[..., [0, 2]] = boxes[..., [0, 2]].clip(0, w)
    boxes[..., [1, 3]] = boxes[..., [1, 3]].clip(0, h)
    return boxes


def clip_coords(coords: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Clip (..., 2+) points in place to an (h, w) image."""
    h, w = shape[:2]
    coords[..., 0] = coords[..., 0].clip(0, w)
    coords[..., 1] = coords[..., 1].clip(0, h)
    return coords


def _gain_pad(input_shape: tuple[int, int], orig_shape: tuple[int, int]) -> tuple[float, float, int, int]:
    """Recompute the letterbox gain and padding the way ultralytics' scale_boxes does (ratio_pad=None)."""
    gain = min(input_shape[0] / orig_shape[0], input_shape[1] / orig_shape[1])
    new_h, new_w = (max(round(x * gain), 1) for x in orig_shape[:2])
    pad_x = round((input_shape[1] - new_w) / 2 - 0.1)
    pad_y = round((input_shape[0] - new_h) / 2 - 0.1)
    return new_w / orig_shape[1], new_h / orig_shape[0], pad_x, pad_y


def scale_boxes(
    input_shape: tuple[int, int], boxes: np.ndarray, orig_shape: tuple[int, int], *, xywh: bool = False
) -> np.ndarray:
    """Map boxes in place from the letterboxed input back to the original image (clipped unless xywh)."""
    gain_x, gain_y, pad_x, pad_y = _gain_pad(input_shape, orig_shape)
    boxes[..., 0] -= pad_x
    boxes[..., 1] -= pad_y
    if not xywh:
        boxes[..., 2] -= pad_x
        boxes[..., 3] -= pad_y
    boxes[..., 0] /= gain_x
    boxes[..., 1] /= gain_y
    boxes[..., 2] /= gain_x
    boxes[..., 3] /= gain_y
    return boxes if xywh else clip_boxes(boxes, orig_shape)


def scale_coords(input_shape: tuple[int, int], coords: np.ndarray, orig_shape: tuple[int, int]) -> np.ndarray:
    """Map (..., 2+) points in place from the letterboxed input back to the original image, clipped."""
    gain_x, gain_y, pad_x, pad_y = _gain_pad(input_shape, orig_shape)
    coords[..., 0] -= pad_x
    coords[..., 1] -= pad_y
    coords[..., 0] /= gain_x
    coords[..., 1] /= gain_y
    return clip_coords(coords, orig_shape)


def xywhr_to_corners(xywhr: np.ndarray) -> np.ndarray:
    """Return (N, 4, 2) corners of rotated boxes in ultralytics' xywhr2xyxyxyxy order."""
    ctr = xywhr[..., :2]
    w, h, angle = (xywhr[..., i : i + 1] for i in range(2, 5))
    cos_value, sin_value = np.cos(angle), np.sin(angle)
    vec1 = np.concatenate([w / 2 * cos_value, w / 2 * sin_value], -1)
    vec2 = np.concatenate([-h / 2 * sin_value, h / 2 * cos_value], -1)
    return np.stack([ctr + vec1 + vec2, ctr + vec1 - vec2, ctr - vec1 - vec2, ctr - vec1 + vec2], -2)
