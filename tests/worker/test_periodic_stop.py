"""Stopping a periodic task always ends it, whatever the task was doing."""

from __future__ import annotations

import asyncio

from yolostack.worker.periodic import PeriodicTask


async def test_stop_right_after_a_wake_ends_the_loop() -> None:
    """A wake() and a stop() in the same loop iteration: on Python 3.11 ``asyncio.wait_for`` returned the set event
    and dropped the cancellation, so the loop ran on and the app's shutdown waited for it (a CI teardown hung 615 s)."""
    rounds = 0

    async def count() -> None:
        nonlocal rounds
        rounds += 1

    task = PeriodicTask("test.wake-then-stop", 60.0, count)
    task.start()
    await asyncio.sleep(0.05)  # the first round has run; the loop waits for a wake or the interval
    task.wake()
    stopping = asyncio.ensure_future(task.stop())
    done, _ = await asyncio.wait([stopping], timeout=5)
    assert stopping in done, "stop() did not return"
    after_stop = rounds
    task.wake()  # a loop that survived its cancellation would run another round now
    await asyncio.sleep(0.1)
    assert rounds == after_stop
