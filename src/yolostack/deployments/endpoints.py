"""Deployment routes, both families under ``/api/deployments`` plus each deployment's own URL.

- Seed (by id): ``GET|POST ""``, ``GET|DELETE /{deploymentId}``, ``POST /{deploymentId}/start|stop``,
  ``GET /{deploymentId}/metrics|logs``.
- Clients (clients.md §1.4): ``GET|POST /{owner}``, ``GET|PATCH|DELETE /{owner}/{deployment}``,
  ``GET …/health|logs|metrics``, ``POST …/predict``.
- ``POST /d/{deploymentId}`` (``serviceUrl``): the HUB request format (seed 000), the owner's keys, no
  rate limit (dedicated capacity is not the shared API's 100 calls/hour).

A path segment with ``_`` is an id and one without a username, so ``/{deploymentId}`` and ``/{owner}`` share
one route each and are told apart there. Replicas fetch their model from ``GET
/{deploymentId}/artifacts/{name}`` with a token the reconciler signed (Ray Serve replicas elsewhere).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from yolostack.auth.dependencies import AuthContext, Authenticator, authenticate, read_api_key
from yolostack.auth.scopes import Scope
from yolostack.config import Settings
from yolostack.core.db import DbSession
from yolostack.core.errors import BadRequest, NotFound, Unauthorized
from yolostack.core.files import on_commit
from yolostack.core.ids import is_id
from yolostack.core.pagination import MAX_LIMIT, PageMeta, PageParamsQuery
from yolostack.core.responses import Body, ClientResponse, SeedResponse, both, client, errors, link
from yolostack.deployments import views as metrics
from yolostack.deployments.backends import DeploymentBackend, ReplicaUnavailable
from yolostack.deployments.repository import DeploymentRepository, DeploymentRow
from yolostack.deployments.schemas import (
    DeploymentChanged,
    DeploymentCreate,
    DeploymentCreated,
    DeploymentDeleted,
    DeploymentHealth,
    DeploymentList,
    DeploymentLogs,
    DeploymentMetrics,
    DeploymentPage,
    DeploymentRead,
    DeploymentRetrieved,
    DeploymentSparkline,
    DeploymentUpdate,
    SeedDeploymentCreate,
    SeedDeploymentMetrics,
)
from yolostack.deployments.service import deployment_view, resources_from
from yolostack.deployments.service import deployments as deployment_service
from yolostack.deployments.serving import forward
from yolostack.deployments.tasks import ARTIFACT_PURPOSE
from yolostack.deployments.telemetry import DeploymentTelemetry
from yolostack.inference.params import HUB_IOU, PLATFORM_IOU
from yolostack.inference.schemas import PredictResponse
from yolostack.models.service import model as model_service
from yolostack.storage.service import FileLinks
from yolostack.storage.signing import InvalidSignature
from yolostack.tables import DeploymentStatus, Severity

DeploymentsAuth = Annotated[AuthContext, Depends(Authenticator(Scope.deployments))]
PredictAuth = Annotated[AuthContext, Depends(Authenticator(Scope.inference))]

router = APIRouter(tags=["deployments"])
service_router = APIRouter(tags=["deployments"])

SEVERITIES = tuple(str(level) for level in Severity)
DEFAULT_LOG_LIMIT = 100
MAX_LOG_LIMIT = 1000
HEALTH_TIMEOUT_SECONDS = 30.0


def relayed_predict(form: str) -> dict[str, Any]:
    """What a relayed predict documents: the multipart form a replica parses (the API process only moves its
    bytes, so FastAPI does not read it) and the prediction it answers."""
    body = {"content": {"multipart/form-data": {"schema": {"$ref": f"#/components/schemas/{form}"}}}}
    return {
        "openapi_extra": {"requestBody": {"required": True, **body}},
        "responses": {200: {"model": PredictResponse}, **errors(409, 503)},
    }


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _view(request: Request, row: DeploymentRow) -> dict[str, Any]:
    return deployment_view(row, _settings(request).base_url)


def _wake(request: Request) -> None:
    task = getattr(request.app.state, "deployment_task", None)
    if task is not None:
        task.wake()


async def _refresh(session: DbSession, row: DeploymentRow) -> DeploymentRow:
    await session.flush()
    await session.refresh(row[0])
    fresh = await DeploymentRepository(session).get(row[0].owner_id, row[0].id)
    return fresh or row


async def _telemetry(request: Request) -> DeploymentTelemetry:
    """Buffered requests and events are written first, so what was just served is in the answer."""
    telemetry: DeploymentTelemetry = request.app.state.deployment_telemetry
    await telemetry.flush()
    return telemetry


# -- seed: /api/deployments ------------------------------------------------------------------------------


@router.get("", response_model=DeploymentPage)
async def list_deployments(
    request: Request,
    auth: DeploymentsAuth,
    session: DbSession,
    pagination: PageParamsQuery,
    model_id: Annotated[str | None, Query(alias="modelId", max_length=64)] = None,
    status: DeploymentStatus | None = None,
) -> Body:
    """The caller's deployments, newest first, optionally of one model (``meta``: page, limit, total)."""
    rows, total = await deployment_service.list(
        session,
        auth.account,
        status=status,
        model_id=model_id,
        limit=pagination.limit,
        offset=pagination.offset,
    )
    views = [_view(request, row) for row in rows]
    meta = PageMeta.of(pagination, total)
    return both(views, meta=meta, deployments=views, total=total, region=_settings(request).region)


