"""The predict server a user would write around ultralytics: the naive baseline of ``bench/predict.py``.

    BENCH_NAIVE_MODEL=yolo11n.pt .venv/bin/python -m uvicorn naive_server:app --app-dir bench --port 8001

The model loads at import; the handler decodes the upload and calls ``model.predict`` right in the
``async def`` (blocking the event loop, as most such servers do) and returns ultralytics' own summary.
"""

from __future__ import annotations

import os
from typing import Any

import cv2
import numpy as np
from fastapi import FastAPI, UploadFile
from ultralytics.models import YOLO

model = YOLO(os.environ.get("BENCH_NAIVE_MODEL", "yolo11n.pt"))
app = FastAPI()


@app.post("/predict")
async def predict(file: UploadFile) -> Any:
    data = await file.read()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    results: Any = model.predict(image)
    return results[0].summary()
