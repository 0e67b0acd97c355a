"""yolostack_engine: load served YOLO models and run them (no web or database imports)."""

import os

# The real clients read these at import: keep ultralytics offline, quiet and out of the user's config.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")

from yolostack_engine.backends import available_backends
from yolostack_engine.backends.base import Backend
from yolostack_engine.errors import EngineError
from yolostack_engine.info import ModelInfo
from yolostack_engine.models import PreparedImage, ServedModel, load_model
from yolostack_engine.options import PredictOptions
from yolostack_engine.results import Prediction

__all__ = [
    "Backend",
    "EngineError",
    "ModelInfo",
    "PredictOptions",
    "Prediction",
    "PreparedImage",
    "ServedModel",
    "available_backends",
    "load_model",
]
