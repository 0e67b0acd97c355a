"""Deployment telemetry: buffered requests, gauges and events written by ``flush``, read back as views.

The module's clock is frozen at ``NOW`` (12:30:20 UTC) so minutes and steps are known; earlier traffic
is recorded with ``at=``. Every test writes to and reads from the real migrated database.
"""

from __future__ import annotations

import asyncio
import base64
from bisect import bisect_left
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.exc import OperationalError

from tests.fixtures.factories import User, create_model
from yolostack.core.db import Database
from yolostack.core.errors import BadRequest
from yolostack.core.ids import new_id
from yolostack.deployments import telemetry, views
from yolostack.deployments.telemetry import LATENCY_BOUNDS_MS, DeploymentTelemetry
from yolostack.deployments.views import logs_page, metrics_view, overview_view, sparkline_view
from yolostack.tables import (
    Deployment,
    DeploymentLog,
    DeploymentMetric,
    DeploymentStatus,
    DesiredState,
    Project,
)

NOW = datetime(2026, 12, 3, 12, 30, 20, tzinfo=UTC)
MINUTE = datetime(2026, 12, 3, 12, 30, tzinfo=UTC)
REGION = "local"


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "utcnow", lambda: NOW)
    monkeypatch.setattr(views, "utcnow", lambda: NOW)


async def create_deployment(database: Database, user: User, slug: str) -> str:
    async with database.sessionmaker() as session, session.begin():
        project = Project(id=new_id("project"), owner_id=user.account.id, slug=f"{slug}-project", name=slug)
        session.add(project)
    model_id = await create_model(database, user, project.id, f"{slug}-model")
    async with database.sessionmaker() as session, session.begin():
        # Stopped, so the app's own reconciler leaves it alone: set running, it would fail it (the model has no
        # weights) and log that line through its own sink, racing the rows these tests count.
        deployment = Deployment(
            id=new_id("deployment"),
            owner_id=user.account.id,
            model_id=model_id,
            slug=slug,
            name=slug,
            region=REGION,
            desired=DesiredState.stopped,
            status=DeploymentStatus.stopped,
        )
        session.add(deployment)
    return deployment.id


@pytest.fixture
async def deployment(database: Database, alice: User) -> str:
    return await create_deployment(database, alice, "yolo-live")


@pytest.fixture
def sink(database: Database) -> DeploymentTelemetry:
    return DeploymentTelemetry(database)


def hit(
    sink: DeploymentTelemetry,
    deployment_id: str,
    latency_ms: float = 10.0,
    *,
    status: int = 200,
    at: datetime | None = None,
    **extra: Any,
) -> None:
    sink.request(
        deployment_id,
        method="POST",
        url=f"/d/{deployment_id}",
        status=status,
        latency_ms=latency_ms,
        request_size=1234,
        response_size=567,
        user_agent="pytest",
        remote_ip="127.0.0.1",
        at=at,
        **extra,
    )


def hundred_requests(sink: DeploymentTelemetry, deployment_id: str, at: datetime | None = None) -> None:
    """Latencies 1, 2, … 100 ms; every tenth request (10, 20, … 100 ms) answered 500."""
    for latency in range(1, 101):
        hit(sink, deployment_id, float(latency), status=500 if latency % 10 == 0 else 200, at=at)


def bucket_bounds(latency_ms: float) -> tuple[float, float]:
    index = bisect_left(LATENCY_BOUNDS_MS, latency_ms)
    return (LATENCY_BOUNDS_MS[index - 1] if index else 0.0), LATENCY_BOUNDS_MS[index]


async def metric_rows(database: Database, deployment_id: str) -> list[DeploymentMetric]:
    async with database.sessionmaker() as session:
        statement = select(DeploymentMetric).where(DeploymentMetric.deployment_id == deployment_id)
        return list(await session.scalars(statement.order_by(DeploymentMetric.bucket)))


async def log_rows(database: Database, deployment_id: str) -> list[DeploymentLog]:
    async with database.sessionmaker() as session:
        statement = select(DeploymentLog).where(DeploymentLog.deployment_id == deployment_id)
        return list(await session.scalars(statement.order_by(DeploymentLog.id)))


