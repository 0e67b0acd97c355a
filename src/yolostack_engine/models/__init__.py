"""One ServedModel subclass per task."""

from __future__ import annotations

from yolostack_engine.errors import EngineError
from yolostack_engine.models.base import PreparedImage, ServedModel, load_model
from yolostack_engine.models.classify import ClassifyModel
from yolostack_engine.models.detect import DetectModel
from yolostack_engine.models.obb import OBBModel
from yolostack_engine.models.pose import PoseModel
from yolostack_engine.models.segment import SegmentModel

MODEL_CLASSES: dict[str, type[ServedModel]] = {
    "detect": DetectModel,
    "segment": SegmentModel,
    "pose": PoseModel,
    "obb": OBBModel,
    "classify": ClassifyModel,
}


def model_class(task: str) -> type[ServedModel]:
    """Return the ServedModel subclass for a task."""
    try:
        return MODEL_CLASSES[task]
    except KeyError:
        raise EngineError(f"unsupported task {task!r}; supported: {', '.join(MODEL_CLASSES)}") from None


__all__ = [
    "MODEL_CLASSES",
    "ClassifyModel",
    "DetectModel",
    "OBBModel",
    "PoseModel",
    "PreparedImage",
    "SegmentModel",
    "ServedModel",
    "load_model",
    "model_class",
]
