"""Non-maximum suppression for axis-aligned and rotated boxes (ultralytics utils/nms.py, in NumPy)."""

from __future__ import annotations

import numpy as np

from yolostack_engine.ops.boxes import xywh_to_xyxy

MAX_NMS = 30000  # boxes kept for NMS, by confidence
MAX_WH = 7680  # per-class coordinate offset that keeps classes apart in one NMS pass


def non_max_suppression(
    prediction: np.ndarray,
    conf_thres: float = 0.25,
    iou_thres: float = 0.45,
    *,
    max_det: int = 300,
    nc: int = 0,
    rotated: bool = False,
    end2end: bool = False,
) -> list[np.ndarray]:
    """Filter (B, 4+nc+extra, N) predictions to per-image (n, 6+extra) rows: box, conf, cls, extra."""
    if end2end or prediction.shape[-1] == 6:
        return [pred[pred[:, 4] > conf_thres][:max_det].astype(np.float32) for pred in prediction]
    nc = nc or prediction.shape[1] - 4
    return [_nms_image(x.T, conf_thres, iou_thres, max_det, nc, rotated) for x in prediction]


def _nms_image(x: np.ndarray, conf_thres: float, iou_thres: float, max_det: int, nc: int, rotated: bool) -> np.ndarray:
    """Run NMS on one image's (N, 4+nc+extra) predictions."""
    scores = x[:, 4 : 4 + nc]
    x = x[scores.max(1) > conf_thres]
    if not len(x):
        return np.zeros((0, x.shape[1] + 2 - nc), dtype=np.float32)
    box = x[:, :4] if rotated else xywh_to_xyxy(x[:, :4])
    cls_scores = x[:, 4 : 4 + nc]
    j = cls_scores.argmax(1)
    conf = cls_scores[np.arange(len(x)), j]
    x = np.concatenate([box, conf[:, None], j[:, None].astype(np.float32), x[:, 4 + nc :]], 1)
    x = x[conf > conf_thres]
    if len(x) > MAX_NMS:
        x = x[np.argsort(-x[:, 4], kind="stable")[:MAX_NMS]]
    offset = x[:, 5:6] * MAX_WH
    if rotated:
        rboxes = np.concatenate([x[:, :2] + offset, x[:, 2:4], x[:, -1:]], 1)
        keep = fast_nms_rotated(rboxes, x[:, 4], iou_thres, max_det)
    else:
        keep = nms(x[:, :4] + offset, x[:, 4], iou_thres, max_det)
    result: np.ndarray = x[keep[:max_det]]
    return result


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int | None = None) -> np.ndarray:
    """Greedy NMS on xyxy boxes; returns kept indices by descending score (as torchvision.ops.nms).

    Greedy order means the first max_keep kept boxes do not depend on later ones, so stopping there is exact.
    """
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) != max_keep:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = (np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])).clip(0)
        h = (np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])).clip(0)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def fast_nms_rotated(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int | None = None, block: int = 1024
) -> np.ndarray:
    """Fast-NMS on xywhr boxes with probabilistic IoU, like ultralytics' TorchNMS.fast_nms(batch_probiou).

    A box is dropped when any higher-scored box (kept or not) overlaps it; columns are done in blocks so the
    full N x N matrix is never built and work stops once max_keep boxes are picked (exact, picks are in order).
    """
    order = np.argsort(-scores, kind="stable")
    ranked = boxes[order]
    picks: list[np.ndarray] = []
    kept = 0
    for start in range(0, len(ranked), block):
        stop = min(start + block, len(ranked))
        ious = batch_probiou(ranked[:stop], ranked[start:stop])
        ious[np.arange(stop)[:, None] >= np.arange(start, stop)[None, :]] = 0  # only higher-ranked rows count
        pick = start + np.nonzero((ious > iou_threshold).sum(0) <= 0)[0]
        picks.append(pick)
        kept += len(pick)
        if max_keep is not None and kept >= max_keep:
            break
    return order[np.concatenate(picks)] if picks else np.zeros(0, dtype=np.int64)


def _covariance(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the Gaussian covariance terms (a, b, c) of xywhr boxes."""
    a, b = boxes[:, 2] ** 2 / 12, boxes[:, 3] ** 2 / 12
    cos, sin = np.cos(boxes[:, 4]), np.sin(boxes[:, 4])
    return a * cos**2 + b * sin**2, a * sin**2 + b * cos**2, (a - b) * cos * sin


def batch_probiou(obb1: np.ndarray, obb2: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Return the (N, M) probabilistic IoU of two sets of xywhr boxes."""
    x1, y1 = obb1[:, 0:1], obb1[:, 1:2]
    x2, y2 = obb2[None, :, 0], obb2[None, :, 1]
    a1, b1, c1 = (v[:, None] for v in _covariance(obb1))
    a2, b2, c2 = (v[None] for v in _covariance(obb2))
    denom = (a1 + a2) * (b1 + b2) - (c1 + c2) ** 2
    t1 = ((a1 + a2) * (y1 - y2) ** 2 + (b1 + b2) * (x1 - x2) ** 2) / (denom + eps) * 0.25
    t2 = ((c1 + c2) * (x2 - x1) * (y1 - y2)) / (denom + eps) * 0.5
    det = (a1 * b1 - c1**2).clip(0) * (a2 * b2 - c2**2).clip(0)
    t3 = np.log(denom / (4 * np.sqrt(det) + eps) + eps) * 0.5
    bd = (t1 + t2 + t3).clip(eps, 100.0)
    hd: np.ndarray = np.sqrt(1.0 - np.exp(-bd) + eps)
    return 1 - hd
