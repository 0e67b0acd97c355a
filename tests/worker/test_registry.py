"""The worker registry: the app starts every registered worker and stops them in reverse, each bounded."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.datastructures import State

from tests.fixtures.app import make_settings
from yolostack.app import WORKER_MODULES
from yolostack.core.db import Database
from yolostack.worker import registry as registry_module
from yolostack.worker.periodic import STOP_GRACE
from yolostack.worker.registry import WorkerContext, WorkerFactory, WorkerRegistry, workers


class Recorder:
    def __init__(self, name: str, events: list[str], *, hang: bool = False) -> None:
        self.name, self.events, self.hang = name, events, hang

    def start(self) -> None:
        self.events.append(f"start {self.name}")

    async def stop(self, grace: float = STOP_GRACE) -> None:
        self.events.append(f"stop {self.name}")
        if self.hang:
            await asyncio.Event().wait()


def recorder(name: str, events: list[str], *, hang: bool = False) -> WorkerFactory:
    def factory(_: WorkerContext) -> Recorder:
        return Recorder(name, events, hang=hang)

    return factory


def context(tmp_path: Path) -> WorkerContext:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}", tmp_path / "data")
    return WorkerContext(settings, Database(settings.resolved_database_url), State())


class TestRegistry:
    async def test_starts_in_order_and_stops_in_reverse(self, tmp_path: Path) -> None:
        events: list[str] = []
        registry = WorkerRegistry()
        for name in ("a", "b", "c"):
            registry.register(name)(recorder(name, events))
        registry.register("off")(lambda _: None)
        async with registry.running([__name__], context(tmp_path)) as running:
            assert list(running) == ["a", "b", "c"]
        assert events == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]

    async def test_a_worker_that_hangs_in_stop_is_left_behind(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(registry_module, "CANCEL_WAIT", 0.1)
        events: list[str] = []
        registry = WorkerRegistry()
        registry.register("stuck")(recorder("stuck", events, hang=True))
        registry.register("fine")(recorder("fine", events))
        start = time.monotonic()
        async with registry.running([__name__], context(tmp_path), grace=0.1):
            pass
        assert time.monotonic() - start < 10
        assert events == ["start stuck", "start fine", "stop fine", "stop stuck"]


class TestAppWorkers:
    def test_every_domain_registers_its_worker(self) -> None:
        names = [registration.name for registration in workers.load(WORKER_MODULES)]
        durable = ["trash.purge", "dataset.ingest", "model.convert", "jobs.dispatch", "webhook.deliver"]
        assert [name for name in names if name in durable] == durable
        assert names[-1] == "deployments.reconcile"  # started last, stopped first: replicas go before the rest
        assert len(set(names)) == len(names)

    async def test_the_app_publishes_what_endpoints_use(self, app: FastAPI) -> None:
        state = app.state
        assert set(state.workers) >= {"trash.purge", "dataset.ingest", "model.convert", "jobs.dispatch"}
        assert state.ingest_task is state.workers["dataset.ingest"]
        assert state.conversion_task is state.workers["model.convert"]
        assert state.dispatch_task is state.dispatcher is state.workers["jobs.dispatch"]
        assert state.deployment_telemetry is not None
        for handle in (state.ingest_task, state.conversion_task, state.dispatch_task):
            handle.wake()
