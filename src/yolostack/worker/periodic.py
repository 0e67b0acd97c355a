"""A task that runs every ``interval`` seconds inside the server's event loop until stopped."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


class PeriodicTask:
    def __init__(
        self, name: str, interval: float, run: Callable[[], Awaitable[object]], *, initial_delay: float = 0
    ) -> None:
        self.name = name
        self.interval = interval
        self.initial_delay = initial_delay
        self._run = run
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """Run the next round now instead of after the interval (new work was queued)."""
        self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def _loop(self) -> None:
        await asyncio.sleep(self.initial_delay)
        while True:
            try:
                await self._run()
            except Exception:
                # One failed round must not end the loop; the next one tries again.
                logger.exception("periodic task %s failed", self.name)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation that arrives as the
            # event is set (a wake() at shutdown), and stop() then waited for ever (CI hung 615 s in a teardown).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wakeup.wait()
            self._wakeup.clear()

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
