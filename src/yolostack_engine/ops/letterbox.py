"""Letterbox resizing and image-to-tensor conversion, as ultralytics' LetterBox and BasePredictor.preprocess."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class LetterboxParams:
    """Where the resized image sits inside the padded network input."""

    shape: tuple[int, int]  # padded (h, w)
    ratio: tuple[float, float]  # (w, h) scale factors
    pad: tuple[int, int]  # (left, top) pixels


def check_imgsz(imgsz: int, stride: int) -> int:
    """Round imgsz up to a multiple of stride (at least one stride), like ultralytics' check_imgsz."""
    return max(math.ceil(imgsz / stride) * stride, stride)


def letterbox(
    image: np.ndarray,
    new_shape: tuple[int, int],
    *,
    auto: bool = True,
    stride: int = 32,
    pad_value: int = 114,
) -> tuple[np.ndarray, LetterboxParams]:
    """Resize keeping aspect ratio and pad (to a stride-multiple rectangle when auto) with centred padding."""
    shape = image.shape[:2]
    r = min(new_shape[0] / shape[0], new_shape[1] / shape[1])
    new_unpad = max(round(shape[1] * r), 1), max(round(shape[0] * r), 1)
    dw: float = new_shape[1] - new_unpad[0]
    dh: float = new_shape[0] - new_unpad[1]
    if auto:
        dw, dh = dw % stride, dh % stride
    dw, dh = dw / 2, dh / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    if shape[::-1] != new_unpad:
        image = cv2.resize(image, new_unpad, interpolation=cv2.INTER_LINEAR)
    image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(pad_value,) * 3)
    params = LetterboxParams(shape=(image.shape[0], image.shape[1]), ratio=(r, r), pad=(left, top))
    return image, params


def to_tensor(image: np.ndarray) -> np.ndarray:
    """Convert a BGR HxWx3 uint8 image to a contiguous (1, 3, H, W) float32 RGB tensor in 0-1."""
    chw = image[..., ::-1].transpose(2, 0, 1)
    tensor = np.empty((1, *chw.shape), dtype=np.float32)
    np.divide(chw, np.float32(255), out=tensor[0], casting="unsafe")  # divide, not multiply: bit-exact with torch
    return tensor
