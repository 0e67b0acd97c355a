"""The prediction result (spec §5): ``images[]`` of ultralytics ``Results.summary()`` rows, and ``metadata``.

These schemas document the predict routes; the routes send the engine's rows as they are (key order matters:
clients take ``list(box.values())``), so nothing here filters or reorders a response.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    """Rows may carry more than is listed (``track_id``, a future task's keys): they are sent as they come."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Box(_Open):
    """Corners in pixels (0–1 with ``normalize=true``): ``x1,y1,x2,y2``; obb adds ``x3,y3,x4,y4`` in order."""

    x1: float
    y1: float
    x2: float
    y2: float
    x3: float | None = None
    y3: float | None = None
    x4: float | None = None
    y4: float | None = None


class Segments(_Open):
    """A polygon (segment): x and y of each vertex; empty lists when the mask has none."""

    x: list[float]
    y: list[float]


class Keypoints(_Open):
    """Pose keypoints: x and y of each, and their visibility when the model predicts it."""

    x: list[float]
    y: list[float]
    visible: list[float] | None = None


class PredictionRow(_Open):
    """One result: classify sends the top 5 ``{name, class, confidence}`` with no box."""

    name: str
    class_: int = Field(alias="class", description="Class index")
    confidence: float | None = None
    box: Box | None = None
    segments: Segments | None = None
    keypoints: Keypoints | None = None


class Speed(_Open):
    """Milliseconds per stage."""

    preprocess: float
    inference: float
    postprocess: float


class PredictedImage(_Open):
    """One image, or one processed video frame."""

    results: list[PredictionRow]
    shape: list[int] = Field(description="[height, width] of the original image")
    speed: Speed


class PredictMetadata(_Open):
    image_count: int = Field(alias="imageCount", description="Entries in images[]")
    class_names: list[str] | None = Field(default=None, alias="classNames", description="Names in class-index order")
    model: str | None = Field(default=None, description="The model id")
    task: str | None = Field(
        default=None, description="detect, segment, pose, obb or classify (ul cloud predict reads it)"
    )
    version: dict[str, Any] = Field(description="yolostack, ultralytics, backend and weights versions")
    function_time_call: float = Field(alias="functionTimeCall", description="Milliseconds this request took")
    function_time_alive: float | None = Field(
        default=None, alias="functionTimeAlive", description="Milliseconds the serving process has been up"
    )


class PredictResponse(_Open):
    """``POST /api/models/{owner}/{project}/{model}/predict``, a deployment's predict and the HUB routes."""

    success: bool = True
    images: list[PredictedImage]
    metadata: PredictMetadata


class SeedPrediction(_Open):
    """The seed's flat row: ``class`` is the class name there, ``classId`` its index; a video adds ``frame``."""

    class_: str = Field(alias="class")
    class_id: int = Field(alias="classId")
    confidence: float | None = None
    box: Box | None = None
    frame: int | None = None


class SeedPredictResponse(PredictResponse):
    """``POST /api/models/{modelId}/predict`` (seed): the envelope and ``predictions`` beside images/metadata."""

    data: PredictResponse
    predictions: list[SeedPrediction]