def _created_links(owner: str) -> dict[str, Any]:
    """From a created deployment to the routes that read, change, use and delete it (the fuzzer follows them)."""
    by_id = {"deployment_id": "$response.body#/id"}
    by_slug = {"owner": owner, "deployment": "$response.body#/deployment"}
    return {
        "GetDeploymentById": link("get_or_list", ref="$response.body#/id"),
        "GetDeployment": link("get_deployment", first=owner, second="$response.body#/deployment"),
        "UpdateDeployment": link("update_deployment", **by_slug),
        "DeploymentHealth": link("deployment_health", **by_slug),
        "DeploymentLogs": link("deployment_logs", **by_slug),
        "DeploymentMetrics": link("deployment_metrics", **by_slug),
        "PredictDeployment": link("predict_deployment", **by_slug),
        "StopDeployment": link("stop_deployment", **by_id),
        "StartDeployment": link("start_deployment", **by_id),
        "DeleteDeployment": link("delete_deployment", **by_slug),
        "DeleteDeploymentById": link("delete_deployment_seed", **by_id),
        "PredictServiceUrl": link("predict_dedicated", **by_id),
        "PredictServiceUrlPath": link("predict_dedicated_path", **by_id),
    }


@router.post(
    "",
    status_code=201,
    response_model=DeploymentCreated,
    responses={201: {"links": _created_links("$response.body#/data/owner")}, **errors(409)},
)
async def create_deployment_seed(
    request: Request, auth: DeploymentsAuth, session: DbSession, body: SeedDeploymentCreate
) -> Body:
    """Seed ``{modelId, region, minInstances, maxInstances}`` (also ``name``, ``cpu``, ``memoryGi``)."""
    model_row = await model_service.get_by_id(session, auth.account, body.model_id)
    return await _create(request, auth, session, model_row, body, slug=None)


async def _create(
    request: Request,
    auth: AuthContext,
    session: DbSession,
    model_row: Any,
    body: DeploymentCreate | SeedDeploymentCreate,
    *,
    slug: str | None,
) -> Body:
    settings = _settings(request)
    deployment = await deployment_service.create(
        session,
        auth.account,
        model_row,
        settings.deployments,
        slug=slug,
        name=body.name,
        region=body.region or settings.region,
        resources=resources_from(body),
    )
    on_commit(session, lambda: _wake(request))
    row = await DeploymentRepository(session).get(auth.account.id, deployment.id)
    assert row is not None
    view = _view(request, row)
    return both(
        view,
        id=deployment.id,
        deployment=deployment.slug,
        status=str(deployment.status),
        message="deployment is being created",
        region=deployment.region,
        serviceUrl=view["serviceUrl"],
    )


