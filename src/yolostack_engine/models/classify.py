"""Image classification: resize + centre crop, class probabilities out."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from yolostack_engine.models.base import PreparedImage, ServedModel
from yolostack_engine.ops.classify import classify_resize_crop
from yolostack_engine.ops.letterbox import check_imgsz, to_tensor
from yolostack_engine.options import PredictOptions
from yolostack_engine.results import Prediction


class ClassifyModel(ServedModel):
    """Top-class probabilities, as ultralytics' ClassificationPredictor."""

    task = "classify"

    def pre_process(self, image: np.ndarray, options: PredictOptions) -> PreparedImage:
        """Resize the short side and centre-crop to imgsz, then RGB 0-1 (ultralytics' classify_transforms)."""
        start = time.perf_counter()
        size = check_imgsz(options.imgsz, self.info.stride)
        tensor = to_tensor(classify_resize_crop(image, size))
        elapsed = (time.perf_counter() - start) * 1000
        return PreparedImage(tensor, (image.shape[0], image.shape[1]), None, elapsed)

    def post_process(
        self, outputs: list[np.ndarray], prepared: Sequence[PreparedImage], options: PredictOptions
    ) -> list[Prediction]:
        """Wrap each image's probability vector."""
        probs = outputs[0].astype(np.float32).reshape(len(prepared), -1)
        return [
            Prediction(self.task, self.info.names, item.orig_shape, probs=p.copy())
            for p, item in zip(probs, prepared, strict=True)
        ]
