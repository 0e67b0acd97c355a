"""A deployment's logs and metrics: buffered in the serving process, written by ``flush`` (``views`` reads them).

The proxy reports each request and the reconciler each gauge sample and lifecycle event; they land in
memory (a per-minute tally and a bounded list of log lines) so the request path never waits on the
database. ``flush`` writes log lines in bulk and merges each minute's tally into its
``deployment_metrics`` row; the views merge those minutes into fixed steps (percentiles come from the
merged latency histograms).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from bisect import bisect_left
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.core.db import Database
from yolostack.core.timeutil import utcnow
from yolostack.tables import Deployment, DeploymentLog, DeploymentMetric, Severity

logger = logging.getLogger(__name__)

# Ten buckets per decade from 1 ms to 100 s, then 120 s (the longest request a replica may take);
# one more bucket counts everything slower.
LATENCY_BOUNDS_MS: tuple[float, ...] = (*(float(f"{10 ** (i / 10):.3g}") for i in range(51)), 120_000.0)
RANGES: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
STEPS: dict[str, timedelta] = {
    "1h": timedelta(minutes=1),
    "6h": timedelta(minutes=5),
    "24h": timedelta(minutes=15),
    "7d": timedelta(hours=1),
    "30d": timedelta(hours=6),
}
MAX_BUFFERED_LINES = 50_000
# A day of minutes for a few dozen deployments: what survives a long database outage.
MAX_BUFFERED_MINUTES = 50_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SEVERITIES = {severity.value for severity in Severity}


def _empty_histogram() -> list[int]:
    return [0] * (len(LATENCY_BOUNDS_MS) + 1)


def _add_histogram(target: list[int], counts: Sequence[int]) -> None:
    """Add ``counts`` into ``target`` in place (a 30-day view merges tens of thousands of minutes)."""
    if len(counts) > len(target):
        target.extend([0] * (len(counts) - len(target)))
    for index, count in enumerate(counts):
        if count:
            target[index] += count


def floor_to(moment: datetime, step: timedelta) -> datetime:
    return _EPOCH + (moment - _EPOCH) // step * step


@dataclass
class Tally:
    """Requests and gauge samples of one minute (buffered) or one step (views): sums and counts."""

    requests: int = 0
    errors: int = 0
    latency_sum_ms: float = 0.0
    histogram: list[int] = field(default_factory=_empty_histogram)
    instances: int = 0
    cpu_sum: float = 0.0
    cpu_count: int = 0
    memory_sum: float = 0.0
    memory_count: int = 0
    samples: int = 0

    def add_request(self, latency_ms: float, *, failed: bool) -> None:
        self.requests += 1
        self.errors += int(failed)
        self.latency_sum_ms += latency_ms
        self.histogram[bisect_left(LATENCY_BOUNDS_MS, latency_ms)] += 1

    def add_gauges(self, instances: int, cpu: float | None, memory: float | None) -> None:
        self.instances = max(self.instances, instances)
        self.samples += 1
        if cpu is not None:
            self.cpu_sum, self.cpu_count = self.cpu_sum + cpu, self.cpu_count + 1
        if memory is not None:
            self.memory_sum, self.memory_count = self.memory_sum + memory, self.memory_count + 1

    def add_minute(self, row: Any) -> None:
        """A stored minute into a step: gauges average the minutes that have samples."""
        self.requests += row.requests
        self.errors += row.errors
        self.latency_sum_ms += row.latency_sum_ms
        _add_histogram(self.histogram, row.latency_histogram)
        self.add_gauges(row.instances, row.cpu_utilization, row.memory_utilization)

    def merge(self, other: Tally) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.latency_sum_ms += other.latency_sum_ms
        _add_histogram(self.histogram, other.histogram)
        self.instances = max(self.instances, other.instances)
        self.cpu_sum, self.cpu_count = self.cpu_sum + other.cpu_sum, self.cpu_count + other.cpu_count
        self.memory_sum, self.memory_count = self.memory_sum + other.memory_sum, self.memory_count + other.memory_count
        self.samples += other.samples


@dataclass(frozen=True)
class _Line:
    seq: int
    deployment_id: str
    timestamp: datetime
    severity: str
    message: str
    # Set on request lines only: they are the ones dropped first when the buffer is full.
    http_request: dict[str, Any] | None = None


class DeploymentTelemetry:
    """In-process buffers of lifecycle events, requests and gauge samples; written by flush()."""

    def __init__(self, database: Database, *, log_requests: bool = True) -> None:
        self._database = database
        self._log_requests = log_requests
        self._events: deque[_Line] = deque()
        self._requests: deque[_Line] = deque()
        self._minutes: dict[tuple[str, datetime], Tally] = {}
        self._seq = itertools.count()
        self._dropped_lines = 0
        self._lock = asyncio.Lock()

    def event(self, deployment_id: str, severity: str, message: str, *, at: datetime | None = None) -> None:
        """A lifecycle event (replica started, died, rolled over); never dropped from the buffer."""
        line = _Line(next(self._seq), deployment_id, at or utcnow(), severity.upper(), _printable(message))
        self._events.append(line)
        self._trim_lines()

    def request(
        self,
        deployment_id: str,
        *,
        method: str,
        url: str,
        status: int,
        latency_ms: float,
        request_size: int,
        response_size: int,
        user_agent: str | None,
        remote_ip: str | None,
        replica: str | None = None,
        error: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """One proxied request: counted into its minute and, when request logging is on, logged."""
        moment = at or utcnow()
        tally = self._minute(deployment_id, moment)
        tally.add_request(latency_ms, failed=status >= 500 or error is not None)
        if not self._log_requests:
            return
        message = f"{method} {url} {status} {latency_ms:.1f} ms"
        message += f" replica {replica}" if replica else ""
        message += f": {error}" if error else ""
        message = _printable(message)
        severity = Severity.error if status >= 500 else Severity.warning if status >= 400 else Severity.info
        http_request: dict[str, Any] = {
            "requestMethod": method,
            "requestUrl": url,
            "status": status,
            "latency": _duration(latency_ms),
            "requestSize": str(request_size),
            "responseSize": str(response_size),
            "userAgent": user_agent,
            "remoteIp": remote_ip,
        }
        http_request = {key: value for key, value in http_request.items() if value is not None}
        self._requests.append(_Line(next(self._seq), deployment_id, moment, severity.value, message, http_request))
        self._trim_lines()

    def gauges(
        self,
        deployment_id: str,
        *,
        instances: int,
        cpu_utilization: float | None,
        memory_utilization: float | None,
        at: datetime | None = None,
    ) -> None:
        """One sample of the replica count and resource use (percent of what the deployment was given)."""
        self._minute(deployment_id, at or utcnow()).add_gauges(instances, cpu_utilization, memory_utilization)

    async def flush(self) -> None:
        """Write what is buffered; on a database error keep it for the next flush."""
        async with self._lock:
            lines, minutes = self._take()
            if not lines and not minutes:
                return
            try:
                await self._write(lines, minutes)
            except (SQLAlchemyError, OSError) as error:
                self._restore(lines, minutes)
                logger.warning("deployment telemetry kept for the next flush: %s", error)
            except BaseException:
                self._restore(lines, minutes)
                raise

    async def purge(self, older_than: datetime) -> int:
        """Delete log lines and metric minutes older than ``older_than``; returns the rows deleted."""
        async with self._database.sessionmaker() as session, session.begin():
            logs = await session.execute(delete(DeploymentLog).where(DeploymentLog.timestamp < older_than))
            metrics = await session.execute(delete(DeploymentMetric).where(DeploymentMetric.bucket < older_than))
        return _rowcount(logs) + _rowcount(metrics)

    def _minute(self, deployment_id: str, moment: datetime) -> Tally:
        key = (deployment_id, floor_to(moment.astimezone(UTC), timedelta(minutes=1)))
        tally = self._minutes.get(key)
        if tally is None:
            tally = self._minutes[key] = Tally()
            self._trim_minutes()
        return tally

    def _trim_lines(self) -> None:
        while len(self._events) + len(self._requests) > MAX_BUFFERED_LINES and self._requests:
            self._requests.popleft()
            self._dropped_lines += 1

    def _trim_minutes(self) -> None:
        if len(self._minutes) <= MAX_BUFFERED_MINUTES:
            return
        oldest = sorted(self._minutes, key=lambda key: key[1])[: len(self._minutes) - MAX_BUFFERED_MINUTES]
        for key in oldest:
            del self._minutes[key]

    def _take(self) -> tuple[list[_Line], dict[tuple[str, datetime], Tally]]:
        lines = sorted([*self._events, *self._requests], key=lambda line: line.seq)
        minutes = self._minutes
        self._events, self._requests, self._minutes = deque(), deque(), {}
        if self._dropped_lines:
            logger.warning("deployment telemetry dropped %d request log lines (buffer full)", self._dropped_lines)
            self._dropped_lines = 0
        return lines, minutes

    def _restore(self, lines: list[_Line], minutes: dict[tuple[str, datetime], Tally]) -> None:
        # Taken lines are older than anything recorded during the failed write: they go in front.
        self._events.extendleft(reversed([line for line in lines if line.http_request is None]))
        self._requests.extendleft(reversed([line for line in lines if line.http_request is not None]))
        self._trim_lines()
        for key, tally in minutes.items():
            self._minutes.setdefault(key, Tally()).merge(tally)
        self._trim_minutes()

    async def _write(self, lines: list[_Line], minutes: dict[tuple[str, datetime], Tally]) -> None:
        async with self._database.sessionmaker() as session, session.begin():
            wanted = {line.deployment_id for line in lines} | {deployment_id for deployment_id, _ in minutes}
            live = set(await session.scalars(select(Deployment.id).where(Deployment.id.in_(wanted))))
            # A deployment deleted since its data was buffered: that data has nowhere to go.
            rows = [_log_row(line) for line in lines if line.deployment_id in live]
            if rows:
                await session.execute(insert(DeploymentLog), rows)
            # In key order, so two processes flushing the same minutes lock their rows in the same order.
            for (deployment_id, bucket), tally in sorted(minutes.items(), key=lambda item: item[0]):
                if deployment_id in live:
                    await _merge_minute(session, deployment_id, bucket, tally)


def _printable(text: str) -> str:
    # PostgreSQL refuses NUL in text: one in a replica's error would fail every flush after it.
    return text.replace("\x00", "")


def _duration(latency_ms: float) -> str:
    """Google's Duration in JSON: seconds with a trailing ``s`` (``"0.0352s"``)."""
    seconds = f"{latency_ms / 1000:.6f}".rstrip("0").rstrip(".")
    return f"{seconds}s"


