"""The worker registry: every domain registers its background workers here (in its ``tasks.py``), and the
app starts them all in its lifespan, in registration order, and stops them in reverse order.

A factory gets a ``WorkerContext`` (settings, database, and the app's state, where the lifespan put the
shared services and where a worker publishes what endpoints need, e.g. ``conversion_task.wake``) and
returns a ``Worker``, or None when this server does not run it.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from starlette.datastructures import State

from yolostack.config import Settings
from yolostack.core.db import Database
from yolostack.worker.periodic import CANCEL_WAIT, STOP_GRACE

logger = logging.getLogger(__name__)


class Worker(Protocol):
    name: str

    def start(self) -> None: ...

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Take no new work; let work in progress end for up to ``grace`` seconds; never hang."""


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings
    database: Database
    state: State


WorkerFactory = Callable[[WorkerContext], Worker | None]


@dataclass(frozen=True)
class Registration:
    name: str
    module: str
    factory: WorkerFactory


class WorkerRegistry:
    def __init__(self) -> None:
        self._registrations: dict[str, Registration] = {}

    def register(self, name: str) -> Callable[[WorkerFactory], WorkerFactory]:
        """Decorate a domain's worker factory (``@workers.register("model.convert")``)."""

        def add(factory: WorkerFactory) -> WorkerFactory:
            self._registrations[name] = Registration(name, factory.__module__, factory)
            return factory

        return add

    def load(self, modules: Sequence[str]) -> list[Registration]:
        """Import ``modules`` (their factories register on import); their registrations, in module order."""
        for module in modules:
            importlib.import_module(module)
        return [reg for module in modules for reg in self._registrations.values() if reg.module == module]

    @asynccontextmanager
    async def running(
        self, modules: Sequence[str], context: WorkerContext, *, grace: float = STOP_GRACE
    ) -> AsyncIterator[dict[str, Worker]]:
        """Start the workers ``modules`` register; on exit stop them, the last started first, each bounded."""
        started: dict[str, Worker] = {}
        try:
            for registration in self.load(modules):
                worker = registration.factory(context)
                if worker is not None:
                    worker.start()
                    started[registration.name] = worker
            yield started
        finally:
            for name, worker in reversed(started.items()):
                await stop_worker(name, worker, grace)


async def stop_worker(name: str, worker: Worker, grace: float) -> None:
    """``worker.stop`` with a bound of its own: a worker that hangs anyway is logged and left behind."""
    stopping = asyncio.create_task(worker.stop(grace), name=f"stop {name}")
    done, _ = await asyncio.wait({stopping}, timeout=grace + 2 * CANCEL_WAIT + 5)
    if stopping not in done:
        stopping.cancel()
        logger.error("worker %s did not stop in time; shutting down without it", name)
    elif not stopping.cancelled() and stopping.exception() is not None:
        logger.error("worker %s failed to stop", name, exc_info=stopping.exception())


workers = WorkerRegistry()
