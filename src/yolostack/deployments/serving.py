"""Relaying a predict request to a deployment's replicas, and recording it (metrics and a log line).

The caller's multipart body goes to a replica untouched and its answer comes back untouched: parsing,
decoding and inference happen in the replica processes, so the API process only moves bytes.
"""

from __future__ import annotations

import time

from fastapi import Request, Response

from yolostack.config import Settings
from yolostack.core.errors import Conflict, PayloadTooLarge, ServiceUnavailable
from yolostack.deployments.backends import DeploymentBackend, ReplicaUnavailable
from yolostack.deployments.replica import DEFAULT_IOU_HEADER, REPLICA_HEADER
from yolostack.deployments.telemetry import DeploymentTelemetry
from yolostack.tables import Deployment, DeploymentStatus, DesiredState

# Multipart framing around the largest accepted video.
BODY_SLACK = 1024 * 1024


def _backend(request: Request) -> DeploymentBackend:
    backend: DeploymentBackend | None = getattr(request.app.state, "deployment_backend", None)
    if backend is None:
        raise ServiceUnavailable(
            "this server process runs no deployment replicas (YOLOSTACK_DEPLOYMENTS__RUN_REPLICAS)"
        )
    return backend


async def forward(request: Request, deployment: Deployment, *, default_iou: float) -> Response:
    if deployment.desired == DesiredState.stopped or deployment.status in (
        DeploymentStatus.stopping,
        DeploymentStatus.stopped,
    ):
        raise Conflict('the deployment is stopped: start it first (PATCH {"action": "start"})')
    if deployment.status == DeploymentStatus.failed:
        raise Conflict(f"the deployment failed: {deployment.status_message or 'see its logs'}")
    settings: Settings = request.app.state.settings
    backend = _backend(request)
    telemetry: DeploymentTelemetry = request.app.state.deployment_telemetry
    limit = max(settings.inference.max_video_bytes, settings.inference.max_image_bytes) + BODY_SLACK
    if int(request.headers.get("content-length") or 0) > limit:
        raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    started = time.perf_counter()
    body = await request.body()
    headers = {
        "content-type": request.headers.get("content-type", ""),
        DEFAULT_IOU_HEADER: str(default_iou),
        "x-request-id": request.headers.get("x-request-id", ""),
    }

    def record(status: int, size: int, replica: str | None, error: str | None = None) -> None:
        telemetry.request(
            deployment.id,
            method=request.method,
            url=str(request.url.path),
            status=status,
            latency_ms=(time.perf_counter() - started) * 1000,
            request_size=len(body),
            response_size=size,
            user_agent=request.headers.get("user-agent"),
            remote_ip=request.client.host if request.client else None,
            replica=replica,
            error=error,
        )

    try:
        result = await backend.forward(
            deployment.id, body, headers, timeout=settings.deployments.request_timeout_seconds
        )
    except ReplicaUnavailable as error:
        record(503, 0, None, str(error))
        raise ServiceUnavailable(f"no replica could take the request: {error}", headers={"Retry-After": "5"}) from error
    replica = result.headers.get(REPLICA_HEADER)
    record(result.status_code, len(result.body), replica)
    return Response(content=result.body, status_code=result.status_code, headers=result.headers)
