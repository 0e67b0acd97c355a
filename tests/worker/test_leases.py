"""``worker.leases`` on a real table (datasets as the ingest queue) of each backend: one winner per claim,
fencing by attempt, expiry and take-over, attempts used up, release, backoff and heartbeat-style leases."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select, update

from tests.fixtures.factories import User
from yolostack.core.db import Database
from yolostack.core.ids import new_id
from yolostack.core.processes import owner_is_gone, owner_tag
from yolostack.core.timeutil import utcnow
from yolostack.datasets.tasks import INGESTS
from yolostack.tables import Dataset, DatasetStatus
from yolostack.worker.leases import Lease, LeaseQueue


async def queued_dataset(database: Database, owner: User, **values: object) -> str:
    """A dataset waiting for its ingest (``status = processing``), as the ingest endpoint leaves it."""
    dataset_id = new_id("dataset")
    async with database.sessionmaker() as session, session.begin():
        session.add(
            Dataset(
                id=dataset_id,
                owner_id=owner.account.id,
                slug=dataset_id,
                name=dataset_id,
                ingest={"jobId": "job_x", "sessionId": "upload_x"},
                **{"status": DatasetStatus.processing, **values},
            )
        )
    return dataset_id


async def claim(database: Database, queue: LeaseQueue, row_id: str, *, later: timedelta = timedelta()) -> Lease | None:
    async with database.sessionmaker() as session, session.begin():
        return await queue.claim(session, row_id, utcnow() + later)


async def row(database: Database, dataset_id: str) -> Dataset:
    async with database.sessionmaker() as session:
        dataset = await session.scalar(select(Dataset).where(Dataset.id == dataset_id))
        assert dataset is not None
        return dataset


class TestClaim:
    async def test_one_of_many_concurrent_claims_wins(self, bare_database: Database, owner: User) -> None:
        dataset_id = await queued_dataset(bare_database, owner)
        leases = await asyncio.gather(*(claim(bare_database, INGESTS, dataset_id) for _ in range(8)))
        won = [lease for lease in leases if lease is not None]
        assert len(won) == 1
        assert won[0].attempt == 1
        dataset = await row(bare_database, dataset_id)
        assert dataset.ingest_attempts == 1
        assert dataset.ingest_lease_until is not None

    async def test_due_lists_only_claimable_rows(self, bare_database: Database, owner: User) -> None:
        waiting = await queued_dataset(bare_database, owner)
        await queued_dataset(bare_database, owner, status=DatasetStatus.ready)
        held = await queued_dataset(bare_database, owner)
        assert await claim(bare_database, INGESTS, held) is not None
        async with bare_database.sessionmaker() as session:
            assert await INGESTS.due(session, utcnow()) == [waiting]

    async def test_a_held_lease_is_not_claimed_until_it_runs_out(self, bare_database: Database, owner: User) -> None:
        dataset_id = await queued_dataset(bare_database, owner)
        first = await claim(bare_database, INGESTS, dataset_id)
        assert first is not None
        assert await claim(bare_database, INGESTS, dataset_id) is None
        taken_over = await claim(bare_database, INGESTS, dataset_id, later=INGESTS.ttl + timedelta(seconds=1))
        assert taken_over is not None
        assert taken_over.attempt == 2

    async def test_a_lease_taken_over_is_fenced(self, bare_database: Database, owner: User) -> None:
        """The first worker stalled past its lease: its heartbeat and its ending change nothing."""
        dataset_id = await queued_dataset(bare_database, owner)
        stale = await claim(bare_database, INGESTS, dataset_id)
        current = await claim(bare_database, INGESTS, dataset_id, later=INGESTS.ttl * 2)
        assert stale is not None
        assert current is not None
        async with bare_database.sessionmaker() as session, session.begin():
            assert await stale.renew(session) is False
            assert await stale.finish(session, {Dataset.status: DatasetStatus.failed}) is False
            assert await current.renew(session) is True
        assert (await row(bare_database, dataset_id)).status == DatasetStatus.processing
        async with bare_database.sessionmaker() as session, session.begin():
            assert await current.finish(session, {Dataset.status: DatasetStatus.ready}) is True
        dataset = await row(bare_database, dataset_id)
        assert (dataset.status, dataset.ingest_lease_until) == (DatasetStatus.ready, None)


class TestAttempts:
    async def test_used_up_attempts_are_given_up_once(self, bare_database: Database, owner: User) -> None:
        dataset_id = await queued_dataset(bare_database, owner, ingest_attempts=INGESTS.max_attempts)
        assert await claim(bare_database, INGESTS, dataset_id) is None
        failed = {Dataset.status: DatasetStatus.failed}
        async with bare_database.sessionmaker() as session, session.begin():
            assert await INGESTS.exhausted(session, utcnow()) == [dataset_id]
            assert await INGESTS.abandon(session, dataset_id, utcnow(), failed) is True
            assert await INGESTS.abandon(session, dataset_id, utcnow(), failed) is False
            assert await INGESTS.exhausted(session, utcnow()) == []
        assert (await row(bare_database, dataset_id)).status == DatasetStatus.failed

    async def test_a_release_on_shutdown_does_not_count(self, bare_database: Database, owner: User) -> None:
        dataset_id = await queued_dataset(bare_database, owner)
        lease = await claim(bare_database, INGESTS, dataset_id)
        assert lease is not None
        async with bare_database.sessionmaker() as session, session.begin():
            assert await lease.release(session) is True
        dataset = await row(bare_database, dataset_id)
        assert (dataset.ingest_attempts, dataset.ingest_lease_until) == (0, None)
        again = await claim(bare_database, INGESTS, dataset_id)  # at once: no lease to wait out
        assert again is not None
        assert again.attempt == 1

    async def test_a_failed_attempt_counts(self, bare_database: Database, owner: User) -> None:
        dataset_id = await queued_dataset(bare_database, owner)
        lease = await claim(bare_database, INGESTS, dataset_id)
        assert lease is not None
        async with bare_database.sessionmaker() as session, session.begin():
            assert await lease.release(session, count=True) is True
            assert await lease.release(session, count=True) is False  # no longer held
        assert (await row(bare_database, dataset_id)).ingest_attempts == 1


class TestQueueShapes:
    async def test_a_retry_waits_for_its_backoff(self, bare_database: Database, owner: User) -> None:
        """``due_at``: an attempt that failed is queued again after a delay (webhook retries), and counts."""
        queue = replace(INGESTS, due_at=Dataset.updated_at)
        dataset_id = await queued_dataset(bare_database, owner)
        first = await claim(bare_database, queue, dataset_id)
        assert first is not None
        async with bare_database.sessionmaker() as session, session.begin():
            assert await first.retry(session, timedelta(minutes=5), {Dataset.description: "try again"}) is True
        assert (await row(bare_database, dataset_id)).description == "try again"
        assert await claim(bare_database, queue, dataset_id) is None
        second = await claim(bare_database, queue, dataset_id, later=timedelta(minutes=6))
        assert second is not None
        assert second.attempt == 2

    async def test_a_heartbeat_lease_runs_out_after_its_ttl(self, bare_database: Database, owner: User) -> None:
        """``beats``: the lease column holds the last heartbeat (the jobs table), not the deadline."""
        queue = replace(INGESTS, beats=True, ttl=timedelta(seconds=90))
        dataset_id = await queued_dataset(bare_database, owner)
        lease = await claim(bare_database, queue, dataset_id)
        assert lease is not None
        beat = (await row(bare_database, dataset_id)).ingest_lease_until
        assert beat is not None
        assert abs((beat - utcnow()).total_seconds()) < 30
        assert await claim(bare_database, queue, dataset_id, later=timedelta(seconds=60)) is None
        assert await claim(bare_database, queue, dataset_id, later=timedelta(seconds=100)) is not None

    async def test_expired_rows_are_left_to_the_domain_without_reclaim(
        self, bare_database: Database, owner: User
    ) -> None:
        queue = replace(INGESTS, reclaim_expired=False)
        dataset_id = await queued_dataset(bare_database, owner)
        assert await claim(bare_database, queue, dataset_id) is not None
        assert await claim(bare_database, queue, dataset_id, later=timedelta(hours=1)) is None


def gone_process_tag() -> str:
    """The owner tag of a process of this host that ran and has ended (as a ``kill -9``-ed server)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        tag = owner_tag(child.pid)
    finally:
        child.kill()
        child.wait()
    assert owner_is_gone(tag)
    return tag