@router.get("/{ref}", response_model=DeploymentRead | DeploymentList)
async def get_or_list(
    request: Request,
    auth: DeploymentsAuth,
    session: DbSession,
    ref: str,
    status: DeploymentStatus | None = None,
    model: Annotated[str | None, Query(max_length=300, description="project/model")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
) -> Body:
    """``/{deploymentId}`` (seed: one deployment) or ``/{owner}`` (clients: the owner's deployments,
    ``status`` and ``model=project/model`` filters)."""
    if is_id(ref):
        view = _view(request, await deployment_service.get(session, auth.account, ref))
        return both(view, deployment=view, region=view["region"])
    if ref != auth.account.username:
        return client(deployments=[], total=0, region=_settings(request).region)
    model_id = None
    if model:
        project, _, slug = model.partition("/")
        if not project or not slug:
            message = "model must look like project/model"
            raise BadRequest(message, details=[{"field": "model", "message": message}])
        model_id = (await model_service.get_by_slug(session, auth.account, ref, project, slug))[0].id
    rows, total = await deployment_service.list(session, auth.account, status=status, model_id=model_id, limit=limit)
    return client(deployments=[_view(request, row) for row in rows], total=total, region=_settings(request).region)


@router.post(
    "/{owner}",
    status_code=201,
    response_model=DeploymentCreated,
    responses={201: {"links": _created_links("$request.path.owner")}, **errors(409)},
)
async def create_deployment(
    request: Request, auth: DeploymentsAuth, session: DbSession, owner: str, body: DeploymentCreate
) -> Body:
    """Clients: ``{project, model, deployment, name, region, cpu?, memoryGi?}`` (+ ``minInstances``,
    ``maxInstances``) → ``{id, deployment, status: creating, message, region}``."""
    if is_id(owner) or owner != auth.account.username:
        raise NotFound(f"user '{owner}' not found")
    model_row = await model_service.get_by_slug(session, auth.account, owner, body.project, body.model)
    return await _create(request, auth, session, model_row, body, slug=body.deployment)


@router.delete("/{deployment_id}", response_model=SeedResponse[DeploymentDeleted])
async def delete_deployment_seed(
    request: Request, auth: DeploymentsAuth, session: DbSession, deployment_id: str
) -> Body:
    row = await deployment_service.get(session, auth.account, deployment_id)
    await deployment_service.delete(session, auth.account, row[0])
    on_commit(session, lambda: _wake(request))
    return both({"id": deployment_id, "deleted": True})


@router.post("/{deployment_id}/start", response_model=DeploymentChanged)
async def start_deployment(request: Request, auth: DeploymentsAuth, session: DbSession, deployment_id: str) -> Body:
    row = await deployment_service.get(session, auth.account, deployment_id)
    return await _act(request, auth, session, row, DeploymentUpdate(action="start"))


@router.post("/{deployment_id}/stop", response_model=DeploymentChanged)
async def stop_deployment(request: Request, auth: DeploymentsAuth, session: DbSession, deployment_id: str) -> Body:
    row = await deployment_service.get(session, auth.account, deployment_id)
    return await _act(request, auth, session, row, DeploymentUpdate(action="stop"))


async def _act(
    request: Request, auth: AuthContext, session: DbSession, row: DeploymentRow, body: DeploymentUpdate
) -> Body:
    message = await deployment_service.update(session, auth.account, row, body, _settings(request).deployments)
    on_commit(session, lambda: _wake(request))
    row = await _refresh(session, row)
    view = _view(request, row)
    return both(view, status=view["status"], message=message, deployment=view)


@router.get("/{deployment_id}/artifacts/{name}", include_in_schema=False)
async def replica_artifact(request: Request, session: DbSession, deployment_id: str, name: str) -> StreamingResponse:
    """A replica (Ray Serve, on another node) downloads the model it serves; the token is its permission."""
    token = read_api_key(request)
    links: FileLinks = request.app.state.file_links
    try:
        claims = links.signer.verify(ARTIFACT_PURPOSE, token or "")
    except InvalidSignature as error:
        raise Unauthorized("invalid artifact token") from error
    if claims.get("d") != deployment_id:
        raise Unauthorized("invalid artifact token")
    row = await DeploymentRepository(session).get_any(deployment_id)
    if row is None:
        raise NotFound("deployment not found")
    model = row[1]
    if name == "model.pt" and model.weights_key:
        key = model.weights_key
    elif name in ("model.onnx", "meta.json") and model.serving_key:
        key = f"{model.serving_key}/{name}"
    else:
        raise NotFound(f"artifact '{name}' not found")
    await session.commit()
    return StreamingResponse(links.store.read(key), media_type="application/octet-stream")


# -- clients: /api/deployments/{owner}/{deployment}[/…] --------------------------------------------------


@router.get(
    "/{first}/{second}",
    response_model=DeploymentRetrieved | DeploymentLogs | SeedDeploymentMetrics,
    response_model_exclude_unset=True,
)
async def get_deployment(
    request: Request,
    auth: DeploymentsAuth,
    session: DbSession,
    first: str,
    second: str,
    severity: str | None = None,
    limit: int | None = None,
    range_name: Annotated[str | None, Query(alias="range")] = None,
) -> Body:
    """``/{owner}/{deployment}`` (clients), or the seed's ``/{deploymentId}/metrics|logs``."""
    if is_id(first) and second in ("metrics", "logs"):
        row = await deployment_service.get(session, auth.account, first)
        if second == "logs":
            return await _logs(request, session, row, severity, limit, None)
        view = await _metrics(request, session, row, range_name or "1h", sparkline=None, overview=False)
        return both(view, **view)
    row = await deployment_service.get_by_slug(session, auth.account, first, second)
    view = _view(request, row)
    return client(deployment=view, region=view["region"])


@router.patch("/{owner}/{deployment}", response_model=DeploymentChanged, responses=errors(409))
async def update_deployment(
    request: Request, auth: DeploymentsAuth, session: DbSession, owner: str, deployment: str, body: DeploymentUpdate
) -> Body:
    """One of ``{action: start|stop|resize|replace, …}``, ``{name}`` or ``{metadata}`` → ``{success, status,
    message, deployment}``."""
    row = await deployment_service.get_by_slug(session, auth.account, owner, deployment)
    return await _act(request, auth, session, row, body)


@router.delete("/{owner}/{deployment}", response_model=ClientResponse)
async def delete_deployment(
    request: Request, auth: DeploymentsAuth, session: DbSession, owner: str, deployment: str
) -> Body:
    row = await deployment_service.get_by_slug(session, auth.account, owner, deployment)
    await deployment_service.delete(session, auth.account, row[0])
    on_commit(session, lambda: _wake(request))
    return client()


@router.get("/{owner}/{deployment}/health", response_model=DeploymentHealth, response_model_exclude_unset=True)
async def deployment_health(
    request: Request, auth: DeploymentsAuth, session: DbSession, owner: str, deployment: str
) -> Body:
    """``{healthy, status, latencyMs, error?}``: pings a replica's own health route (which warms a deployment
    that scaled to zero: a cold start answers it)."""
    row = await deployment_service.get_by_slug(session, auth.account, owner, deployment)
    await session.commit()
    target = row[0]
    backend: DeploymentBackend | None = getattr(request.app.state, "deployment_backend", None)
    started = time.perf_counter()
    error = None
    if backend is None:
        error = "this server process runs no deployment replicas"
    elif target.status != DeploymentStatus.ready:
        error = f"deployment is {target.status}"
    else:
        try:
            answer = await backend.forward(
                target.id, b"", {}, timeout=HEALTH_TIMEOUT_SECONDS, method="GET", path="/health"
            )
        except ReplicaUnavailable as unavailable:
            error = str(unavailable)
        else:
            if answer.status_code != 200:
                error = f"the replica answered HTTP {answer.status_code}"
    latency = round((time.perf_counter() - started) * 1000, 3)
    body = client(healthy=error is None, status=str(target.status), latencyMs=latency)
    if error:
        body["error"] = error
    return body


@router.get("/{owner}/{deployment}/logs", response_model=DeploymentLogs, response_model_exclude_unset=True)
async def deployment_logs(
    request: Request,
    auth: DeploymentsAuth,
    session: DbSession,
    owner: str,
    deployment: str,
    severity: str | None = None,
    limit: int | None = None,
    page_token: Annotated[str | None, Query(alias="pageToken")] = None,
) -> Body:
    row = await deployment_service.get_by_slug(session, auth.account, owner, deployment)
    return await _logs(request, session, row, severity, limit, page_token)


async def _logs(
    request: Request, session: DbSession, row: DeploymentRow, severity: str | None, limit: int | None, token: str | None
) -> Body:
    levels = None
    if severity:
        levels = {level.strip().upper() for level in severity.split(",") if level.strip()}
        unknown = levels - set(SEVERITIES)
        if unknown:
            raise BadRequest(f"severity must be among {', '.join(SEVERITIES)}", details=[{"field": "severity"}])
    count = DEFAULT_LOG_LIMIT if limit is None else limit
    if not 1 <= count <= MAX_LOG_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LOG_LIMIT}", details=[{"field": "limit"}])
    await _telemetry(request)
    entries, next_token = await metrics.logs_page(session, row[0].id, severities=levels, limit=count, page_token=token)
    body = both(entries, entries=entries)
    if next_token:
        body["nextPageToken"] = next_token
    return body