async def read(database: Database, query: Any, *args: Any, **kwargs: Any) -> Any:
    async with database.sessionmaker() as session:
        return await query(session, *args, **kwargs)


class TestFlush:
    async def test_requests_are_counted_into_their_minute(
        self, database: Database, sink: DeploymentTelemetry, deployment: str
    ) -> None:
        hundred_requests(sink, deployment)
        await sink.flush()

        [row] = await metric_rows(database, deployment)
        assert row.bucket == MINUTE
        assert (row.requests, row.errors) == (100, 10)
        assert row.latency_sum_ms == pytest.approx(5050.0)
        assert len(row.latency_histogram) == len(LATENCY_BOUNDS_MS) + 1
        assert sum(row.latency_histogram) == 100
        # Buckets are (lower, upper]: 1 ms alone is in the first; 80 … 100 ms are in (79.4, 100].
        assert row.latency_histogram[0] == 1
        assert LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.index(100.0) - 1] == 79.4
        assert row.latency_histogram[LATENCY_BOUNDS_MS.index(100.0)] == 21
        assert row.samples == 0
        assert row.cpu_utilization is None

    async def test_two_flushes_into_the_same_minute_merge(
        self, database: Database, sink: DeploymentTelemetry, deployment: str
    ) -> None:
        for latency in (5.0, 15.0, 25.0):
            hit(sink, deployment, latency)
        await sink.flush()
        hit(sink, deployment, 35.0, status=503)
        hit(sink, deployment, 45.0, at=NOW + timedelta(seconds=30))
        await sink.flush()

        [row] = await metric_rows(database, deployment)
        assert (row.requests, row.errors) == (5, 1)
        assert row.latency_sum_ms == pytest.approx(125.0)
        assert sum(row.latency_histogram) == 5

    async def test_minutes_get_their_own_rows(
        self, database: Database, sink: DeploymentTelemetry, deployment: str
    ) -> None:
        hit(sink, deployment, at=NOW - timedelta(minutes=2))
        hit(sink, deployment, at=NOW - timedelta(minutes=2, seconds=10))
        hit(sink, deployment)
        await sink.flush()

        rows = await metric_rows(database, deployment)
        assert [(row.bucket, row.requests) for row in rows] == [(MINUTE - timedelta(minutes=2), 2), (MINUTE, 1)]

    async def test_gauges_average_samples_and_keep_the_most_instances(
        self, database: Database, sink: DeploymentTelemetry, deployment: str
    ) -> None:
        sink.gauges(deployment, instances=1, cpu_utilization=10.0, memory_utilization=50.0)
        await sink.flush()
        sink.gauges(deployment, instances=3, cpu_utilization=None, memory_utilization=60.0)
        sink.gauges(deployment, instances=2, cpu_utilization=40.0, memory_utilization=70.0)
        await sink.flush()

        [row] = await metric_rows(database, deployment)
        assert row.instances == 3
        assert row.samples == 3
        # The unknown CPU sample is left out of the mean: (10 + 40) / 2.
        assert row.cpu_utilization == pytest.approx(25.0)
        assert row.memory_utilization == pytest.approx(60.0)
        assert row.requests == 0

    async def test_request_lines_carry_severity_and_http_request(
        self, database: Database, sink: DeploymentTelemetry, deployment: str
    ) -> None:
        hit(sink, deployment, 35.2, replica="r1")
        hit(sink, deployment, 3.0, status=404)
        hit(sink, deployment, 1200.0, status=502, error="replica crashed")
        sink.event(deployment, "INFO", "replica r1 ready")
        await sink.flush()

        rows = await log_rows(database, deployment)
        assert [(row.severity, row.message) for row in rows] == [
            ("INFO", f"POST /d/{deployment} 200 35.2 ms replica r1"),
            ("WARNING", f"POST /d/{deployment} 404 3.0 ms"),
            ("ERROR", f"POST /d/{deployment} 502 1200.0 ms: replica crashed"),
            ("INFO", "replica r1 ready"),
        ]
        assert rows[0].http_request == {
            "requestMethod": "POST",
            "requestUrl": f"/d/{deployment}",
            "status": 200,
            "latency": "0.0352s",
            "requestSize": "1234",
            "responseSize": "567",
            "userAgent": "pytest",
            "remoteIp": "127.0.0.1",
        }
        assert rows[2].http_request is not None
        assert rows[2].http_request["latency"] == "1.2s"
        assert rows[3].http_request is None
        assert all(row.timestamp == NOW for row in rows)

    async def test_request_logging_off_still_counts(self, database: Database, deployment: str) -> None:
        sink = DeploymentTelemetry(database, log_requests=False)
        hit(sink, deployment)
        sink.event(deployment, "WARNING", "replica r2 restarted")
        await sink.flush()

        assert [row.message for row in await log_rows(database, deployment)] == ["replica r2 restarted"]
        [row] = await metric_rows(database, deployment)
        assert row.requests == 1

    async def test_deleted_deployment_is_dropped_and_the_others_are_written(
        self, database: Database, sink: DeploymentTelemetry, deployment: str, alice: User
    ) -> None:
        doomed = await create_deployment(database, alice, "yolo-doomed")
        for deployment_id in (deployment, doomed):
            hit(sink, deployment_id)
            sink.gauges(deployment_id, instances=1, cpu_utilization=5.0, memory_utilization=5.0)
            sink.event(deployment_id, "INFO", "started")
        async with database.sessionmaker() as session, session.begin():
            await session.execute(delete(Deployment).where(Deployment.id == doomed))

        await sink.flush()
        hit(sink, deployment)
        await sink.flush()

        assert [row.requests for row in await metric_rows(database, deployment)] == [2]
        assert len(await log_rows(database, deployment)) == 3
        assert await metric_rows(database, doomed) == []
        assert await log_rows(database, doomed) == []

    async def test_nul_in_an_error_is_stripped(
        self, database: Database, sink: DeploymentTelemetry, deployment: str
    ) -> None:
        # PostgreSQL refuses NUL in text: kept, it would fail every later flush.
        hit(sink, deployment, status=500, error="bad\x00 frame")
        sink.event(deployment, "ERROR", "replica said \x00")
        await sink.flush()

        messages = [row.message for row in await log_rows(database, deployment)]
        assert messages == [f"POST /d/{deployment} 500 10.0 ms: bad frame", "replica said "]

    async def test_database_error_keeps_everything_for_the_next_flush(
        self, database: Database, sink: DeploymentTelemetry, deployment: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async def database_down(*_: Any) -> None:
            raise OperationalError("UPDATE deployment_metrics", {}, Exception("connection lost"))

        hundred_requests(sink, deployment)
        sink.event(deployment, "INFO", "replica r1 ready")
        with monkeypatch.context() as patch:
            patch.setattr(telemetry, "_merge_minute", database_down)
            await sink.flush()
        # The failed transaction took its log lines with it.
        assert await log_rows(database, deployment) == []
        hit(sink, deployment, 7.0)
        await sink.flush()

        [row] = await metric_rows(database, deployment)
        assert (row.requests, row.errors) == (101, 10)
        lines = await log_rows(database, deployment)
        assert len(lines) == 102
        # Still in the order they were recorded.
        assert lines[100].message == "replica r1 ready"
        assert lines[101].message.endswith(" 7.0 ms")

    async def test_a_minute_inserted_concurrently_is_merged_into(
        self, database: Database, sink: DeploymentTelemetry, deployment: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        other_process = DeploymentTelemetry(database)
        hit(other_process, deployment, 10.0)
        await other_process.flush()
        find_minute = telemetry._find_minute
        missed: list[datetime] = []

        async def stale_read(session: Any, deployment_id: str, bucket: datetime) -> DeploymentMetric | None:
            # The first read happens before the other process's insert became visible.
            if not missed:
                missed.append(bucket)
                return None
            return await find_minute(session, deployment_id, bucket)

        monkeypatch.setattr(telemetry, "_find_minute", stale_read)
        hit(sink, deployment, 20.0, status=500)
        await sink.flush()

        assert missed == [MINUTE]
        [row] = await metric_rows(database, deployment)
        assert (row.requests, row.errors) == (2, 1)
        assert row.latency_sum_ms == pytest.approx(30.0)

    async def test_concurrent_flushes_write_each_request_once(
        self, database: Database, sink: DeploymentTelemetry, deployment: str
    ) -> None:
        hundred_requests(sink, deployment)
        await asyncio.gather(sink.flush(), sink.flush(), sink.flush())

        [row] = await metric_rows(database, deployment)
        assert row.requests == 100
        assert len(await log_rows(database, deployment)) == 100

    async def test_two_processes_flushing_the_same_minute_add_up(self, database: Database, deployment: str) -> None:
        first, second = DeploymentTelemetry(database), DeploymentTelemetry(database)
        hundred_requests(first, deployment)
        for _ in range(50):
            hit(second, deployment, 5.0)
        await asyncio.gather(first.flush(), second.flush())
        # SQLite refuses a write whose snapshot went stale in the race; that process's next flush writes it.
        await first.flush()
        await second.flush()

        [row] = await metric_rows(database, deployment)
        assert (row.requests, row.errors) == (150, 10)
        assert row.latency_sum_ms == pytest.approx(5050.0 + 250.0)
        assert len(await log_rows(database, deployment)) == 150

    async def test_full_buffer_drops_oldest_request_lines_not_events(
        self, database: Database, sink: DeploymentTelemetry, deployment: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(telemetry, "MAX_BUFFERED_LINES", 5)
        sink.event(deployment, "INFO", "deploying")
        for latency in range(1, 7):
            hit(sink, deployment, float(latency))
        sink.event(deployment, "INFO", "ready")
        await sink.flush()

        messages = [row.message for row in await log_rows(database, deployment)]
        assert messages == ["deploying"] + [f"POST /d/{deployment} 200 {n}.0 ms" for n in (4, 5, 6)] + ["ready"]
        # Counting is not logging: every request is in the minute.
        [row] = await metric_rows(database, deployment)
        assert row.requests == 6

    async def test_nothing_buffered_writes_nothing(
        self, database: Database, sink: DeploymentTelemetry, deployment: str
    ) -> None:
        await sink.flush()
        assert await metric_rows(database, deployment) == []


class TestPurge:
    async def test_deletes_rows_older_than_the_cutoff(
        self, database: Database, sink: DeploymentTelemetry, deployment: str
    ) -> None:
        old = NOW - timedelta(days=40)
        hit(sink, deployment, at=old)
        sink.event(deployment, "INFO", "old event", at=old)
        sink.gauges(deployment, instances=1, cpu_utilization=1.0, memory_utilization=1.0, at=old)
        hit(sink, deployment)
        await sink.flush()

        assert await sink.purge(NOW - timedelta(days=30)) == 3

        assert [row.bucket for row in await metric_rows(database, deployment)] == [MINUTE]
        assert [row.timestamp for row in await log_rows(database, deployment)] == [NOW]
        assert await sink.purge(NOW - timedelta(days=30)) == 0


class TestLogsPage:
    async def test_pages_newest_first_until_no_token(
        self, database: Database, sink: DeploymentTelemetry, deployment: str
    ) -> None:
        for index in range(7):
            sink.event(deployment, "INFO", f"event {index}", at=NOW + timedelta(seconds=index))
        await sink.flush()

        seen: list[str] = []
        sizes: list[int] = []
        token: str | None = None
        while True:
            entries, token = await read(database, logs_page, deployment, severities=None, limit=3, page_token=token)
            seen += [entry["message"] for entry in entries]
            sizes.append(len(entries))
            if token is None:
                break
        assert sizes == [3, 3, 1]
        assert seen == [f"event {index}" for index in reversed(range(7))]

    async def test_last_full_page_has_no_token(
        self, database: Database, sink: DeploymentTelemetry, deployment: str
    ) -> None:
        for index in range(4):
            sink.event(deployment, "INFO", f"event {index}")
        await sink.flush()

        first, token = await read(database, logs_page, deployment, severities=None, limit=2, page_token=None)
        second, last = await read(database, logs_page, deployment, severities=None, limit=2, page_token=token)
        assert [entry["message"] for entry in first + second] == ["event 3", "event 2", "event 1", "event 0"]
        assert last is None

    async def test_entry_shape(self, database: Database, sink: DeploymentTelemetry, deployment: str) -> None:
        hit(sink, deployment, 12.5)
        sink.event(deployment, "ERROR", "replica r1 exited with code 137")
        await sink.flush()

        entries, token = await read(database, logs_page, deployment, severities=None, limit=10, page_token=None)
        assert token is None
        assert entries[0] == {
            "timestamp": "2026-12-03T12:30:20Z",
            "severity": "ERROR",
            "message": "replica r1 exited with code 137",
        }
        assert entries[1]["severity"] == "INFO"
        assert entries[1]["httpRequest"]["latency"] == "0.0125s"
        assert entries[1]["httpRequest"]["status"] == 200
        # The SDK's typed keys (DeploymentsLogsResponseEntriesItemHttpRequest) come first.
        request = entries[1]["httpRequest"]
        assert list(request)[:4] == ["method", "url", "status", "latencyMs"]
        assert (request["method"], request["latencyMs"]) == ("POST", 12.5)
        assert request["url"] == request["requestUrl"]

    async def test_severity_filter(self, database: Database, sink: DeploymentTelemetry, deployment: str) -> None:
        hit(sink, deployment, status=200)
        hit(sink, deployment, status=429)
        hit(sink, deployment, status=500)
        sink.event(deployment, "DEBUG", "probe")
        sink.event(deployment, "ERROR", "replica died")
        await sink.flush()

        entries, _ = await read(
            database, logs_page, deployment, severities={"error", "WARNING"}, limit=10, page_token=None
        )
        assert [(entry["severity"], entry["message"]) for entry in entries] == [
            ("ERROR", "replica died"),
            ("ERROR", f"POST /d/{deployment} 500 10.0 ms"),
            ("WARNING", f"POST /d/{deployment} 429 10.0 ms"),
        ]

    async def test_unknown_severity_is_rejected(self, database: Database, deployment: str) -> None:
        with pytest.raises(BadRequest, match="CRITICAL"):
            await read(database, logs_page, deployment, severities={"CRITICAL"}, limit=10, page_token=None)

    async def test_only_this_deployments_lines(
        self, database: Database, sink: DeploymentTelemetry, deployment: str, alice: User
    ) -> None:
        other = await create_deployment(database, alice, "yolo-other")
        sink.event(deployment, "INFO", "mine")
        sink.event(other, "INFO", "theirs")
        await sink.flush()

        entries, _ = await read(database, logs_page, deployment, severities=None, limit=10, page_token=None)
        assert [entry["message"] for entry in entries] == ["mine"]

    @pytest.mark.parametrize(
        "token",
        [
            "not base64!",
            base64.urlsafe_b64encode(b"log:abc").decode(),
            base64.urlsafe_b64encode(b"log:-4").decode(),
            base64.urlsafe_b64encode(b"cursor:12").decode(),
            base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        ],
    )
    async def test_invalid_token_is_a_bad_request(self, database: Database, deployment: str, token: str) -> None:
        with pytest.raises(BadRequest, match="pageToken"):
            await read(database, logs_page, deployment, severities=None, limit=10, page_token=token)


class TestMetricsView:
    async def test_summary_from_merged_histograms(
        self, database: Database, sink: DeploymentTelemetry, deployment: str
    ) -> None:
        # Half the traffic in an earlier minute, in another flush: the summary merges both rows.
        hundred_requests(sink, deployment, at=NOW - timedelta(minutes=5))
        await sink.flush()
        hundred_requests(sink, deployment)
        await sink.flush()

        view = await read(database, metrics_view, deployment, range_name="1h", region=REGION)
        summary = view["summary"]
        assert summary["totalRequests"] == 200
        assert summary["errorCount"] == 20
        assert summary["errorRate"] == pytest.approx(0.1)
        assert summary["avgLatencyMs"] == pytest.approx(50.5)
        for name, true_value in (("p50LatencyMs", 50.0), ("p95LatencyMs", 95.0), ("p99LatencyMs", 99.0)):
            lower, upper = bucket_bounds(true_value)
            assert lower <= summary[name] <= upper, (name, summary[name], lower, upper)
        assert summary["p50LatencyMs"] < summary["p95LatencyMs"] <= summary["p99LatencyMs"] <= 100.0

    async def test_shape_and_one_hour_series_by_minute(
        self, database: Database, sink: DeploymentTelemetry, deployment: str
    ) -> None:
        hit(sink, deployment, 20.0, at=NOW - timedelta(minutes=3))
        hit(sink, deployment, 40.0, status=500, at=NOW - timedelta(minutes=3))
        hit(sink, deployment, 80.0)
        await sink.flush()

        view = await read(database, metrics_view, deployment, range_name="1h", region=REGION)
        assert set(view) == {"deploymentId", "region", "timeRange", "summary", "timeSeries"}
        assert (view["deploymentId"], view["region"]) == (deployment, REGION)
        assert view["timeRange"] == {"start": "2026-12-03T11:31:00Z", "end": "2026-12-03T12:30:20Z"}
        series = view["timeSeries"]
        assert set(series) == {
            "requests",
            "errors",
            "latencyP50",
            "latencyP95",
            "cpuUtilization",
            "memoryUtilization",
            "instanceCount",
        }
        requests = series["requests"]
        assert len(requests) == 60
        assert requests[0]["timestamp"] == "2026-12-03T11:31:00Z"
        assert requests[-1]["timestamp"] == "2026-12-03T12:30:00Z"
        assert all(len(points) == 60 for points in series.values())
        assert [point["value"] for point in requests[-4:]] == [2, 0, 0, 1]
        assert [point["value"] for point in series["errors"][-4:]] == [1, 0, 0, 0]
        assert sum(point["value"] for point in requests) == 3
        # A step with no requests reports 0 latency; one with a single request, a value in its bucket.
        assert series["latencyP50"][-2]["value"] == 0
        lower, upper = bucket_bounds(80.0)
        assert lower <= series["latencyP95"][-1]["value"] <= upper

    async def test_gauge_series(self, database: Database, sink: DeploymentTelemetry, deployment: str) -> None:
        earlier = NOW - timedelta(minutes=1)
        sink.gauges(deployment, instances=1, cpu_utilization=20.0, memory_utilization=30.0, at=earlier)
        sink.gauges(deployment, instances=2, cpu_utilization=40.0, memory_utilization=None, at=earlier)
        sink.gauges(deployment, instances=4, cpu_utilization=None, memory_utilization=None)
        await sink.flush()

        view = await read(database, metrics_view, deployment, range_name="1h", region=REGION)
        series = view["timeSeries"]
        assert [point["value"] for point in series["instanceCount"][-3:]] == [0, 2, 4]
        assert [point["value"] for point in series["cpuUtilization"][-3:]] == [0, 30.0, 0]
        assert [point["value"] for point in series["memoryUtilization"][-3:]] == [0, 30.0, 0]

    async def test_wider_steps_merge_their_minutes(
        self, database: Database, sink: DeploymentTelemetry, deployment: str
    ) -> None:
        # 12:26 and 12:29 share the 12:25 step of the 6h range; 12:24 is in the 12:20 step.
        for minutes_ago in (1, 4, 6):
            hit(sink, deployment, at=NOW - timedelta(minutes=minutes_ago))
        sink.gauges(
            deployment, instances=1, cpu_utilization=10.0, memory_utilization=10.0, at=NOW - timedelta(minutes=1)
        )
        sink.gauges(
            deployment, instances=3, cpu_utilization=50.0, memory_utilization=20.0, at=NOW - timedelta(minutes=4)
        )
        await sink.flush()

        view = await read(database, metrics_view, deployment, range_name="6h", region=REGION)
        requests = view["timeSeries"]["requests"]
        assert len(requests) == 72
        assert requests[-1]["timestamp"] == "2026-12-03T12:30:00Z"
        assert [(point["timestamp"], point["value"]) for point in requests[-3:]] == [
            ("2026-12-03T12:20:00Z", 1),
            ("2026-12-03T12:25:00Z", 2),
            ("2026-12-03T12:30:00Z", 0),
        ]
        assert view["timeSeries"]["instanceCount"][-2]["value"] == 3
        assert view["timeSeries"]["cpuUtilization"][-2]["value"] == pytest.approx(30.0)
        assert view["timeSeries"]["memoryUtilization"][-2]["value"] == pytest.approx(15.0)

    @pytest.mark.parametrize(
        ("range_name", "points", "step"),
        [
            ("1h", 60, timedelta(minutes=1)),
            ("6h", 72, timedelta(minutes=5)),
            ("24h", 96, timedelta(minutes=15)),
            ("7d", 168, timedelta(hours=1)),
            ("30d", 120, timedelta(hours=6)),
        ],
    )
    async def test_every_range_has_every_step(
        self, database: Database, deployment: str, range_name: str, points: int, step: timedelta
    ) -> None:
        view = await read(database, metrics_view, deployment, range_name=range_name, region=REGION)
        stamps = [datetime.fromisoformat(point["timestamp"]) for point in view["timeSeries"]["requests"]]
        assert len(stamps) == points
        assert all(later - earlier == step for earlier, later in zip(stamps, stamps[1:], strict=False))
        assert stamps[-1] <= NOW < stamps[-1] + step
        assert view["summary"] == {
            "totalRequests": 0,
            "errorCount": 0,
            "errorRate": 0.0,
            "avgLatencyMs": 0.0,
            "p50LatencyMs": 0.0,
            "p95LatencyMs": 0.0,
            "p99LatencyMs": 0.0,
        }

    async def test_traffic_before_the_range_is_left_out(
        self, database: Database, sink: DeploymentTelemetry, deployment: str
    ) -> None:
        hit(sink, deployment, at=NOW - timedelta(minutes=61))
        hit(sink, deployment, at=NOW - timedelta(minutes=59))
        await sink.flush()

        view = await read(database, metrics_view, deployment, range_name="1h", region=REGION)
        assert view["summary"]["totalRequests"] == 1

    async def test_unknown_range_lists_the_valid_ones(self, database: Database, deployment: str) -> None:
        with pytest.raises(BadRequest, match="1h, 6h, 24h, 7d, 30d"):
            await read(database, metrics_view, deployment, range_name="2h", region=REGION)


class TestOverviewView:
    async def test_reduced_shape(self, database: Database, sink: DeploymentTelemetry, deployment: str) -> None:
        hundred_requests(sink, deployment)
        await sink.flush()

        view = await read(database, overview_view, deployment, range_name="24h", region=REGION)
        assert set(view) == {"deploymentId", "region", "timeRange", "summary", "timeSeries"}
        assert set(view["timeSeries"]) == {"requests", "errors", "latencyP95"}
        assert view["summary"]["totalRequests"] == 100
        assert view["summary"]["errorRate"] == pytest.approx(0.1)
        assert len(view["timeSeries"]["requests"]) == 96
        assert view["timeSeries"]["requests"][-1] == {"timestamp": "2026-12-03T12:30:00Z", "value": 100}
        assert view["timeSeries"]["errors"][-1]["value"] == 10

    async def test_unknown_range_is_a_bad_request(self, database: Database, deployment: str) -> None:
        with pytest.raises(BadRequest):
            await read(database, overview_view, deployment, range_name="1y", region=REGION)


class TestSparklineView:
    async def test_hourly_counts_of_the_last_day(
        self, database: Database, sink: DeploymentTelemetry, deployment: str
    ) -> None:
        hit(sink, deployment, 30.0, at=NOW - timedelta(hours=25))
        hit(sink, deployment, 10.0, status=500, at=NOW - timedelta(hours=23, minutes=10))
        for _ in range(3):
            hit(sink, deployment, 20.0, at=NOW - timedelta(hours=3))
        hit(sink, deployment, 50.0)
        await sink.flush()

        view = await read(database, sparkline_view, deployment)
        assert set(view) == {"requests24h", "totalRequests", "errorRate", "avgLatencyMs"}
        expected = [0] * 24
        expected[0], expected[20], expected[23] = 1, 3, 1
        assert view["requests24h"] == expected
        assert view["totalRequests"] == 5
        assert view["errorRate"] == pytest.approx(0.2)
        assert view["avgLatencyMs"] == pytest.approx(24.0)

    async def test_no_traffic(self, database: Database, deployment: str) -> None:
        view = await read(database, sparkline_view, deployment)
        assert view == {"requests24h": [0] * 24, "totalRequests": 0, "errorRate": 0.0, "avgLatencyMs": 0.0}
