"""Object detection: NMS, then boxes scaled back to the original image."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from yolostack_engine.models.base import PreparedImage, ServedModel
from yolostack_engine.ops.boxes import scale_boxes
from yolostack_engine.ops.nms import non_max_suppression
from yolostack_engine.options import PredictOptions
from yolostack_engine.results import Prediction


class DetectModel(ServedModel):
    """Axis-aligned boxes, as ultralytics' DetectionPredictor."""

    task = "detect"

    def post_process(
        self, outputs: list[np.ndarray], prepared: Sequence[PreparedImage], options: PredictOptions
    ) -> list[Prediction]:
        """Run NMS and build one Prediction per image."""
        rows = self.suppress(outputs[0], options)
        return [self.build(pred, item, outputs, i) for i, (pred, item) in enumerate(zip(rows, prepared, strict=True))]

    def suppress(self, raw: np.ndarray, options: PredictOptions) -> list[np.ndarray]:
        """Apply NMS (or the end-to-end confidence filter) to a batch of raw predictions."""
        return non_max_suppression(
            raw,
            options.conf,
            options.iou,
            max_det=options.max_det,
            nc=0 if self.task == "detect" else len(self.info.names),
            rotated=self.task == "obb",
            end2end=self.info.end2end,
        )

    def build(self, pred: np.ndarray, item: PreparedImage, outputs: list[np.ndarray], index: int) -> Prediction:
        """Scale one image's kept rows and wrap them in a Prediction."""
        pred[:, :4] = scale_boxes(item.input_shape, pred[:, :4], item.orig_shape)
        return Prediction(self.task, self.info.names, item.orig_shape, boxes=pred[:, :6])