@router.get(
    "/{owner}/{deployment}/metrics",
    response_model=DeploymentMetrics | DeploymentSparkline,
    response_model_exclude_unset=True,
)
async def deployment_metrics(
    request: Request,
    auth: DeploymentsAuth,
    session: DbSession,
    owner: str,
    deployment: str,
    range_name: Annotated[str, Query(alias="range")] = "24h",
    sparkline: str | None = None,
    view: str | None = None,
) -> Body:
    """Full (summary + time series), ``view=overview`` (requests, errors, p95) or ``sparkline=true``."""
    row = await deployment_service.get_by_slug(session, auth.account, owner, deployment)
    if view not in (None, "", "overview"):
        raise BadRequest("view must be 'overview'", details=[{"field": "view"}])
    return client(**await _metrics(request, session, row, range_name, sparkline=sparkline, overview=view == "overview"))


async def _metrics(
    request: Request, session: DbSession, row: DeploymentRow, range_name: str, *, sparkline: str | None, overview: bool
) -> dict[str, Any]:
    await _telemetry(request)
    deployment = row[0]
    if sparkline is not None and sparkline.lower() == "true":
        return await metrics.sparkline_view(session, deployment.id)
    if overview:
        return await metrics.overview_view(session, deployment.id, range_name=range_name, region=deployment.region)
    return await metrics.metrics_view(session, deployment.id, range_name=range_name, region=deployment.region)


