"""``QueueWorker``: claims up to its concurrency, renews leases while handlers run, releases what fails or is
cut short by a stop, gives up on rows out of attempts, and two workers on one queue never share a row."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fixtures.factories import User
from tests.worker.test_leases import queued_dataset, row
from yolostack.core.db import Database
from yolostack.core.timeutil import utcnow
from yolostack.datasets.tasks import INGESTS
from yolostack.tables import Dataset, DatasetStatus
from yolostack.worker.leases import Lease
from yolostack.worker.queue import Handler, QueueWorker


async def finish_ready(database: Database, lease: Lease) -> None:
    async with database.sessionmaker() as session, session.begin():
        assert await lease.finish(session, {Dataset.status: DatasetStatus.ready})


class TestRounds:
    async def test_runs_every_queued_row_up_to_its_concurrency(self, bare_database: Database, owner: User) -> None:
        ids = {await queued_dataset(bare_database, owner) for _ in range(5)}
        running: set[str] = set()
        most = 0

        async def handle(lease: Lease) -> None:
            nonlocal most
            running.add(lease.row_id)
            most = max(most, len(running))
            await asyncio.sleep(0.05)
            running.discard(lease.row_id)
            await finish_ready(bare_database, lease)

        worker = QueueWorker(bare_database, INGESTS, handle, interval=0.05, concurrency=2)
        worker.start()
        try:
            async with asyncio.timeout(20):
                while [(await row(bare_database, one)).status for one in ids] != [DatasetStatus.ready] * len(ids):
                    await asyncio.sleep(0.05)
        finally:
            await worker.stop()
        assert most == 2

    async def test_two_workers_never_handle_one_row_twice(self, bare_database: Database, owner: User) -> None:
        ids = [await queued_dataset(bare_database, owner) for _ in range(12)]
        handled: list[str] = []

        async def handle(lease: Lease) -> None:
            handled.append(lease.row_id)
            await asyncio.sleep(0.01)
            await finish_ready(bare_database, lease)

        first = QueueWorker(bare_database, INGESTS, handle, interval=0.02, concurrency=3)
        second = QueueWorker(bare_database, INGESTS, handle, interval=0.02, concurrency=3)
        for _ in range(20):
            await asyncio.gather(first.run_round(), second.run_round())
            await asyncio.gather(first.drain(), second.drain())
        assert sorted(handled) == sorted(ids)

    async def test_a_failing_handler_releases_and_counts_then_gives_up(
        self, bare_database: Database, owner: User, caplog: pytest.LogCaptureFixture
    ) -> None:
        dataset_id = await queued_dataset(bare_database, owner)
        given_up: list[str] = []

        async def handle(lease: Lease) -> None:
            raise RuntimeError("boom")

        async def give_up(session: AsyncSession, row_id: str) -> None:
            if await INGESTS.abandon(session, row_id, utcnow(), {Dataset.status: DatasetStatus.failed}):
                given_up.append(row_id)

        worker = QueueWorker(bare_database, INGESTS, handle, interval=1, give_up=give_up)
        for _ in range(INGESTS.max_attempts or 0):
            assert await worker.run_round() == 1
            await worker.drain()
        assert (await row(bare_database, dataset_id)).ingest_attempts == INGESTS.max_attempts
        assert await worker.run_round() == 0
        assert given_up == [dataset_id]
        assert (await row(bare_database, dataset_id)).status == DatasetStatus.failed
        assert sum("boom" in (record.exc_text or "") for record in caplog.records) == INGESTS.max_attempts

    async def test_the_heartbeat_keeps_a_long_handler_s_lease(self, bare_database: Database, owner: User) -> None:
        queue = replace(INGESTS, ttl=timedelta(seconds=0.6))
        dataset_id = await queued_dataset(bare_database, owner)
        other = QueueWorker(bare_database, queue, finish_only(bare_database), interval=1)

        async def handle(lease: Lease) -> None:
            await asyncio.sleep(1.5)  # well past the ttl: only the heartbeat keeps the lease
            assert await other.run_round() == 0
            await finish_ready(bare_database, lease)

        worker = QueueWorker(bare_database, queue, handle, interval=1)
        assert await worker.run_round() == 1
        await worker.drain()
        dataset = await row(bare_database, dataset_id)
        assert (dataset.status, dataset.ingest_attempts) == (DatasetStatus.ready, 1)


class TestStop:
    async def test_a_handler_that_ends_within_the_grace_finishes(self, bare_database: Database, owner: User) -> None:
        dataset_id = await queued_dataset(bare_database, owner)
        started = asyncio.Event()

        async def handle(lease: Lease) -> None:
            started.set()
            await asyncio.sleep(0.3)
            await finish_ready(bare_database, lease)

        worker = QueueWorker(bare_database, INGESTS, handle, interval=0.05)
        worker.start()
        await asyncio.wait_for(started.wait(), 10)
        await worker.stop(grace=5)
        assert (await row(bare_database, dataset_id)).status == DatasetStatus.ready

    async def test_a_handler_cut_short_gives_its_row_back_uncounted(self, bare_database: Database, owner: User) -> None:
        dataset_id = await queued_dataset(bare_database, owner)
        started = asyncio.Event()

        async def handle(lease: Lease) -> None:
            started.set()
            await asyncio.sleep(3600)

        worker = QueueWorker(bare_database, INGESTS, handle, interval=0.05)
        worker.start()
        await asyncio.wait_for(started.wait(), 10)
        began = time.monotonic()
        await worker.stop(grace=0.2)
        assert time.monotonic() - began < 5
        assert worker.busy == 0
        dataset = await row(bare_database, dataset_id)
        assert (dataset.status, dataset.ingest_lease_until, dataset.ingest_attempts) == (
            DatasetStatus.processing,
            None,
            0,
        )

    async def test_no_claim_after_stop(self, bare_database: Database, owner: User) -> None:
        async def handle(lease: Lease) -> None:
            raise AssertionError("nothing is handled after stop")

        worker = QueueWorker(bare_database, INGESTS, handle, interval=0.05)
        worker.start()
        await worker.stop()
        await queued_dataset(bare_database, owner)
        worker.wake()
        await asyncio.sleep(0.2)
        assert worker.busy == 0


def finish_only(database: Database) -> Handler:
    async def handle(lease: Lease) -> None:
        await finish_ready(database, lease)

    return handle
