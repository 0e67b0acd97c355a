"""Instance segmentation: detection plus prototype masks and their polygons."""

from __future__ import annotations

import numpy as np

from yolostack_engine.models.base import PreparedImage
from yolostack_engine.models.detect import DetectModel
from yolostack_engine.ops.boxes import scale_boxes, scale_coords
from yolostack_engine.ops.masks import masks_to_segments, process_mask
from yolostack_engine.results import Prediction


class SegmentModel(DetectModel):
    """Boxes, masks at network-input resolution and polygons in image pixels, as ultralytics' SegmentationPredictor."""

    task = "segment"

    def build(self, pred: np.ndarray, item: PreparedImage, outputs: list[np.ndarray], index: int) -> Prediction:
        """Assemble masks for one image, dropping rows whose mask came out empty (as ultralytics does)."""
        if not len(pred):
            pred[:, :4] = scale_boxes(item.input_shape, pred[:, :4], item.orig_shape)
            return Prediction(self.task, self.info.names, item.orig_shape, boxes=pred[:, :6])
        masks = process_mask(outputs[1][index], pred[:, 6:], pred[:, :4], item.input_shape)
        pred[:, :4] = scale_boxes(item.input_shape, pred[:, :4], item.orig_shape)
        keep = masks.max((1, 2)) > 0
        if not keep.all():
            pred, masks = pred[keep], masks[keep]
        segments = [scale_coords(item.input_shape, s, item.orig_shape) for s in masks_to_segments(masks)]
        return Prediction(
            self.task, self.info.names, item.orig_shape, boxes=pred[:, :6], masks=masks, segments=segments
        )