@router.post("/{owner}/{deployment}/predict", response_model=None, **relayed_predict("PredictForm"))
async def predict_deployment(
    request: Request, auth: PredictAuth, session: DbSession, owner: str, deployment: str
) -> Response:
    """Multipart, as model predict (clients.md §1.7); answered by one of the deployment's replicas."""
    row = await deployment_service.get_by_slug(session, auth.account, owner, deployment)
    await session.commit()  # no transaction held open while a replica works
    return await forward(request, row[0], default_iou=PLATFORM_IOU)


# -- serviceUrl: POST /d/{deploymentId} -----------------------------------------------------------------


@service_router.post("/d/{deployment_id}", response_model=None, **relayed_predict("HubPredictForm"))
async def predict_dedicated(request: Request, session: DbSession, deployment_id: str) -> Response:
    """The dedicated HUB inference API: multipart ``file`` (or ``source``), ``imgsz``, ``conf``, ``iou``,
    ``model`` (optional, ignored: the deployment serves one model); ``x-api-key`` or Bearer."""
    return await _predict_dedicated(request, session, deployment_id)


@service_router.post("/d/{deployment_id}/predict", response_model=None, **relayed_predict("HubPredictForm"))
async def predict_dedicated_path(request: Request, session: DbSession, deployment_id: str) -> Response:
    """The same, at ``{serviceUrl}/predict``."""
    return await _predict_dedicated(request, session, deployment_id)


async def _predict_dedicated(request: Request, session: DbSession, deployment_id: str) -> Response:
    auth = await authenticate(request, session)
    auth.require(Scope.inference)
    row = await deployment_service.get(session, auth.account, deployment_id)
    await session.commit()
    return await forward(request, row[0], default_iou=HUB_IOU)