def _log_row(line: _Line) -> dict[str, Any]:
    return {
        "deployment_id": line.deployment_id,
        "timestamp": line.timestamp,
        "severity": line.severity,
        "message": line.message,
        "http_request": line.http_request,
    }


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def _find_minute(session: AsyncSession, deployment_id: str, bucket: datetime) -> DeploymentMetric | None:
    statement = select(DeploymentMetric).where(
        DeploymentMetric.deployment_id == deployment_id, DeploymentMetric.bucket == bucket
    )
    return await session.scalar(statement.with_for_update())


async def _merge_minute(session: AsyncSession, deployment_id: str, bucket: datetime, tally: Tally) -> None:
    row = await _find_minute(session, deployment_id, bucket)
    if row is None:
        try:
            async with session.begin_nested():
                session.add(_apply(DeploymentMetric(deployment_id=deployment_id, bucket=bucket), tally))
            return
        except IntegrityError:
            # Another process inserted this minute between our read and our insert: add to its row.
            row = await _find_minute(session, deployment_id, bucket)
            if row is None:
                raise
    _apply(row, tally)


def _apply(row: DeploymentMetric, tally: Tally) -> DeploymentMetric:
    samples = row.samples or 0
    row.requests = (row.requests or 0) + tally.requests
    row.errors = (row.errors or 0) + tally.errors
    row.latency_sum_ms = (row.latency_sum_ms or 0.0) + tally.latency_sum_ms
    # A new list, so the JSON column is seen as changed.
    histogram = list(row.latency_histogram or [])
    _add_histogram(histogram, tally.histogram)
    row.latency_histogram = histogram
    row.instances = max(row.instances or 0, tally.instances)
    row.cpu_utilization = _weighted(row.cpu_utilization, samples, tally.cpu_sum, tally.cpu_count)
    row.memory_utilization = _weighted(row.memory_utilization, samples, tally.memory_sum, tally.memory_count)
    row.samples = samples + tally.samples
    return row


def _weighted(mean: float | None, count: int, added_sum: float, added_count: int) -> float | None:
    if added_count == 0:
        return mean
    if mean is None or count == 0:
        return added_sum / added_count
    return (mean * count + added_sum) / (count + added_count)


# Queries: the endpoints call these with their request's session.
