"""One predict request from its media and parameters to rendered ``images[]``: shared by the API's predict routes and by
deployment replicas, which run the same parsing, decoding and rendering in their own processes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from starlette.datastructures import UploadFile

from yolostack.config import InferenceSettings
from yolostack.inference.inputs import next_frames, open_input, video_frames
from yolostack.inference.params import PredictParams
from yolostack_engine import Prediction, PredictOptions

Predictor = Callable[[list[np.ndarray], PredictOptions], Awaitable[list[Prediction]]]


async def predict_media(
    source: str | None,
    upload: UploadFile | None,
    settings: InferenceSettings,
    predict: Predictor,
    params: PredictParams,
) -> list[dict[str, Any]]:
    """``images[]``: one entry per still image or strided video frame, in order (``params`` parsed first,
    so that bad parameters are refused before the model is looked at)."""
    options = PredictOptions(imgsz=params.imgsz, conf=params.conf, iou=params.iou)
    images: list[dict[str, Any]] = []
    async with open_input(source, upload, settings) as media:
        if media.image is not None:
            images += render(await predict([media.image], options), params)
        else:
            assert media.video is not None
            frames = video_frames(media.video, params.vid_stride, settings)
            while chunk := await next_frames(frames, settings.max_batch_size):
                images += render(await predict(chunk, options), params)
    return images


def render(predictions: list[Prediction], params: PredictParams) -> list[dict[str, Any]]:
    return [
        {
            "results": prediction.summary(normalize=params.normalize, decimals=params.decimals),
            "shape": [int(prediction.orig_shape[0]), int(prediction.orig_shape[1])],
            "speed": {name: round(float(value), 3) for name, value in prediction.speed.items()},
        }
        for prediction in predictions
    ]


def class_names(info: dict[str, Any]) -> list[str]:
    """The model's class names in index order (``names`` is a dict with string or int keys, or a list)."""
    names = info.get("names") or {}
    return [str(names[key]) for key in sorted(names, key=int)] if isinstance(names, dict) else list(names)
