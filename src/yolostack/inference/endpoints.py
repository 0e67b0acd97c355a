"""Predict routes: the Platform's (seed by id, clients by owner/project/model) and the HUB inference API.

- ``POST /api/models/{modelId}/predict`` (seed): envelope + ``predictions``, plus ``images``/``metadata``.
- ``POST /api/models/{owner}/{project}/{model}/predict`` (clients.md §1.7): ``images``/``metadata``.
- ``POST /`` (HUB shared API, form ``model``) and the legacy ``POST /v1/predict/{modelId}``.
"""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import urlparse

from fastapi import APIRouter, Form, Request

from yolostack import __version__
from yolostack.auth.dependencies import AuthContext, HubAuth, InferenceAuth
from yolostack.config import Settings
from yolostack.core.db import DbSession
from yolostack.core.errors import BadRequest, NotFound
from yolostack.core.ids import is_id
from yolostack.core.responses import Body, both, client, errors
from yolostack.inference.params import (
    HUB_IOU,
    MEDIA_REQUIRED,
    PLATFORM_IOU,
    HubPredictForm,
    LegacyHubPredictForm,
    PredictForm,
)
from yolostack.inference.pipeline import class_names, predict_media
from yolostack.inference.schemas import PredictResponse, SeedPredictResponse
from yolostack.inference.service import InferenceService, ServingTarget
from yolostack.models.service import ModelRow
from yolostack.models.service import model as model_service
from yolostack_engine import Prediction, PredictOptions

router = APIRouter(tags=["inference"])
hub_router = APIRouter(tags=["inference"])

PlatformForm = Annotated[PredictForm, Form(media_type="multipart/form-data")]
PREDICT_ERRORS = errors(409, 503)


def _service(request: Request) -> InferenceService:
    service: InferenceService = request.app.state.inference
    return service


@router.post(
    "/{model_id}/predict",
    response_model=None,
    responses={200: {"model": SeedPredictResponse}, **PREDICT_ERRORS},
)
async def predict_by_id(
    request: Request, auth: InferenceAuth, session: DbSession, model_id: str, form: PlatformForm
) -> Body:
    """Seed: multipart ``file`` (image or video) or ``source``, ``conf``, ``iou``, ``imgsz``…"""
    _require_form(request)
    if not is_id(model_id):
        raise NotFound("model not found: address it by id or by /{owner}/{project}/{model}")
    row = await model_service.get_by_id(session, auth.account, model_id)
    await _end_transaction(session)
    body = await _predict(request, row, form, default_iou=PLATFORM_IOU)
    return both(body, predictions=_seed_predictions(body["images"]), **body)


@router.post(
    "/{owner}/{project}/{model}/predict",
    response_model=None,
    responses={200: {"model": PredictResponse}, **PREDICT_ERRORS},
)
async def predict_by_slug(
    request: Request,
    auth: InferenceAuth,
    session: DbSession,
    owner: str,
    project: str,
    model: str,
    form: PlatformForm,
) -> Body:
    """Clients (``ul cloud predict``): ``images[]`` one per image or strided video frame, and ``metadata``."""
    _require_form(request)
    row = await model_service.get_by_slug(session, auth.account, owner, project, model)
    await _end_transaction(session)
    return client(**await _predict(request, row, form, default_iou=PLATFORM_IOU))


@hub_router.post("/", response_model=None, responses={200: {"model": PredictResponse}, **PREDICT_ERRORS})
async def predict_hub(
    request: Request,
    auth: HubAuth,
    session: DbSession,
    form: Annotated[HubPredictForm, Form(media_type="multipart/form-data")],
) -> Body:
    """The HUB shared inference API: form ``model`` (a model URL, an id or ``ul://owner/project/model``)."""
    _require_form(request)
    row = await _hub_model(session, auth, form.model)
    await _end_transaction(session)
    return client(**await _predict(request, row, form, default_iou=HUB_IOU))


