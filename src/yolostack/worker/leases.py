"""Leases: the one claim / heartbeat / release mechanism of every table that is a queue of durable work.

A queue is a table and a few of its columns (``LeaseQueue``): which rows wait for a worker (``ready``),
which a worker holds (``held``), the lease column, the attempts counter and, optionally, the time a retry
is due. A claim is a conditional UPDATE (the row must still be claimable when the database applies it),
so any number of server processes, on SQLite or PostgreSQL, share one queue and exactly one wins a row.
The attempt number a claim sets is the lease's fencing token: a heartbeat or an ending sent by a worker
whose lease ran out and was taken over changes nothing. A queue with a ``holder`` column also records who
holds each lease (``core.processes.owner_tag()``), so the rows of a server process of this host that was
killed (``kill -9``, the OOM killer) are freed at the next round of any other, not when their lease runs out.

Every function takes the caller's session; the caller commits (a claim in its own short transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.core.db import Database
from yolostack.core.processes import owner_is_gone, owner_tag
from yolostack.core.timeutil import utcnow

logger = logging.getLogger(__name__)

# How far in the past a lapsed lease is set: comfortably before any ``now`` a later claim compares it with.
_LAPSE = timedelta(seconds=1)


@dataclass(frozen=True)
class LeaseQueue:
    """How one table is a queue: the rows that wait, the rows that are held, and the lease's columns.

    ``ready`` and ``held`` are SQL conditions on the row; ``claimed`` are the values a claim sets besides the
    lease and the attempt (what moves a row from ready to held, e.g. ``status = converting``) and
    ``unclaimed`` the values that put a held row back (a release).
    """

    name: str
    id: Any  # the primary key column
    ready: ColumnElement[bool]
    held: ColumnElement[bool]
    lease: Any  # the lease's deadline or, with ``beats``, its last heartbeat
    attempts: Any  # an integer column: a claim adds one
    ttl: timedelta
    max_attempts: int | None = None
    # A lease column that records the last heartbeat (the jobs table) rather than the deadline.
    beats: bool = False
    # A held row whose lease ran out is claimable again (False: the domain reaps it instead).
    reclaim_expired: bool = True
    due_at: Any = None  # a ready row is not claimed before this time (a retry's backoff)
    claimed: Mapping[str, Any] = field(default_factory=dict)
    unclaimed: Mapping[str, Any] = field(default_factory=dict)
    # Columns read at the claim that must keep their value for the lease to stay valid (new weights
    # uploaded meanwhile end the conversion of the old ones).
    fence: tuple[Any, ...] = ()
    order_by: tuple[Any, ...] = ()
    # A text column a claim fills with the claiming process's ``owner_tag()`` (see ``free_orphans``).
    holder: Any = None

    @property
    def table(self) -> Any:
        return self.id.class_

    @property
    def heartbeat_every(self) -> float:
        return self.ttl.total_seconds() / 3

    def stamp(self, now: datetime) -> datetime:
        """The lease column's value for a lease taken or renewed at ``now``."""
        return now if self.beats else now + self.ttl

    def _lapsed(self, now: datetime) -> datetime:
        """A lease column value that has run out at ``now``."""
        return now - self.ttl - _LAPSE if self.beats else now - _LAPSE

    def expired(self, now: datetime) -> ColumnElement[bool]:
        cutoff = now - self.ttl if self.beats else now
        return and_(self.lease.is_not(None), self.lease < cutoff)

    def _waiting(self, now: datetime) -> ColumnElement[bool]:
        """Rows a worker should take: ready (and due), or held by a worker whose lease ran out."""
        ready = self.ready
        if self.due_at is not None:
            ready = and_(ready, or_(self.due_at.is_(None), self.due_at <= now))
        if not self.reclaim_expired:
            return ready
        return or_(ready, and_(self.held, self.expired(now)))

    def claimable(self, now: datetime) -> ColumnElement[bool]:
        waiting = self._waiting(now)
        if self.max_attempts is None:
            return waiting
        return and_(waiting, self.attempts < self.max_attempts)

    def exhausted_rows(self, now: datetime) -> ColumnElement[bool]:
        """Rows still waiting whose attempts are used up: the domain gives up on them."""
        if self.max_attempts is None:
            return false()
        return and_(self._waiting(now), self.attempts >= self.max_attempts)

    async def abandon(self, session: AsyncSession, row_id: str, now: datetime, values: Mapping[Any, Any]) -> bool:
        """Give up on an exhausted row with ``values`` (its failure); False when another worker did first."""
        statement = (
            update(self.table)
            .where(self.id == row_id, self.exhausted_rows(now))
            .values({self.lease: None, **values})
            .execution_options(synchronize_session=False)
        )
        result = await session.execute(statement)
        return int(getattr(result, "rowcount", 0) or 0) == 1

    def held_by(self, row_id: str, attempt: int, fence: Sequence[Any] = ()) -> Lease:
        """The lease a worker took on ``row_id`` as its ``attempt`` (read back from the row)."""
        return Lease(self, row_id, attempt, tuple(fence))

    async def due(
        self, session: AsyncSession, now: datetime, limit: int | None = None, *where: ColumnElement[bool]
    ) -> list[str]:
        """Ids of claimable rows, in the queue's order (a hint: each claim checks again)."""
        statement = select(self.id).where(self.claimable(now), *where).order_by(*self.order_by, self.id)
        if limit is not None:
            statement = statement.limit(limit)
        return [str(row_id) for row_id in (await session.scalars(statement)).all()]

    async def exhausted(self, session: AsyncSession, now: datetime) -> list[str]:
        statement = select(self.id).where(self.exhausted_rows(now)).order_by(self.id)
        return [str(row_id) for row_id in (await session.scalars(statement)).all()]

    async def free_orphans(self, session: AsyncSession, now: datetime) -> list[str]:
        """Let the leases of processes of this host that no longer run lapse now, and return their rows.

        A killed server cannot release what it held; without this its rows would wait out their lease (and a
        conversion would show "converting" that long). What happens next is the queue's usual course for an
        expired lease: a claim that counts an attempt or, without ``reclaim_expired``, the domain's reaping.
        Another host's holders are never judged (their pids mean nothing here)."""
        if self.holder is None:
            return []
        statement = select(self.id, self.holder).where(self.held, self.lease.is_not(None), self.holder.is_not(None))
        freed: list[str] = []
        for row_id, holder in (await session.execute(statement)).all():
            if not owner_is_gone(holder):
                continue
            lapse = (
                update(self.table)
                .where(self.id == row_id, self.held, self.holder == holder)
                .values({self.lease: self._lapsed(now), self.holder: None})
                .execution_options(synchronize_session=False)
            )
            if int(getattr(await session.execute(lapse), "rowcount", 0) or 0) == 1:
                freed.append(str(row_id))
        if freed:
            logger.warning("%s: freed %s, held by a server process that is gone", self.name, ", ".join(freed))
        return freed

    async def claim(
        self, session: AsyncSession, row_id: str, now: datetime, *where: ColumnElement[bool]
    ) -> Lease | None:
        """Take ``row_id`` if it is still claimable (and matches ``where``); None when another worker won."""
        values: dict[Any, Any] = {self.lease: self.stamp(now), self.attempts: self.attempts + 1, **self.claimed}
        if self.holder is not None:
            values[self.holder] = owner_tag()
        statement = (
            update(self.table)
            .where(self.id == row_id, self.claimable(now), *where)
            .values(values)
            .returning(self.attempts, *self.fence)
            .execution_options(synchronize_session=False)
        )
        row = (await session.execute(statement)).first()
        if row is None:
            return None
        return Lease(self, row_id, int(row[0]), tuple(row[1:]))


