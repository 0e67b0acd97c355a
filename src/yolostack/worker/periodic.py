"""A task that runs a round every ``interval`` seconds inside the server's event loop until stopped.

Stopping is cooperative and bounded: ``stop`` lets the round in progress finish (it may be mid-commit),
starts no other, and cancels the round only when it outlives the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

# How long ``stop`` waits for the round in progress before cancelling it, and then for the cancelled round.
STOP_GRACE = 5.0
CANCEL_WAIT = 5.0


async def settle(tasks: set[asyncio.Task[None]], what: str, grace: float) -> None:
    """Wait up to ``grace`` seconds for ``tasks``, cancel the ones still running, and wait (bounded) for those.

    Never raises and never waits for ever: a task that ignores its cancellation is logged and left behind.
    """
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=max(grace, 0))
    if not pending:
        return
    logger.warning("%s: %d task(s) still running after %.1f s; cancelling", what, len(pending), grace)
    for task in pending:
        task.cancel()
    _, stuck = await asyncio.wait(pending, timeout=CANCEL_WAIT)
    if stuck:
        logger.error("%s: %d task(s) ignored their cancellation; left behind", what, len(stuck))


class PeriodicTask:
    """``run`` every ``interval`` seconds (or at once after ``wake``); a failed round is logged, not fatal."""

    def __init__(
        self, name: str, interval: float, run: Callable[[], Awaitable[object]], *, initial_delay: float = 0
    ) -> None:
        self.name = name
        self.interval = interval
        self.initial_delay = initial_delay
        self._run = run
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._stopping = False

    @property
    def stopping(self) -> bool:
        """True once ``stop`` was called: a round checks it between items to take no new work."""
        return self._stopping

    def wake(self) -> None:
        """Run the next round now instead of after the interval (new work was queued)."""
        self._wakeup.set()

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def _loop(self) -> None:
        if await self._pause(self.initial_delay):
            return
        while not self.stopping:
            try:
                await self._run()
            except Exception:
                # One failed round must not end the loop; the next one tries again.
                logger.exception("periodic task %s failed", self.name)
            if await self._pause(self.interval):
                return

    async def _pause(self, seconds: float) -> bool:
        """Sleep until the interval ends, a ``wake`` or a ``stop``; True when stopping.

        asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation that arrives as the event
        is set (a wake() at shutdown), and the loop then ran on (CI hung 615 s in a teardown).
        """
        if self.stopping:
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wakeup.wait()
        self._wakeup.clear()
        return self.stopping

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Take no new round; let the one in progress finish for up to ``grace`` seconds, then cancel it."""
        self._stopping = True
        self._wakeup.set()
        task, self._task = self._task, None
        if task is not None:
            await settle({task}, f"periodic task {self.name}", grace)