async def held_by(database: Database, dataset_id: str, holder: str) -> None:
    """Mark the lease on ``dataset_id`` as another process's (the claim recorded this one's)."""
    async with database.sessionmaker() as session, session.begin():
        await session.execute(update(Dataset).where(Dataset.id == dataset_id).values(ingest_lease_holder=holder))


async def free_orphans(database: Database, queue: LeaseQueue) -> list[str]:
    async with database.sessionmaker() as session, session.begin():
        return await queue.free_orphans(session, utcnow())


class TestHolders:
    async def test_a_claim_records_this_process(self, bare_database: Database, owner: User) -> None:
        dataset_id = await queued_dataset(bare_database, owner)
        assert await claim(bare_database, INGESTS, dataset_id) is not None
        assert (await row(bare_database, dataset_id)).ingest_lease_holder == owner_tag()

    async def test_a_gone_holder_s_lease_is_freed_at_once_and_fenced(
        self, bare_database: Database, owner: User
    ) -> None:
        dataset_id = await queued_dataset(bare_database, owner)
        dead = await claim(bare_database, INGESTS, dataset_id)
        assert dead is not None
        await held_by(bare_database, dataset_id, gone_process_tag())
        # Held and well within its lease: only its holder being gone frees it.
        assert await claim(bare_database, INGESTS, dataset_id) is None

        assert await free_orphans(bare_database, INGESTS) == [dataset_id]
        taken_over = await claim(bare_database, INGESTS, dataset_id)
        assert taken_over is not None
        assert taken_over.attempt == dead.attempt + 1
        assert (await row(bare_database, dataset_id)).ingest_lease_holder == owner_tag()
        async with bare_database.sessionmaker() as session, session.begin():
            assert await dead.finish(session, {Dataset.status: DatasetStatus.ready}) is False

    async def test_live_and_other_hosts_holders_keep_their_leases(self, bare_database: Database, owner: User) -> None:
        mine = await queued_dataset(bare_database, owner)
        elsewhere = await queued_dataset(bare_database, owner)
        for dataset_id in (mine, elsewhere):
            assert await claim(bare_database, INGESTS, dataset_id) is not None
        # The same pid and start time on another host: its pids mean nothing here, so it is never judged.
        await held_by(bare_database, elsewhere, "another-host-" + gone_process_tag().rsplit("-", 2)[-2] + "-1")

        assert await free_orphans(bare_database, INGESTS) == []
        assert await claim(bare_database, INGESTS, mine) is None
        assert await claim(bare_database, INGESTS, elsewhere) is None

    async def test_without_reclaim_a_freed_lease_is_left_expired_for_the_domain(
        self, bare_database: Database, owner: User
    ) -> None:
        queue = replace(INGESTS, reclaim_expired=False)
        dataset_id = await queued_dataset(bare_database, owner)
        assert await claim(bare_database, queue, dataset_id) is not None
        await held_by(bare_database, dataset_id, gone_process_tag())

        assert await free_orphans(bare_database, queue) == [dataset_id]
        async with bare_database.sessionmaker() as session:
            expired = await session.scalars(select(Dataset.id).where(queue.held, queue.expired(utcnow())))
            assert list(expired) == [dataset_id]
        assert await claim(bare_database, queue, dataset_id) is None