@hub_router.post(
    "/v1/predict/{model_id}", response_model=None, responses={200: {"model": PredictResponse}, **PREDICT_ERRORS}
)
async def predict_hub_legacy(
    request: Request,
    auth: HubAuth,
    session: DbSession,
    model_id: str,
    form: Annotated[LegacyHubPredictForm, Form(media_type="multipart/form-data")],
) -> Body:
    """The legacy HUB route: the model id in the path, the image as ``file`` or ``image``."""
    _require_form(request)
    row = await _hub_model(session, auth, model_id)
    await _end_transaction(session)
    return client(**await _predict(request, row, form, default_iou=HUB_IOU))


def _require_form(request: Request) -> None:
    """Another body (JSON) would parse as an empty form: refuse it as such, before the model is looked up."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise BadRequest(MEDIA_REQUIRED, details=[{"field": "file", "message": MEDIA_REQUIRED}])


async def _end_transaction(session: DbSession) -> None:
    """The request's database work is done once the model is found: commit now (the key's ``lastUsedAt``)
    rather than hold a transaction open through seconds of inference. On SQLite a read transaction that
    tries to write after another connection committed fails with "database is locked"."""
    await session.commit()


async def _hub_model(session: DbSession, auth: AuthContext, ref: str | None) -> ModelRow:
    if ref is None or not ref.strip():
        message = "form field 'model' is required (a model URL, a model id or ul://owner/project/model)"
        raise BadRequest(message, details=[{"field": "model", "message": message}])
    ref = ref.strip()
    if ref.startswith("ul://"):
        parts = ref.removeprefix("ul://").split("/")
        if len(parts) != 3 or not all(parts):
            message = "a ul:// model must look like ul://owner/project/model"
            raise BadRequest(message, details=[{"field": "model", "message": message}])
        return await model_service.get_by_slug(session, auth.account, *parts)
    segments = [segment for segment in urlparse(ref).path.split("/") if segment]
    model_id = segments[-1] if segments else ref
    if not is_id(model_id):
        raise NotFound(f"model '{ref[:200]}' not found")
    return await model_service.get_by_id(session, auth.account, model_id)


async def _predict(request: Request, row: ModelRow, form: PredictForm, *, default_iou: float) -> dict[str, Any]:
    started = time.perf_counter()
    service = _service(request)
    settings: Settings = request.app.state.settings
    params = form.params(default_iou=default_iou)
    target = await service.target(row[0])

    async def predict(images: list[Any], options: PredictOptions) -> list[Prediction]:
        return await service.predict(target, images, options)

    images = await predict_media(form.source, form.upload(), settings.inference, predict, params)
    metadata = await _metadata(service, target, row, len(images), started)
    return {"images": images, "metadata": metadata}


async def _metadata(
    service: InferenceService, target: ServingTarget, row: ModelRow, count: int, started: float
) -> dict[str, Any]:
    model, project, owner = row
    return {
        "imageCount": count,
        "classNames": class_names(target.info),
        "model": model.id,
        "modelRef": f"ul://{owner.username}/{project.slug}/{model.slug}",
        "task": model.task or target.info.get("task"),
        "version": {
            "yolostack": __version__,
            "ultralytics": target.info.get("ultralytics"),
            "backend": await service.backend_name(target),
            "weights": target.version,
        },
        "functionTimeCall": round((time.perf_counter() - started) * 1000, 3),
        "functionTimeAlive": round(service.uptime_ms(), 3),
    }


def _seed_predictions(images: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The seed's flat ``predictions``: ``class`` is the class *name* there; a video adds ``frame``."""
    rows = []
    for index, image in enumerate(images):
        for result in image["results"]:
            row = {"class": result["name"], "classId": result["class"], "confidence": result["confidence"]}
            row.update({key: value for key, value in result.items() if key not in ("name", "class", "confidence")})
            if len(images) > 1:
                row["frame"] = index
            rows.append(row)
    return rows
