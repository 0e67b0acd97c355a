"""The ``local`` deployment backend: replicas are child processes of this server on loopback ports.

- **Routing**: each request goes to the ready replica of the serving generation with the fewest requests
  in flight, at most ``max_ongoing_requests`` each; the rest wait here (cold start included) up to the
  queue timeout. A replica that drops a connection is taken out and the request is retried on another.
- **Autoscaling** (Ray Serve's rule): desired = ceil(mean in-flight over the look-back / target), within
  min..max; up after ``upscale_delay``, down after ``downscale_delay``, to zero (minInstances 0) after
  ``scale_to_zero_delay`` without a request.
- **Rollout**: a new generation (start, replace, resize) starts its replicas beside the old ones; once
  they are ready new requests go to them and the old ones drain, then stop. No request fails.
- **Dead replicas** are logged and replaced on the next tick.
- **Cold start**: a spare interpreter with everything imported waits for its spec on stdin, so a new
  replica only loads its model (``deployments.processes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from yolostack.config import DeploymentSettings
from yolostack.deployments.backends import (
    BackendState,
    EventSink,
    Forwarded,
    Phase,
    ReplicaPlan,
    ReplicaUnavailable,
    forwarded_headers,
)
from yolostack.deployments.processes import ReplicaProcesses, drain, terminate
from yolostack.deployments.replica import ReplicaSpec

GIB = 1024**3
LOOK_BACK_SECONDS = 2.0
STOP_GRACE_SECONDS = 10.0
KILL_AFTER_SECONDS = 5.0
# A generation whose replicas failed to start this many times is failed.
START_FAILURES = 2
FORWARD_ATTEMPTS = 3


@dataclass(eq=False)
class LocalReplica:
    id: str
    generation: int
    process: asyncio.subprocess.Process
    started: float
    state: str = "starting"  # starting → ready → draining → stopped
    port: int | None = None
    inflight: int = 0
    stats: psutil.Process | None = None
    retiring: bool = False  # stopped on purpose: its exit is not a crash

    @property
    def alive(self) -> bool:
        return self.state in ("starting", "ready")


@dataclass(eq=False)
class _Deployment:
    plan: ReplicaPlan
    replicas: list[LocalReplica] = field(default_factory=list)
    serving_generation: int | None = None
    inflight: int = 0
    samples: deque[tuple[float, int]] = field(default_factory=deque)
    last_request: float = field(default_factory=time.monotonic)
    start_failures: dict[int, int] = field(default_factory=dict)
    # The current plan's generation failed to start (and none serves): the deployment failed.
    failure: str | None = None
    # A rollout failed while an older generation served: it serves on (the plan reverted to it).
    rolled_back: str | None = None
    plans: dict[int, ReplicaPlan] = field(default_factory=dict)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    above_since: float | None = None
    below_since: float | None = None

    def of_generation(self, generation: int) -> list[LocalReplica]:
        return [replica for replica in self.replicas if replica.generation == generation and replica.alive]


class LocalBackend:
    name = "local"

    def __init__(self, settings: DeploymentSettings, work_dir: Path, events: EventSink, *, spares: int = 1) -> None:
        self.settings = settings
        self.work_dir = work_dir
        self.events = events
        self.processes = ReplicaProcesses(work_dir, spares)
        self._deployments: dict[str, _Deployment] = {}
        self._counter = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._http = httpx.AsyncClient(
            timeout=settings.request_timeout_seconds,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
        )

    # -- the interface ----------------------------------------------------------------------------------

    def deployments(self) -> set[str]:
        return set(self._deployments)

    async def apply(self, plan: ReplicaPlan) -> None:
        current = self._deployments.get(plan.deployment_id)
        if current is None:
            self._deployments[plan.deployment_id] = deployment = _Deployment(plan=plan, plans={plan.generation: plan})
            self.events.event(plan.deployment_id, "INFO", f"starting generation {plan.generation} ({plan.version})")
            await self._start(deployment, self._rollout_size(deployment, plan))
            return
        if plan.generation == current.plan.generation:
            return
        current.plan = plan
        current.plans[plan.generation] = plan
        current.failure = current.rolled_back = None
        size = self._rollout_size(current, plan)
        self.events.event(
            plan.deployment_id,
            "INFO",
            f"rolling out generation {plan.generation} ({plan.version}) on {size} replica(s)",
        )
        await self._start(current, size)

    async def remove(self, deployment_id: str) -> None:
        deployment = self._deployments.pop(deployment_id, None)
        if deployment is None:
            return
        async with deployment.changed:
            deployment.changed.notify_all()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while any(replica.inflight for replica in deployment.replicas) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.gather(*(self._stop(replica) for replica in deployment.replicas))
        self.events.event(deployment_id, "INFO", f"stopped {len(deployment.replicas)} replica(s)")
        if not self._deployments:
            await self.processes.drop_spares()

    async def state(self, deployment_id: str) -> BackendState:
        deployment = self._deployments.get(deployment_id)
        if deployment is None:
            return BackendState(phase="absent")
        alive = [replica for replica in deployment.replicas if replica.alive]
        cpu, memory = self._utilization(deployment)
        phase: Phase
        if deployment.failure is not None and deployment.serving_generation is None:
            phase = "failed"
        elif deployment.serving_generation == deployment.plan.generation:
            phase = "ready"
        else:
            phase = "deploying"
        return BackendState(
            phase=phase,
            message=deployment.failure or deployment.rolled_back,
            instances=len(alive),
            serving_generation=deployment.serving_generation,
            cpu_utilization=cpu,
            memory_utilization=memory,
        )

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
        deployment = self._deployments.get(deployment_id)
        if deployment is None:
            raise ReplicaUnavailable("the deployment is not running")
        deployment.inflight += 1
        deployment.last_request = time.monotonic()
        sent = forwarded_headers(headers)
        deadline = time.monotonic() + self.settings.queue_timeout_seconds
        try:
            for _ in range(FORWARD_ATTEMPTS):
                replica = await self._acquire(deployment, deadline)
                try:
                    response = await self._http.request(
                        method, f"http://127.0.0.1:{replica.port}{path}", content=body, headers=sent, timeout=timeout
                    )
                except httpx.TransportError as error:
                    if isinstance(error, httpx.TimeoutException) and not isinstance(error, httpx.ConnectTimeout):
                        raise ReplicaUnavailable(f"the replica did not answer within {timeout:g} s") from error
                    await self._lost(deployment, replica, f"{type(error).__name__}: {error}")
                    continue
                finally:
                    await self._release(deployment, replica)
                return Forwarded.of(response, replica.id)
            raise ReplicaUnavailable("every replica tried dropped the request")
        finally:
            deployment.inflight -= 1
            deployment.last_request = time.monotonic()

    async def tick(self) -> None:
        now = time.monotonic()
        for deployment in list(self._deployments.values()):
            await self._reap(deployment)
            await self._promote(deployment)
            await self._autoscale(deployment, now)
            await self._retire_drained(deployment)
        if self._deployments:
            await self.processes.keep_spares()

    async def close(self) -> None:
        deployments = list(self._deployments.values())
        self._deployments.clear()
        await asyncio.gather(*(self._stop(r, grace=0.0) for d in deployments for r in d.replicas))
        await self.processes.drop_spares()
        for task in list(self._tasks):
            task.cancel()
        await self._http.aclose()

    # -- routing ----------------------------------------------------------------------------------------

    async def _acquire(self, deployment: _Deployment, deadline: float) -> LocalReplica:
        limit = self.settings.max_ongoing_requests
        async with deployment.changed:
            while True:
                if self._deployments.get(deployment.plan.deployment_id) is not deployment:
                    raise ReplicaUnavailable("the deployment was stopped")
                generation = deployment.serving_generation
                candidates = [
                    replica
                    for replica in deployment.replicas
                    if replica.state == "ready" and replica.generation == generation and replica.inflight < limit
                ]
                if candidates:
                    chosen = min(candidates, key=lambda replica: replica.inflight)
                    chosen.inflight += 1
                    return chosen
                if not any(replica.alive for replica in deployment.replicas):
                    if deployment.failure is not None and deployment.serving_generation is None:
                        raise ReplicaUnavailable(deployment.failure)
                    self.events.event(deployment.plan.deployment_id, "INFO", "cold start: no replica was running")
                    await self._start(deployment, 1)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ReplicaUnavailable("no replica became free within the queue timeout")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await deployment.changed.wait()

    async def _release(self, deployment: _Deployment, replica: LocalReplica) -> None:
        replica.inflight -= 1
        async with deployment.changed:
            deployment.changed.notify_all()

    async def _lost(self, deployment: _Deployment, replica: LocalReplica, reason: str) -> None:
        if replica.state in ("starting", "ready"):
            replica.state = "stopped"
            self.events.event(
                deployment.plan.deployment_id,
                "ERROR",
                f"replica {replica.id} dropped a request ({reason}); replacing it",
            )
            self._spawn_task(self._stop(replica, grace=0.0))
            await self._fill(deployment)

    # -- lifecycle --------------------------------------------------------------------------------------

    def _rollout_size(self, deployment: _Deployment, plan: ReplicaPlan) -> int:
        """Replicas a new generation starts with: as many as serve now, at least one (to prove it loads)."""
        serving = len(deployment.of_generation(deployment.serving_generation or -1))
        return max(1, min(plan.max_instances, max(plan.min_instances, serving)))

    async def _start(self, deployment: _Deployment, count: int) -> None:
        for _ in range(count):
            replica = await self._launch(deployment.plan)
            deployment.replicas.append(replica)
            self._spawn_task(self._await_ready(deployment, replica))

    async def _launch(self, plan: ReplicaPlan) -> LocalReplica:
        replica_id = f"r{next(self._counter)}"
        assert plan.model_dir is not None, "the local backend serves a model on this machine"
        spec = ReplicaSpec(
            deployment_id=plan.deployment_id,
            generation=plan.generation,
            replica_id=replica_id,
            model_dir=str(plan.model_dir.resolve()),  # the replica runs in its own cwd
            version=plan.version,
            cpu=plan.cpu,
            metadata=plan.metadata,
            inference=plan.inference,
        )
        process = await self.processes.start(spec)
        return LocalReplica(id=replica_id, generation=plan.generation, process=process, started=time.monotonic())

    async def _await_ready(self, deployment: _Deployment, replica: LocalReplica) -> None:
        deployment_id = deployment.plan.deployment_id
        stdout = replica.process.stdout
        assert stdout is not None
        try:
            async with asyncio.timeout(self.settings.replica_start_timeout_seconds):
                line = await stdout.readline()
            event = json.loads(line) if line.strip() else {"event": "failed", "error": "exited before loading"}
        except TimeoutError:
            event = {"event": "failed", "error": f"not ready after {self.settings.replica_start_timeout_seconds:g} s"}
        except ValueError:
            event = {"event": "failed", "error": f"unexpected output: {line[:200]!r}"}
        if event.get("event") == "ready" and replica.state == "starting":
            replica.port = int(event["port"])
            replica.state = "ready"
            with contextlib.suppress(psutil.Error):
                replica.stats = psutil.Process(int(event["pid"]))
                replica.stats.cpu_percent(None)
            elapsed = time.monotonic() - replica.started
            self.events.event(
                deployment_id,
                "INFO",
                f"replica {replica.id} ready in {elapsed:.2f} s (generation {replica.generation})",
            )
            await self._promote(deployment)
        elif replica.state == "starting":
            replica.state = "stopped"
            message = f"replica {replica.id} failed to start: {event.get('error') or 'unknown error'}"
            failures = deployment.start_failures.get(replica.generation, 0) + 1
            deployment.start_failures[replica.generation] = failures
            self.events.event(deployment_id, "ERROR", message)
            if replica.generation == deployment.plan.generation and (
                failures >= START_FAILURES or not self._retryable(event)
            ):
                self._generation_failed(deployment, message)
            await terminate(replica.process, grace=0.0)
        if stdout is not None:
            self._spawn_task(drain(stdout))
        async with deployment.changed:
            deployment.changed.notify_all()

    def _generation_failed(self, deployment: _Deployment, message: str) -> None:
        failed, serving = deployment.plan.generation, deployment.serving_generation
        if serving is None or serving == failed:
            deployment.failure = message
            self.events.event(deployment.plan.deployment_id, "ERROR", f"generation {failed} failed")
            return
        # Roll back: the serving generation's plan is the plan again; the failed one's replicas go.
        deployment.plan = deployment.plans[serving]
        deployment.rolled_back = f"rollout of generation {failed} failed ({message}); generation {serving} serves"
        for replica in deployment.replicas:
            if replica.generation == failed and replica.alive:
                replica.state, replica.retiring = "draining", True
        self.events.event(deployment.plan.deployment_id, "ERROR", deployment.rolled_back)

    @staticmethod
    def _retryable(event: dict[str, Any]) -> bool:
        """A model that cannot load will not load on the next try; a timeout or a crash might."""
        error = str(event.get("error") or "")
        return not error.startswith(("EngineError", "FileNotFoundError", "ValueError"))

    async def _promote(self, deployment: _Deployment) -> None:
        """Switch new requests to the newest generation once all its replicas are ready; drain the old."""
        generation = deployment.plan.generation
        if deployment.serving_generation == generation:
            return
        fresh = deployment.of_generation(generation)
        if not fresh or any(replica.state != "ready" for replica in fresh):
            return
        previous = deployment.serving_generation
        deployment.serving_generation = generation
        for replica in deployment.replicas:
            if replica.generation != generation and replica.alive:
                replica.state = "draining"
                replica.retiring = True
        if previous is not None:
            self.events.event(
                deployment.plan.deployment_id,
                "INFO",
                f"generation {generation} serves; generation {previous} drains",
            )
        async with deployment.changed:
            deployment.changed.notify_all()

    async def _reap(self, deployment: _Deployment) -> None:
        for replica in list(deployment.replicas):
            code = replica.process.returncode
            if code is None:
                continue
            deployment.replicas.remove(replica)
            if replica.retiring or replica.state not in ("ready", "draining"):
                continue
            replica.state = "stopped"
            detail = f"signal {-code}" if code < 0 else f"code {code}"
            self.events.event(
                deployment.plan.deployment_id,
                "ERROR",
                f"replica {replica.id} exited unexpectedly ({detail}); replacing it",
            )
        await self._fill(deployment)

    async def _fill(self, deployment: _Deployment) -> None:
        """Keep at least ``minInstances`` replicas of the newest generation (unless it failed)."""
        if deployment.failure is not None:
            return
        alive = len(deployment.of_generation(deployment.plan.generation))
        missing = deployment.plan.min_instances - alive
        if deployment.serving_generation != deployment.plan.generation and alive == 0:
            missing = max(missing, self._rollout_size(deployment, deployment.plan))
        if missing > 0:
            await self._start(deployment, missing)

    async def _autoscale(self, deployment: _Deployment, now: float) -> None:
        plan = deployment.plan
        if deployment.serving_generation != plan.generation:
            return
        deployment.samples.append((now, deployment.inflight))
        while deployment.samples and deployment.samples[0][0] < now - LOOK_BACK_SECONDS:
            deployment.samples.popleft()
        load = sum(count for _, count in deployment.samples) / max(1, len(deployment.samples))
        desired = math.ceil(load / self.settings.target_ongoing_requests - 1e-9)
        desired = max(plan.min_instances, min(plan.max_instances, desired))
        current = deployment.of_generation(plan.generation)
        if desired > len(current):
            deployment.below_since = None
            deployment.above_since = deployment.above_since or now
            if now - deployment.above_since >= self.settings.upscale_delay_seconds:
                self.events.event(
                    plan.deployment_id, "INFO", f"scaling up {len(current)} → {desired} (in flight {load:.1f})"
                )
                await self._start(deployment, desired - len(current))
                deployment.above_since = None
        elif desired < len(current):
            deployment.above_since = None
            deployment.below_since = deployment.below_since or now
            idle = now - deployment.last_request
            if desired == 0:
                if deployment.inflight or idle < self.settings.scale_to_zero_delay_seconds:
                    desired = 1
                if desired >= len(current):
                    return
            if now - deployment.below_since >= self.settings.downscale_delay_seconds:
                surplus = sorted(current, key=lambda replica: (replica.state == "ready", replica.inflight))
                retired = surplus[: len(current) - desired]
                for replica in retired:
                    replica.state = "draining"
                    replica.retiring = True
                what = "scaling to zero" if desired == 0 else f"scaling down {len(current)} → {desired}"
                self.events.event(plan.deployment_id, "INFO", what)
                deployment.below_since = None
        else:
            deployment.above_since = deployment.below_since = None

    async def _retire_drained(self, deployment: _Deployment) -> None:
        for replica in list(deployment.replicas):
            if replica.state == "draining" and replica.inflight == 0:
                deployment.replicas.remove(replica)
                self._spawn_task(self._stop(replica))

    async def _stop(self, replica: LocalReplica, *, grace: float = STOP_GRACE_SECONDS) -> None:
        replica.retiring = True
        replica.state = "stopped"
        await terminate(replica.process, grace=min(grace, KILL_AFTER_SECONDS))

    def _utilization(self, deployment: _Deployment) -> tuple[float | None, float | None]:
        cpu = rss = 0.0
        counted = 0
        for replica in deployment.replicas:
            if replica.state != "ready" or replica.stats is None:
                continue
            try:
                cpu += replica.stats.cpu_percent(None)
                rss += replica.stats.memory_info().rss
            except psutil.Error:
                continue
            counted += 1
        if not counted:
            return None, None
        plan = deployment.plan
        return cpu / (plan.cpu * counted), 100.0 * rss / (plan.memory_gi * GIB * counted)

    def _spawn_task(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def plan(self, deployment_id: str) -> ReplicaPlan | None:
        """The plan the deployment's replicas run now (after a failed rollout: the one that still serves)."""
        deployment = self._deployments.get(deployment_id)
        return None if deployment is None else deployment.plan

    def replica_pids(self, deployment_id: str) -> dict[str, int]:
        """Running replicas' process ids (tests kill one to see it replaced)."""
        deployment = self._deployments.get(deployment_id)
        if deployment is None:
            return {}
        return {replica.id: replica.process.pid for replica in deployment.replicas if replica.alive}