@dataclass(frozen=True)
class Lease:
    """One worker's hold on one row: ``attempt`` is its fencing token."""

    queue: LeaseQueue
    row_id: str
    attempt: int
    fence: tuple[Any, ...] = ()

    def mine(self) -> ColumnElement[bool]:
        """The row is still held by this lease (not ended, released or taken over)."""
        queue = self.queue
        conditions = [queue.id == self.row_id, queue.attempts == self.attempt, queue.held]
        conditions += [column == value for column, value in zip(queue.fence, self.fence, strict=True)]
        return and_(*conditions)

    async def _update(self, session: AsyncSession, values: Mapping[Any, Any]) -> bool:
        statement = (
            update(self.queue.table)
            .where(self.mine())
            .values(dict(values))
            .execution_options(synchronize_session=False)
        )
        result = await session.execute(statement)
        return int(getattr(result, "rowcount", 0) or 0) == 1

    async def renew(self, session: AsyncSession, now: datetime | None = None) -> bool:
        """The heartbeat: push the lease on; False when it is no longer ours."""
        return await self._update(session, {self.queue.lease: self.queue.stamp(now or utcnow())})

    async def finish(self, session: AsyncSession, values: Mapping[Any, Any] | None = None) -> bool:
        """End the lease with the work's outcome (``values``); False (and nothing written) when it is not ours."""
        return await self._update(session, {self.queue.lease: None, **(values or {})})

    async def retry(
        self,
        session: AsyncSession,
        delay: timedelta,
        values: Mapping[Any, Any] | None = None,
        *,
        now: datetime | None = None,
    ) -> bool:
        """End this attempt unsuccessfully and queue the row again, due after ``delay`` (the backoff); the
        attempt counts. Needs a queue with ``due_at``."""
        assert self.queue.due_at is not None, f"{self.queue.name} has no due_at column for a backoff"
        due = (now or utcnow()) + delay
        return await self._update(
            session, {**self.queue.unclaimed, self.queue.due_at: due, **(values or {}), self.queue.lease: None}
        )

    async def release(self, session: AsyncSession, *, count: bool = False) -> bool:
        """Give the row back unfinished, ready for any worker; unless ``count``, this attempt is not counted
        (the server is stopping: nothing went wrong with the work itself)."""
        values: dict[Any, Any] = {self.queue.lease: None, **self.queue.unclaimed}
        if not count:
            values[self.queue.attempts] = self.queue.attempts - 1
        return await self._update(session, values)


async def release_soon(database: Database, lease: Lease, *, count: bool) -> bool:
    """Release in a transaction of its own (for a worker whose task is being cancelled)."""
    async with database.sessionmaker() as session, session.begin():
        return await lease.release(session, count=count)


@contextlib.asynccontextmanager
async def heartbeat(database: Database, lease: Lease) -> AsyncIterator[Lease]:
    """Renew ``lease`` in the background while the body runs; the renewals stop between two writes, never in
    the middle of one (a write cut short could keep SQLite's lock past the server's shutdown)."""
    done = asyncio.Event()

    async def beat() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(lease.queue.heartbeat_every):
                    await done.wait()
            if done.is_set():
                return
            try:
                async with database.sessionmaker() as session, session.begin():
                    if not await lease.renew(session):
                        logger.warning("%s: lost the lease on %s (taken over or ended)", lease.queue.name, lease.row_id)
            except Exception:
                logger.exception("%s: renewing the lease on %s failed", lease.queue.name, lease.row_id)

    task = asyncio.create_task(beat(), name=f"{lease.queue.name}.heartbeat:{lease.row_id}")
    try:
        yield lease
    finally:
        done.set()
        _, pending = await asyncio.wait({task}, timeout=10)
        if pending:
            task.cancel()
