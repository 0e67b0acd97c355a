"""What runs a deployment's replicas: one interface, two backends (``local`` processes, ``ray`` Serve).

The reconciler (``deployments.tasks``) hands a backend a ``ReplicaPlan`` per running deployment and reads
its ``BackendState`` back into the row; the proxy (``deployments.serving``) forwards requests through
``forward``. Lifecycle events a backend sees on its own (a replica started, died, was replaced) go to the
``EventSink`` it was given, which writes them to the deployment's logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx

from yolostack.config import InferenceSettings
from yolostack.deployments.replica import REPLICA_HEADER

Phase = Literal["deploying", "ready", "failed", "absent"]


# What the relay passes on to a replica of what the caller sent (the body goes as is).
FORWARDED_HEADERS = ("content-type", "x-yolostack-default-iou", "x-request-id")


def forwarded_headers(headers: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.lower() in FORWARDED_HEADERS}


class ReplicaUnavailable(Exception):
    """No replica could take the request in time (stopped, still starting, or all of them failing)."""


@dataclass(frozen=True)
class ReplicaPlan:
    """One generation of a deployment: the model version to serve and how many replicas may serve it."""

    deployment_id: str
    generation: int
    min_instances: int
    max_instances: int
    cpu: int
    memory_gi: int
    region: str
    # The converted model (model.onnx + meta.json, model.pt for torch) on this machine (local backend) …
    model_dir: Path | None
    # … or where a replica elsewhere downloads it: ``{artifact_url}/{name}`` with ``Authorization: Bearer
    # {artifact_token}`` for each name in ``artifact_files`` (ray backend).
    artifact_url: str | None
    artifact_token: str | None
    artifact_files: tuple[str, ...]
    # Served version (the model's serving key's last segment) and the static part of ``metadata``.
    version: str
    metadata: dict[str, Any]
    inference: InferenceSettings


@dataclass
class BackendState:
    phase: Phase
    message: str | None = None
    instances: int = 0
    # The generation whose replicas take new requests (None before the first one is ready).
    serving_generation: int | None = None
    # Percent of what the deployment was given (cpu cores, memoryGi); None when unknown.
    cpu_utilization: float | None = None
    memory_utilization: float | None = None


@dataclass(frozen=True)
class Forwarded:
    """A replica's answer, passed through to the caller as is."""

    status_code: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, response: httpx.Response, replica: str | None = None) -> Forwarded:
        """The answer's status, body, content type and replica header (``replica`` when it has none)."""
        headers = {"content-type": response.headers.get("content-type", "application/json")}
        named = response.headers.get(REPLICA_HEADER, replica)
        if named is not None:
            headers[REPLICA_HEADER] = named
        return cls(status_code=response.status_code, body=response.content, headers=headers)


class EventSink(Protocol):
    def event(self, deployment_id: str, severity: str, message: str) -> None: ...


class DeploymentBackend(Protocol):
    name: str

    async def apply(self, plan: ReplicaPlan) -> None:
        """Run ``plan``: start the deployment, or roll its replicas over to a new generation with no
        failed requests (old replicas keep serving until the new ones are ready, then drain)."""

    async def remove(self, deployment_id: str) -> None:
        """Stop every replica of the deployment (in-flight requests finish first, within a grace period)."""

    async def state(self, deployment_id: str) -> BackendState:
        """What the backend runs for the deployment now (``absent`` when nothing)."""

    def deployments(self) -> set[str]:
        """Ids of the deployments this backend runs something for."""

    async def forward(
        self,
        deployment_id: str,
        body: bytes,
        headers: dict[str, str],
        *,
        timeout: float,
        method: str = "POST",
        path: str = "/predict",
    ) -> Forwarded:
        """Send one request to a replica (a predict with the caller's multipart body, or ``GET /health``);
        cold-start one if none runs. Raises ``ReplicaUnavailable`` when none can take it in time."""

    async def tick(self) -> None:
        """Periodic work: autoscale, replace dead replicas, retire drained ones, refresh remote status."""

    async def close(self) -> None:
        """Stop everything (server shutdown)."""
