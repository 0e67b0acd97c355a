"""``QueueWorker``: runs one lease queue: each round claims due rows and handles each under a heartbeat.

The domain gives the queue (``LeaseQueue``), a handler that does the work and ends the lease with its
outcome (``Lease.finish``), and what to do with a row whose attempts are used up. The worker owns the
rest: claiming up to ``concurrency`` rows at once, renewing their leases, logging a handler that fails
(its row is released and counts an attempt), and stopping cleanly: no new claims, running handlers get
the grace period to end, and a handler cut short gives its row back (not counted) so that the next
server start takes it up at once instead of after the lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.core.db import Database
from yolostack.core.timeutil import utcnow
from yolostack.worker.leases import Lease, LeaseQueue, heartbeat, release_soon
from yolostack.worker.periodic import STOP_GRACE, PeriodicTask, settle

logger = logging.getLogger(__name__)

Handler = Callable[[Lease], Awaitable[None]]
GiveUp = Callable[[AsyncSession, str], Awaitable[None]]


class QueueWorker:
    def __init__(
        self,
        database: Database,
        queue: LeaseQueue,
        handle: Handler,
        *,
        interval: float,
        concurrency: int = 1,
        give_up: GiveUp | None = None,
    ) -> None:
        self.name = queue.name
        self.database = database
        self.queue = queue
        self.handle = handle
        self.concurrency = concurrency
        self.give_up = give_up
        self.loop = PeriodicTask(queue.name, interval, self.run_round)
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def busy(self) -> int:
        """How many rows this worker is handling now."""
        return len(self._in_flight)

    def start(self) -> None:
        self.loop.start()

    def wake(self) -> None:
        """Look for work now (a row was queued) instead of at the next interval."""
        self.loop.wake()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Claim nothing more; give running handlers ``grace`` seconds, then cancel them (bounded)."""
        await asyncio.gather(self.loop.stop(grace), settle(set(self._in_flight), self.name, grace))
        # A claim that was under way when the loop stopped may have started one more handler.
        await settle(set(self._in_flight), self.name, 0)

    async def run_round(self) -> int:
        """Free the rows of killed processes, give up on rows out of attempts, then claim due rows for the free
        slots; returns how many started."""
        if self.queue.holder is not None:
            async with self.database.sessionmaker() as session, session.begin():
                await self.queue.free_orphans(session, utcnow())
        if self.give_up is not None:
            await self._give_up_exhausted()
        free = self.concurrency - len(self._in_flight)
        if free <= 0:
            return 0
        async with self.database.sessionmaker() as session:
            due = await self.queue.due(session, utcnow(), free)
        started = 0
        for row_id in due:
            if self.loop.stopping:
                break
            lease = await self.claim(row_id)
            if lease is not None:
                self.spawn(lease)
                started += 1
        return started

    async def drain(self) -> None:
        """Wait for every running handler (tests, and callers that run a round by hand)."""
        while self._in_flight:
            await asyncio.wait(set(self._in_flight))

    async def claim(self, row_id: str, *where: ColumnElement[bool]) -> Lease | None:
        async with self.database.sessionmaker() as session, session.begin():
            return await self.queue.claim(session, row_id, utcnow(), *where)

    def spawn(self, lease: Lease) -> asyncio.Task[None]:
        """Handle ``lease`` in a task of its own (the loop goes on claiming while it runs)."""
        task = asyncio.create_task(self.run(lease), name=f"{self.name}:{lease.row_id}")
        self._in_flight.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not self.loop.stopping:
            self.loop.wake()  # a slot is free: the next queued row need not wait for the interval

    async def run(self, lease: Lease) -> None:
        """Run the handler under a heartbeat; whatever happens, the lease ends or is given back."""
        try:
            async with heartbeat(self.database, lease):
                await self.handle(lease)
        except asyncio.CancelledError:
            await self._give_back(lease, count=False)
            raise
        except Exception:
            logger.exception("%s: handling %s failed", self.name, lease.row_id)
            await self._give_back(lease, count=True)

    async def _give_back(self, lease: Lease, *, count: bool) -> None:
        """Release in a task of its own, so a second cancellation cannot cut the write short; bounded."""
        release = asyncio.create_task(release_soon(self.database, lease, count=count))
        done, _ = await asyncio.wait({release}, timeout=10)
        if release in done and release.exception() is not None:
            logger.error("%s: could not release %s: %s", self.name, lease.row_id, release.exception())

    async def _give_up_exhausted(self) -> None:
        assert self.give_up is not None
        async with self.database.sessionmaker() as session, session.begin():
            for row_id in await self.queue.exhausted(session, utcnow()):
                await self.give_up(session, row_id)
