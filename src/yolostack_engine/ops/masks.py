"""Instance masks from prototypes and mask polygons (ultralytics process_mask, masks2segments)."""

from __future__ import annotations

import cv2
import numpy as np

CV_MAX_CHANNELS = 64  # cv2.resize takes a limited channel count (128 in OpenCV 5); resize masks in chunks


def process_mask(protos: np.ndarray, coeffs: np.ndarray, boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Return (N, h, w) uint8 masks: coefficients x prototypes, upsampled to shape, binarized, cropped to boxes."""
    c, mh, mw = protos.shape
    if not len(coeffs):
        return np.zeros((0, *shape), dtype=np.uint8)
    masks = (coeffs.astype(np.float32) @ protos.astype(np.float32).reshape(c, -1)).reshape(-1, mh, mw)
    upsampled = np.empty((len(masks), *shape), dtype=np.float32)
    for start in range(0, len(masks), CV_MAX_CHANNELS):
        chunk = masks[start : start + CV_MAX_CHANNELS].transpose(1, 2, 0)
        resized = cv2.resize(chunk, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        upsampled[start : start + CV_MAX_CHANNELS] = resized.reshape(*shape, -1).transpose(2, 0, 1)
    return crop_mask((upsampled > 0).astype(np.uint8), boxes)


def crop_mask(masks: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Zero (N, h, w) masks in place outside their xyxy boxes (pixel centres at integer coordinates)."""
    _, h, w = masks.shape
    x1, y1, x2, y2 = (boxes[:, i, None, None] for i in range(4))
    cols = np.arange(w, dtype=boxes.dtype)[None, None, :]
    rows = np.arange(h, dtype=boxes.dtype)[None, :, None]
    masks *= ((cols >= x1) & (cols < x2)).astype(np.uint8)
    masks *= ((rows >= y1) & (rows < y2)).astype(np.uint8)
    return masks


def masks_to_segments(masks: np.ndarray) -> list[np.ndarray]:
    """Return one (K, 2) float32 polygon per mask, all external contours merged, as ultralytics' masks2segments."""
    segments = []
    for mask in np.ascontiguousarray(masks.astype(np.uint8)):
        contours = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
        if not contours:
            segments.append(np.zeros((0, 2), dtype=np.float32))
            continue
        parts = [c.reshape(-1, 2) for c in contours]
        merged = np.concatenate(merge_multi_segment(parts)) if len(parts) > 1 else parts[0]
        segments.append(merged.astype(np.float32))
    return segments


def _min_index(arr1: np.ndarray, arr2: np.ndarray) -> tuple[int, int]:
    """Return the index pair of the closest points of two point sets."""
    dis = ((arr1[:, None, :] - arr2[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(np.argmin(dis, axis=None), dis.shape)
    return int(i), int(j)


def merge_multi_segment(segments: list[np.ndarray]) -> list[np.ndarray]:
    """Join several contours into one path through their closest points (ultralytics' merge_multi_segment)."""
    segments = [np.asarray(s).reshape(-1, 2) for s in segments]
    idx_list: list[list[int]] = [[] for _ in segments]
    for i in range(1, len(segments)):
        idx1, idx2 = _min_index(segments[i - 1], segments[i])
        idx_list[i - 1].append(idx1)
        idx_list[i].append(idx2)
    last = len(idx_list) - 1
    out = []
    for i, idx in enumerate(idx_list):
        if len(idx) == 2 and idx[0] > idx[1]:
            idx = [len(segments[i]) - 1 - x for x in idx]
            segments[i] = segments[i][::-1, :]
        segments[i] = np.roll(segments[i], -idx[0], axis=0)
        segments[i] = np.concatenate([segments[i], segments[i][:1]])
        if i in {0, last}:
            out.append(segments[i])
        else:
            out.append(segments[i][: idx[1] - idx[0] + 1])
    for i in range(last, -1, -1):
        if i not in {0, last}:
            out.append(segments[i][abs(idx_list[i][1] - idx_list[i][0]) :])
    return out
