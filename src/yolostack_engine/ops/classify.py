"""Classification pre-processing: torchvision Resize(short side) + CenterCrop as ultralytics' classify_transforms."""

from __future__ import annotations

import numpy as np
from PIL import Image


def classify_resize_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Resize the short side to size (PIL bilinear, antialiased) and centre-crop size x size; channels untouched."""
    h, w = image.shape[:2]
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    resized = image
    if (new_w, new_h) != (w, h):
        resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR))
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    return np.ascontiguousarray(resized[top : top + size, left : left + size])
