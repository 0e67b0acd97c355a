"""What a deployment's metrics and logs routes answer: pages of log lines, and the stored minutes merged into
the full, overview and sparkline views (clients.md §1.4). The minutes are written by ``telemetry``."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.core.errors import BadRequest
from yolostack.core.timeutil import isoformat, utcnow
from yolostack.deployments.telemetry import LATENCY_BOUNDS_MS, RANGES, SEVERITIES, STEPS, Tally, floor_to
from yolostack.tables import DeploymentLog, DeploymentMetric, Severity


async def logs_page(
    session: AsyncSession,
    deployment_id: str,
    *,
    severities: set[str] | None,
    limit: int,
    page_token: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of log entries, newest first, and the token of the next (older) page."""
    if limit < 1:
        raise BadRequest("limit must be at least 1")
    statement = select(DeploymentLog).where(DeploymentLog.deployment_id == deployment_id)
    if severities:
        wanted = {severity.upper() for severity in severities}
        if unknown := wanted - SEVERITIES:
            raise BadRequest(f"unknown severity {', '.join(sorted(unknown))}; use {', '.join(Severity)}")
        statement = statement.where(DeploymentLog.severity.in_(wanted))
    if page_token is not None:
        statement = statement.where(DeploymentLog.id < _decode_token(page_token))
    rows = list(await session.scalars(statement.order_by(DeploymentLog.id.desc()).limit(limit + 1)))
    next_token = _encode_token(rows[limit - 1].id) if len(rows) > limit else None
    return [_log_entry(row) for row in rows[:limit]], next_token


def _log_entry(row: DeploymentLog) -> dict[str, Any]:
    entry: dict[str, Any] = {"timestamp": isoformat(row.timestamp), "severity": row.severity, "message": row.message}
    if row.http_request is not None:
        entry["httpRequest"] = http_request_view(row.http_request)
    return entry


def http_request_view(stored: dict[str, Any]) -> dict[str, Any]:
    """The SDK's keys (``method, url, status, latencyMs, userAgent?``) first, then the stored Google Cloud
    Logging ``HttpRequest`` ones (``requestMethod``, ``latency: "0.0352s"``, …) as they are."""
    latency = str(stored.get("latency") or "").removesuffix("s")
    try:
        latency_ms = round(float(latency) * 1000, 3)
    except ValueError:
        latency_ms = 0.0
    return {
        "method": stored.get("requestMethod"),
        "url": stored.get("requestUrl"),
        "status": stored.get("status"),
        "latencyMs": latency_ms,
        **stored,
    }


