"""The ``ray`` deployment backend: each deployment is a Ray Serve application on a Ray cluster.

The server never imports ``ray``: it renders one Serve config for every deployment it runs and PUTs it
to the dashboard's Serve REST API (``{address}/api/serve/applications/``, declarative for all
applications at once), reads their status back from the same URL, and forwards predict requests to
Serve's HTTP proxy (``settings.ray_serve_url``).

- **Applications**: name = deployment id, route ``/{deployment id}``, built by
  ``yolostack.deployments.serve_app:build`` from ``args`` (a ``ServeArgs``); each replica downloads the
  converted model from the API server with the deployment's artifact token.
- **Generations**: the model version and its settings are ``args`` (a change makes Serve roll its
  replicas over, new ones before old ones stop: ``max_surge_percent`` 100); the generation itself is the
  ``user_config``, so a resize alone restarts nothing.
- **Autoscaling** is Serve's own, configured from minInstances/maxInstances and ``DeploymentSettings``.
- **Restarts**: the applications outlive this server; on first contact it adopts the ones it finds
  (so its first PUT keeps them) until the reconciler applies or removes them. Applications of other
  import paths are carried over unchanged in every PUT.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel

from yolostack.config import DeploymentSettings, InferenceSettings
from yolostack.deployments.backends import (
    BackendState,
    EventSink,
    Forwarded,
    Phase,
    ReplicaPlan,
    ReplicaUnavailable,
    forwarded_headers,
)
from yolostack.deployments.replica import REPLICA_HEADER

APPLICATIONS = "/api/serve/applications/"
IMPORT_PATH = "yolostack.deployments.serve_app:build"
# The name of serve_app's deployment (the config's deployment options are matched to it by name).
DEPLOYMENT_NAME = "replica"
CONTROL_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# Answers of Serve itself (not of a replica: those carry REPLICA_HEADER) that mean "not yet, try again":
# 404 before the proxy knows the route, 503 while no replica can take it, 500/502 when one died mid-request.
RETRIED_STATUSES = frozenset({404, 500, 502, 503})
# A share of the node's "region:<name>" resource only pins replicas to that region's nodes.
REGION_SHARE = 0.001
METRICS_INTERVAL_S = 0.5
LOOK_BACK_PERIOD_S = 2.0
PUT_RETRY_SECONDS = 2.0
# An application we PUT that a status read this long after the PUT does not list was lost.
LOST_AFTER_SECONDS = 5.0
LOOPBACK = ("127.0.0.1", "localhost", "::1")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
# The last line of a Python traceback: "RuntimeError: …", "ray.exceptions.RayTaskError(…): …".
ERROR_LINE = re.compile(r"^[\w.]+(Error|Exception)\b")


class ServeArgs(BaseModel):
    """What a Serve replica needs to load one model version (the application's ``args``)."""

    deployment_id: str
    version: str
    cpu: int
    metadata: dict[str, Any]
    inference: InferenceSettings
    artifact_url: str
    artifact_token: str | None
    artifact_files: list[str]


class RayServeBackend:
    name = "ray"

    def __init__(self, settings: DeploymentSettings, address: str, token: str | None, events: EventSink) -> None:
        self.settings = settings
        self.address = address.rstrip("/")
        self.serve_url = settings.ray_serve_url.rstrip("/")
        self.events = events
        self._plans: dict[str, ReplicaPlan] = {}
        # Our applications found on the cluster at first contact, kept as they are until applied or removed.
        self._adopted: dict[str, dict[str, Any]] | None = None
        # Every change bumps the version; the config is in step once a PUT of the latest version succeeded.
        self._version = 0
        self._pushed = 0
        self._pushed_at = -float("inf")
        self._put_error: str | None = None
        self._retry_at = 0.0
        self._put_lock = asyncio.Lock()
        self._status_lock = asyncio.Lock()
        self._status: dict[str, Any] | None = None
        self._status_error: str | None = None
        self._status_at = -float("inf")
        self._serving: dict[str, int] = {}
        self._observed: dict[str, BackendState] = {}
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._control = httpx.AsyncClient(base_url=self.address, headers=headers, timeout=CONTROL_TIMEOUT)
        self._proxy = httpx.AsyncClient(
            timeout=settings.request_timeout_seconds,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
        )

    # -- the interface ----------------------------------------------------------------------------------

    def deployments(self) -> set[str]:
        return set(self._plans) | set(self._adopted or ())

    async def apply(self, plan: ReplicaPlan) -> None:
        if not plan.artifact_url:
            raise ValueError("the ray backend needs the plan's artifact_url (replicas download the model)")
        await self._adopt()
        current = self._plans.get(plan.deployment_id)
        adopted = (self._adopted or {}).pop(plan.deployment_id, None)
        if current is not None and current.generation == plan.generation and adopted is None:
            return
        if adopted is not None and _config_generation(adopted) == plan.generation:
            # The running replicas' token is still good for this generation; a fresh one (tokens carry their
            # signing time) would change the args, and Serve would restart every replica.
            plan = dataclasses.replace(plan, artifact_token=(adopted.get("args") or {}).get("artifact_token"))
            what = f"ray serve: took over the running application (generation {plan.generation})"
        else:
            verb = "starting" if current is None and adopted is None else "rolling out"
            what = f"ray serve: {verb} generation {plan.generation} ({plan.version})"
        self._plans[plan.deployment_id] = plan
        self.events.event(plan.deployment_id, "INFO", what)
        self._version += 1
        await self._push()

    async def remove(self, deployment_id: str) -> None:
        await self._adopt()
        planned = self._plans.pop(deployment_id, None)
        adopted = (self._adopted or {}).pop(deployment_id, None)
        self._serving.pop(deployment_id, None)
        self._observed.pop(deployment_id, None)
        if planned is None and adopted is None:
            return
        self.events.event(deployment_id, "INFO", "ray serve: deleting the application")
        self._version += 1
        await self._push()

    async def state(self, deployment_id: str) -> BackendState:
        await self._refresh(max_age=self.settings.interval_seconds)
        return self._observe(deployment_id)

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
        sent = forwarded_headers(headers)
        deadline = time.monotonic() + self.settings.queue_timeout_seconds
        delay = 0.05
        while True:
            if deployment_id not in self.deployments():
                raise ReplicaUnavailable("the deployment is not running")
            observed = self._observed.get(deployment_id)
            if observed is not None and observed.phase == "failed":
                raise ReplicaUnavailable(observed.message or "the deployment failed")
            try:
                response = await self._proxy.request(
                    method, f"{self.serve_url}/{deployment_id}{path}", content=body, headers=sent, timeout=timeout
                )
            except httpx.TransportError as error:
                if isinstance(error, httpx.TimeoutException) and not isinstance(error, httpx.ConnectTimeout):
                    raise ReplicaUnavailable(f"no answer from Ray Serve within {timeout:g} s") from error
                reason = f"Ray Serve at {self.serve_url} does not answer ({type(error).__name__})"
            else:
                if REPLICA_HEADER in response.headers or response.status_code not in RETRIED_STATUSES:
                    return Forwarded.of(response)
                reason = f"Ray Serve answered HTTP {response.status_code}"
            if time.monotonic() + delay > deadline:
                raise ReplicaUnavailable(f"no replica took the request within the queue timeout: {reason}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def tick(self) -> None:
        await self._adopt()
        if self._dirty and time.monotonic() >= self._retry_at:
            await self._push()
        await self._refresh(max_age=0.0)
        await self._redeploy_lost()
        for deployment_id in sorted(self.deployments()):
            self._observe(deployment_id)

    async def close(self) -> None:
        """Forget the cluster; its applications keep serving (a restarted server adopts them)."""
        await self._control.aclose()
        await self._proxy.aclose()

    # -- the Serve config -------------------------------------------------------------------------------

    @property
    def _dirty(self) -> bool:
        return self._pushed != self._version

    def config(self) -> dict[str, Any]:
        """The one Serve config for every application: ours from their plans, the rest as found."""
        ours = {name: self.application(plan) for name, plan in self._plans.items()}
        ours |= {name: app for name, app in (self._adopted or {}).items() if name not in ours}
        foreign = [
            app
            for name, details in (self._status or {}).get("applications", {}).items()
            if name not in ours
            and (app := details.get("deployed_app_config"))
            and app.get("import_path") != IMPORT_PATH
        ]
        url = urlsplit(self.serve_url)
        host = "127.0.0.1" if (url.hostname or "127.0.0.1") in LOOPBACK else "0.0.0.0"  # noqa: S104
        return {
            "http_options": {"host": host, "port": url.port or 80},
            "applications": [ours[name] for name in sorted(ours)] + foreign,
        }

    def application(self, plan: ReplicaPlan) -> dict[str, Any]:
        settings = self.settings
        args = ServeArgs(
            deployment_id=plan.deployment_id,
            version=plan.version,
            cpu=plan.cpu,
            metadata=plan.metadata,
            inference=plan.inference,
            artifact_url=plan.artifact_url or "",
            artifact_token=plan.artifact_token,
            artifact_files=list(plan.artifact_files),
        )
        maximum = max(1, plan.max_instances, plan.min_instances)
        autoscaling: dict[str, Any] = {
            "min_replicas": plan.min_instances,
            "max_replicas": maximum,
            "target_ongoing_requests": settings.target_ongoing_requests,
            "upscale_delay_s": settings.upscale_delay_seconds,
            "downscale_delay_s": settings.downscale_delay_seconds,
            "metrics_interval_s": METRICS_INTERVAL_S,
            "look_back_period_s": LOOK_BACK_PERIOD_S,
        }
        if plan.min_instances == 0:
            # One replica proves that the model loads; it goes after the scale-to-zero delay.
            autoscaling |= {"initial_replicas": 1, "downscale_to_zero_delay_s": settings.scale_to_zero_delay_seconds}
        actor: dict[str, Any] = {
            "num_cpus": settings.ray_replica_cpus if settings.ray_replica_cpus is not None else plan.cpu
        }
        if settings.ray_region_resources:
            actor["resources"] = {f"region:{plan.region}": REGION_SHARE}
        deployment = {
            "name": DEPLOYMENT_NAME,
            "max_ongoing_requests": settings.max_ongoing_requests,
            "autoscaling_config": autoscaling,
            "ray_actor_options": actor,
            "user_config": {"generation": plan.generation},
            # New replicas start before old ones stop, so a rollout never leaves the route without one.
            "max_surge_percent": 100,
        }
        return {
            "name": plan.deployment_id,
            "route_prefix": f"/{plan.deployment_id}",
            "import_path": IMPORT_PATH,
            "args": args.model_dump(mode="json"),
            "deployments": [deployment],
        }

    async def _push(self) -> None:
        async with self._put_lock:
            if not self._dirty:
                return
            if not await self._adopt():
                self._put_failed(self._status_error or f"Ray at {self.address} does not answer")
                return
            version = self._version
            try:
                response = await self._control.put(APPLICATIONS, json=self.config())
            except httpx.TransportError as error:
                self._put_failed(f"Ray at {self.address} does not answer ({type(error).__name__})")
                return
            if response.status_code != 200:
                self._put_failed(f"Ray Serve refused the config: {_summary(response)}")
                return
            self._pushed = version
            self._pushed_at = time.monotonic()
            self._put_error = None
            self._status_at = -float("inf")

    def _put_failed(self, error: str) -> None:
        """Kept for ``tick`` to retry; ``state`` reports the error (and logs it once) meanwhile."""
        self._retry_at = time.monotonic() + PUT_RETRY_SECONDS
        self._put_error = error

    async def _redeploy_lost(self) -> None:
        """PUT again when applications we deployed are gone (the cluster or Serve was restarted)."""
        if self._dirty or self._status is None or self._status_error is not None:
            return
        if self._status_at < self._pushed_at + LOST_AFTER_SECONDS:
            return
        present = self._status.get("applications") or {}
        lost = sorted(name for name in self._plans if name not in present)
        for deployment_id in lost:
            self.events.event(
                deployment_id, "WARNING", "ray serve: the application is gone from the cluster; deploying it again"
            )
        if lost:
            self._version += 1
            await self._push()

    async def _adopt(self) -> bool:
        """On first contact, keep the applications of ours that a previous server left running."""
        if self._adopted is not None:
            return True
        await self._refresh(max_age=0.0)
        if self._status is None:
            return False
        self._adopted = {
            name: app
            for name, details in self._status.get("applications", {}).items()
            if name not in self._plans
            and (app := details.get("deployed_app_config"))
            and app.get("import_path") == IMPORT_PATH
        }
        return True

    # -- the status -------------------------------------------------------------------------------------

    async def _refresh(self, *, max_age: float) -> None:
        async with self._status_lock:
            if time.monotonic() - self._status_at <= max_age:
                return
            self._status_at = time.monotonic()
            try:
                response = await self._control.get(APPLICATIONS)
            except httpx.TransportError as error:
                self._status_error = f"Ray at {self.address} does not answer ({type(error).__name__})"
                return
            if response.status_code in (401, 403):
                self._status_error = f"Ray at {self.address} refused our token ({_summary(response)})"
                return
            try:
                status = response.json() if response.status_code == 200 else None
            except ValueError:
                status = None
            if not isinstance(status, dict):
                self._status_error = f"Ray at {self.address}: {_summary(response)}"
                return
            self._status = status
            self._status_error = self._proxy_mismatch(status)

    def _proxy_mismatch(self, status: dict[str, Any]) -> str | None:
        """Serve keeps the proxy port it started with (a PUT with another one is ignored without a word)."""
        port = (status.get("http_options") or {}).get("port")
        expected = urlsplit(self.serve_url).port or 80
        if port is None or port == expected:
            return None
        return (
            f"Ray Serve's proxy listens on port {port}, not on the port of ray_serve_url ({self.serve_url}); "
            "change the URL or restart Serve (`serve shutdown`)"
        )

    def _observe(self, deployment_id: str) -> BackendState:
        """The deployment's state from the last status read; logs what changed since the last look."""
        plan = self._plans.get(deployment_id)
        app = ((self._status or {}).get("applications") or {}).get(deployment_id)
        state = self._state_of(deployment_id, plan, app)
        if plan is not None or deployment_id in (self._adopted or {}):
            self._log_change(deployment_id, self._observed.get(deployment_id), state)
            self._observed[deployment_id] = state
        return state

    def _state_of(self, deployment_id: str, plan: ReplicaPlan | None, app: dict[str, Any] | None) -> BackendState:
        details = ((app or {}).get("deployments") or {}).get(DEPLOYMENT_NAME) or {}
        running = sum(1 for replica in details.get("replicas") or () if replica.get("state") == "RUNNING")
        if plan is None and deployment_id not in (self._adopted or {}):
            return BackendState(phase="absent", message="stopping" if app else None, instances=running)
        previous = self._observed.get(deployment_id)
        if app is not None and not details and previous is not None:
            # While Serve rebuilds the application (a new generation) it lists no replicas, but the old ones serve.
            running = previous.instances
        # Ray unreachable, our token refused, the config not taken, or the proxy on another port.
        trouble = self._status_error or (self._put_error if self._dirty else None)
        if trouble is not None:
            return BackendState(
                phase="deploying",
                message=trouble,
                instances=previous.instances if previous else 0,
                serving_generation=self._serving.get(deployment_id),
            )
        if app is None:
            return BackendState(phase="deploying", serving_generation=self._serving.get(deployment_id))
        status = app.get("status")
        message = _serve_message(details.get("message") or app.get("message"))
        generation = _config_generation(app.get("deployed_app_config") or {})
        wanted = plan.generation if plan is not None else generation
        phase: Phase
        if status == "RUNNING" and generation == wanted and generation is not None:
            phase, message = "ready", None
            self._serving[deployment_id] = generation
        elif status in ("DEPLOY_FAILED", "UNHEALTHY"):
            # A failed rollout with the previous generation still serving is not a failed deployment.
            phase = "ready" if running and deployment_id in self._serving else "failed"
        else:
            phase = "deploying"
        return BackendState(
            phase=phase, message=message, instances=running, serving_generation=self._serving.get(deployment_id)
        )

    def _log_change(self, deployment_id: str, before: BackendState | None, after: BackendState) -> None:
        changed = before is None or before.phase != after.phase
        if changed and after.phase == "ready":
            self.events.event(
                deployment_id,
                "INFO",
                f"ray serve: generation {after.serving_generation} running on {after.instances} replica(s)",
            )
        elif changed and after.phase == "failed":
            self.events.event(deployment_id, "ERROR", f"ray serve: deployment failed: {after.message}")
        elif after.message and (changed or before is None or before.message != after.message):
            self.events.event(deployment_id, "WARNING", f"ray serve: {after.message}")
        if before is not None and before.instances != after.instances:
            self.events.event(deployment_id, "INFO", f"ray serve: {before.instances} → {after.instances} replicas")


def _config_generation(config: dict[str, Any]) -> int | None:
    """The generation an application config deploys (our ``user_config``)."""
    for deployment in config.get("deployments") or ():
        if deployment.get("name") == DEPLOYMENT_NAME:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                return int((deployment.get("user_config") or {})["generation"])
    return None


def _serve_message(text: str | None) -> str | None:
    """Serve's status message in one line: its first line and the error its traceback ends with."""
    lines = [line.strip() for line in ANSI_ESCAPE.sub("", text or "").splitlines() if line.strip()]
    if not lines:
        return None
    errors = [line for line in lines[1:] if ERROR_LINE.match(line)]
    return (f"{lines[0]} {errors[-1]}" if errors else lines[0])[:1000]


def _summary(response: httpx.Response) -> str:
    """Status and the last line of Ray's answer (its errors are Python tracebacks; the last line says why)."""
    lines = [line.strip() for line in response.text.splitlines() if line.strip()]
    last = lines[-1][:500] if lines else ""
    return f"HTTP {response.status_code}" + (f" {last}" if last else "")
