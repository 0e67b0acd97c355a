"""Pose estimation: detection boxes plus keypoints."""

from __future__ import annotations

import numpy as np

from yolostack_engine.models.base import PreparedImage
from yolostack_engine.models.detect import DetectModel
from yolostack_engine.ops.boxes import scale_boxes, scale_coords
from yolostack_engine.results import Prediction


class PoseModel(DetectModel):
    """Boxes and (K, 2|3) keypoints, as ultralytics' PosePredictor."""

    task = "pose"

    def build(self, pred: np.ndarray, item: PreparedImage, outputs: list[np.ndarray], index: int) -> Prediction:
        """Scale boxes and keypoints of one image."""
        kpt_shape = self.info.kpt_shape or (17, 3)
        keypoints = pred[:, 6:].reshape(len(pred), *kpt_shape).copy()
        keypoints = scale_coords(item.input_shape, keypoints, item.orig_shape)
        pred[:, :4] = scale_boxes(item.input_shape, pred[:, :4], item.orig_shape)
        return Prediction(self.task, self.info.names, item.orig_shape, boxes=pred[:, :6], keypoints=keypoints)
