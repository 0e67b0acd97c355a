"""Oriented boxes: rotated NMS, then xywhr scaled back to the original image."""

from __future__ import annotations

import numpy as np

from yolostack_engine.models.base import PreparedImage
from yolostack_engine.models.detect import DetectModel
from yolostack_engine.ops.boxes import scale_boxes
from yolostack_engine.results import Prediction


class OBBModel(DetectModel):
    """Rotated boxes (xywhr, conf, cls), as ultralytics' OBBPredictor."""

    task = "obb"

    def build(self, pred: np.ndarray, item: PreparedImage, outputs: list[np.ndarray], index: int) -> Prediction:
        """Scale one image's rotated boxes (the angle is the last column)."""
        rboxes = np.concatenate([pred[:, :4], pred[:, -1:]], 1)
        rboxes[:, :4] = scale_boxes(item.input_shape, rboxes[:, :4], item.orig_shape, xywh=True)
        obb = np.concatenate([rboxes, pred[:, 4:6]], 1)
        return Prediction(self.task, self.info.names, item.orig_shape, obb=obb)
