"""Predict form fields (spec §5): one pydantic model per route family, the seed's ranges refused (never clamped).

The API's predict routes declare these as their multipart body (FastAPI validates them before the model
is looked at); deployment replicas, which parse the relayed body themselves, validate the same model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from yolostack.core.errors import BadRequest

# Platform routes default to ultralytics' own iou; the HUB routes to the HUB docs' 0.45.
PLATFORM_IOU = 0.7
HUB_IOU = 0.45
MEDIA_REQUIRED = "send multipart/form-data with a 'file' (image or video) or a 'source' URL"


@dataclass(frozen=True)
class PredictParams:
    imgsz: int = 640
    conf: float = 0.25
    iou: float = PLATFORM_IOU
    normalize: bool = False
    decimals: int = 5
    vid_stride: int = 1


class PredictForm(BaseModel):
    """``POST /api/models/…/predict`` and a deployment's predict: the media and the inference parameters.

    Wire names are the snake_case ones the clients send (``vid_stride``); unknown fields (``bits``) are ignored.
    """

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    file: UploadFile | None = Field(default=None, description="An image or a video (one entry per strided frame)")
    source: str | None = Field(default=None, max_length=2048, description="An image or video URL, instead of file")
    imgsz: int = Field(default=640, ge=32, le=1280, description="Inference size in pixels")
    conf: float = Field(default=0.25, ge=0.01, le=1.0, description="Confidence threshold")
    iou: float | None = Field(
        default=None, ge=0.0, le=0.95, description="NMS IoU threshold (default 0.7; 0.45 on the HUB routes)"
    )
    normalize: bool = Field(default=False, description="Box coordinates from 0 to 1 instead of pixels")
    decimals: int = Field(default=5, ge=0, le=10, description="Decimal places of coordinates and confidences")
    vid_stride: int = Field(default=1, ge=1, le=1000, description="Video: predict every n-th frame")

    def params(self, *, default_iou: float) -> PredictParams:
        return PredictParams(
            imgsz=self.imgsz,
            conf=self.conf,
            iou=default_iou if self.iou is None else self.iou,
            normalize=self.normalize,
            decimals=self.decimals,
            vid_stride=self.vid_stride,
        )

    def upload(self) -> UploadFile | None:
        """The uploaded image or video, if any (without one, ``source`` must name it)."""
        return self.file


class HubPredictForm(PredictForm):
    """``POST /`` (the HUB shared inference API): the same fields plus the ``model`` to run."""

    model: str | None = Field(
        default=None,
        max_length=2048,
        description="The model: a model URL, a model id or ul://owner/project/model (required here)",
    )


class LegacyHubPredictForm(PredictForm):
    """``POST /v1/predict/{modelId}``: the legacy HUB clients send the image as ``image``."""

    image: UploadFile | None = Field(default=None, description="The image (the legacy name of file)")

    def upload(self) -> UploadFile | None:
        return self.file or self.image


def parse_params(fields: dict[str, Any], *, default_iou: float) -> PredictParams:
    """A replica's parse of the relayed form: the same model and the same 422 as the API's own routes."""
    try:
        # An empty field is an omitted one, as FastAPI reads the API routes' forms.
        given = {key: value for key, value in fields.items() if key != "file" and value != ""}
        form = PredictForm.model_validate(given)
    except ValidationError as error:
        details = [
            {"field": ".".join(str(part) for part in item["loc"]), "message": item["msg"]}
            for item in error.errors(include_url=False)
        ]
        first = details[0]
        raise BadRequest(f"{first['field']}: {first['message']}", details=details) from None
    return form.params(default_iou=default_iou)
