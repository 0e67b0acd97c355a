"""Per-request prediction options."""

from dataclasses import dataclass


@dataclass(frozen=True)
class PredictOptions:
    """Inference settings with the same meaning and defaults as ultralytics' predict arguments."""

    imgsz: int = 640
    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300
