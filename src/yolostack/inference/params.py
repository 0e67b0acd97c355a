"""Predict parameters (spec §5): the seed's ranges, refused (never clamped) when outside them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yolostack.core.errors import BadRequest

# Platform routes default to ultralytics' own iou; the HUB routes to the HUB docs' 0.45.
PLATFORM_IOU = 0.7
HUB_IOU = 0.45
TRUE = {"true", "1", "yes", "on"}
FALSE = {"false", "0", "no", "off", ""}


@dataclass(frozen=True)
class PredictParams:
    imgsz: int = 640
    conf: float = 0.25
    iou: float = PLATFORM_IOU
    normalize: bool = False
    decimals: int = 5
    vid_stride: int = 1


def _number(
    fields: dict[str, Any], name: str, kind: type[int] | type[float], low: float, high: float, default: Any
) -> Any:
    raw = fields.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return default
    try:
        value = kind(float(raw)) if kind is float else _integer(raw)
    except (TypeError, ValueError):
        raise BadRequest(f"'{name}' must be a number", details={"field": name, "value": str(raw)[:64]}) from None
    if not low <= value <= high:
        raise BadRequest(
            f"'{name}' must be between {low:g} and {high:g}, got {value:g}",
            details={"field": name, "min": low, "max": high, "value": value},
        )
    return value


def _integer(raw: Any) -> int:
    number = float(raw)
    if not number.is_integer():
        raise ValueError("not an integer")
    return int(number)


def _boolean(fields: dict[str, Any], name: str) -> bool:
    raw = fields.get(name)
    if raw is None:
        return False
    text = str(raw).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise BadRequest(f"'{name}' must be true or false", details={"field": name, "value": str(raw)[:64]})


def parse_params(fields: dict[str, Any], *, default_iou: float) -> PredictParams:
    """Read the predict form fields; every value outside the documented range is a VALIDATION_ERROR."""
    return PredictParams(
        imgsz=_number(fields, "imgsz", int, 32, 1280, 640),
        conf=_number(fields, "conf", float, 0.01, 1.0, 0.25),
        iou=_number(fields, "iou", float, 0.0, 0.95, default_iou),
        normalize=_boolean(fields, "normalize"),
        decimals=_number(fields, "decimals", int, 0, 10, 5),
        vid_stride=_number(fields, "vid_stride", int, 1, 1000, 1),
    )
