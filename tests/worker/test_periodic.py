"""Stopping a periodic task is cooperative and bounded: the round under way ends (it may be committing), no
other starts, and a round that outlives the grace, or ignores its cancellation, cannot hold the stop."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from yolostack.worker import periodic
from yolostack.worker.periodic import PeriodicTask


class TestStop:
    async def test_the_round_under_way_finishes(self) -> None:
        began, ended = asyncio.Event(), asyncio.Event()

        async def round_() -> None:
            began.set()
            await asyncio.sleep(0.3)  # a write and its commit, say
            ended.set()

        task = PeriodicTask("test.finish", 60, round_)
        task.start()
        await asyncio.wait_for(began.wait(), 5)
        await task.stop(grace=5)
        assert ended.is_set()

    async def test_a_round_past_the_grace_is_cancelled(self) -> None:
        began = asyncio.Event()
        cancelled = False

        async def round_() -> None:
            nonlocal cancelled
            began.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled = True
                raise

        task = PeriodicTask("test.cancel", 60, round_)
        task.start()
        await asyncio.wait_for(began.wait(), 5)
        start = time.monotonic()
        await task.stop(grace=0.1)
        assert time.monotonic() - start < 2
        assert cancelled

    async def test_a_round_that_ignores_its_cancellation_cannot_hold_the_stop(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(periodic, "CANCEL_WAIT", 0.2)
        began, release = asyncio.Event(), asyncio.Event()

        async def stubborn() -> None:
            began.set()
            while not release.is_set():
                with contextlib.suppress(asyncio.CancelledError):
                    await release.wait()

        task = PeriodicTask("test.stubborn", 60, stubborn)
        task.start()
        await asyncio.wait_for(began.wait(), 5)
        start = time.monotonic()
        await task.stop(grace=0.1)
        assert time.monotonic() - start < 2
        release.set()  # let the stubborn round end, so the test leaves nothing behind

    async def test_an_initial_delay_does_not_delay_the_stop(self) -> None:
        async def round_() -> None:
            raise AssertionError("never runs")

        task = PeriodicTask("test.delayed", 0.01, round_, initial_delay=3600)
        task.start()
        start = time.monotonic()
        await task.stop()
        assert time.monotonic() - start < 1

    async def test_no_round_starts_once_stopping(self) -> None:
        rounds = 0
        stop_requested = asyncio.Event()

        async def round_() -> None:
            nonlocal rounds
            rounds += 1
            stop_requested.set()
            await asyncio.sleep(0.1)

        task = PeriodicTask("test.no-more", 0, round_)
        task.start()
        await stop_requested.wait()
        await task.stop()
        assert rounds == 1
        assert task.stopping