def _encode_token(log_id: int) -> str:
    return base64.urlsafe_b64encode(f"log:{log_id}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> int:
    try:
        decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, value = decoded.partition(":")
        log_id = int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        log_id = 0
        prefix = ""
    if prefix != "log" or log_id <= 0:
        raise BadRequest("invalid pageToken")
    return log_id


async def metrics_view(session: AsyncSession, deployment_id: str, *, range_name: str, region: str) -> dict[str, Any]:
    """The full metrics: summary and every time series of the range."""
    start, end, steps = await _range(session, deployment_id, range_name)
    return _view(deployment_id, region, start, end, steps, _FULL_SERIES)


async def overview_view(session: AsyncSession, deployment_id: str, *, range_name: str, region: str) -> dict[str, Any]:
    """The reduced metrics of the overview page: summary, requests, errors and p95 latency."""
    start, end, steps = await _range(session, deployment_id, range_name)
    return _view(deployment_id, region, start, end, steps, _OVERVIEW_SERIES)


async def sparkline_view(session: AsyncSession, deployment_id: str) -> dict[str, Any]:
    """The last 24 hours by hour, for the deployments list."""
    now = utcnow()
    start = floor_to(now, timedelta(hours=1)) - timedelta(hours=23)
    steps = await _steps(session, deployment_id, start, timedelta(hours=1), 24)
    total = _total(steps)
    return {
        "requests24h": [tally.requests for _, tally in steps],
        "totalRequests": total.requests,
        "errorRate": _error_rate(total),
        "avgLatencyMs": _average_latency(total),
    }


Steps = list[tuple[datetime, Tally]]


async def _range(session: AsyncSession, deployment_id: str, range_name: str) -> tuple[datetime, datetime, Steps]:
    if range_name not in RANGES:
        raise BadRequest(f"unknown range '{range_name}'; use one of {', '.join(RANGES)}")
    step, now = STEPS[range_name], utcnow()
    count = RANGES[range_name] // step
    start = floor_to(now, step) - (count - 1) * step
    return start, now, await _steps(session, deployment_id, start, step, count)


async def _steps(session: AsyncSession, deployment_id: str, start: datetime, step: timedelta, count: int) -> Steps:
    """Every step of the window, each the merge of its stored minutes (an empty tally when none)."""
    metric = DeploymentMetric
    statement = select(
        metric.bucket,
        metric.requests,
        metric.errors,
        metric.latency_sum_ms,
        metric.latency_histogram,
        metric.instances,
        metric.cpu_utilization,
        metric.memory_utilization,
    ).where(metric.deployment_id == deployment_id, metric.bucket >= start, metric.bucket < start + count * step)
    steps = [(start + index * step, Tally()) for index in range(count)]
    for row in await session.execute(statement):
        steps[(row.bucket - start) // step][1].add_minute(row)
    return steps


def _total(steps: Steps) -> Tally:
    total = Tally()
    for _, tally in steps:
        total.merge(tally)
    return total


def _view(
    deployment_id: str,
    region: str,
    start: datetime,
    end: datetime,
    steps: Steps,
    series: dict[str, Callable[[Tally], float]],
) -> dict[str, Any]:
    return {
        "deploymentId": deployment_id,
        "region": region,
        "timeRange": {"start": isoformat(start), "end": isoformat(end)},
        "summary": _summary(_total(steps)),
        "timeSeries": {name: _points(steps, value) for name, value in series.items()},
    }


def _summary(total: Tally) -> dict[str, Any]:
    return {
        "totalRequests": total.requests,
        "errorCount": total.errors,
        "errorRate": _error_rate(total),
        "avgLatencyMs": _average_latency(total),
        "p50LatencyMs": _percentile(total.histogram, 0.50),
        "p95LatencyMs": _percentile(total.histogram, 0.95),
        "p99LatencyMs": _percentile(total.histogram, 0.99),
    }


def _points(steps: Steps, value: Callable[[Tally], float]) -> list[dict[str, Any]]:
    return [{"timestamp": isoformat(moment), "value": value(tally)} for moment, tally in steps]


def _error_rate(tally: Tally) -> float:
    return round(tally.errors / tally.requests, 4) if tally.requests else 0.0


def _average_latency(tally: Tally) -> float:
    return round(tally.latency_sum_ms / tally.requests, 1) if tally.requests else 0.0


def _mean(total: float, count: int) -> float:
    return round(total / count, 1) if count else 0.0


def _percentile(histogram: Iterable[int], fraction: float) -> float:
    """The latency below which ``fraction`` of the requests fall, interpolated inside its bucket (ms)."""
    counts = list(histogram)
    rank = fraction * sum(counts)
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            if index >= len(LATENCY_BOUNDS_MS):
                # The overflow bucket has no upper bound: report the last one we know.
                return LATENCY_BOUNDS_MS[-1]
            lower = LATENCY_BOUNDS_MS[index - 1] if index else 0.0
            upper = LATENCY_BOUNDS_MS[index]
            return round(lower + (upper - lower) * (rank - seen) / count, 1)
        seen += count
    return 0.0


_OVERVIEW_SERIES: dict[str, Callable[[Tally], float]] = {
    "requests": lambda tally: tally.requests,
    "errors": lambda tally: tally.errors,
    "latencyP95": lambda tally: _percentile(tally.histogram, 0.95),
}
_FULL_SERIES: dict[str, Callable[[Tally], float]] = {
    "requests": lambda tally: tally.requests,
    "errors": lambda tally: tally.errors,
    "latencyP50": lambda tally: _percentile(tally.histogram, 0.50),
    "latencyP95": lambda tally: _percentile(tally.histogram, 0.95),
    "cpuUtilization": lambda tally: _mean(tally.cpu_sum, tally.cpu_count),
    "memoryUtilization": lambda tally: _mean(tally.memory_sum, tally.memory_count),
    "instanceCount": lambda tally: tally.instances,
}
