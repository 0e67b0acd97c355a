"""The shared limiter (spec §4): one budget per key across every server process, kept in Redis."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from tests.fixtures.app import make_settings
from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.clock import MINUTE_START, FakeClock, freeze_ratelimit_clock
from tests.fixtures.database import IN_CI, REDIS_URL
from tests.fixtures.factories import User
from tests.fixtures.server import LiveServer, free_port, launch_server
from yolostack.auth.ratelimit import RedisRateLimiter, Window
from yolostack.config import Settings

pytestmark = pytest.mark.redis

MINUTE = Window(3, 60)
DAY = Window(5, 86_400)
SHARED_PER_MINUTE = 6


@pytest.fixture
def redis_url() -> str:
    if REDIS_URL is None:
        if IN_CI:
            pytest.fail("CI needs YOLOSTACK_TEST_REDIS_URL (scripts/services starts Redis)")
        pytest.skip("YOLOSTACK_TEST_REDIS_URL is not set")
    return REDIS_URL


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis: Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    value = f"yolostack-test-{secrets.token_hex(4)}:"
    yield value
    keys = [key async for key in redis.scan_iter(match=f"{value}*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
async def limiters(redis_url: str, prefix: str) -> AsyncIterator[tuple[RedisRateLimiter, RedisRateLimiter]]:
    """Two limiters, as two server processes would hold them, on one Redis."""
    first = RedisRateLimiter.from_url(redis_url, prefix)
    second = RedisRateLimiter.from_url(redis_url, prefix)
    yield first, second
    await first.close()
    await second.close()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return freeze_ratelimit_clock(monkeypatch)


class TestRedisRateLimiter:
    async def test_counts_hits_within_a_window(
        self, limiters: tuple[RedisRateLimiter, RedisRateLimiter], clock: FakeClock
    ) -> None:
        limiter, _ = limiters
        hits = [await limiter.hit("key:a", (MINUTE,)) for _ in range(4)]
        assert [hit.allowed for hit in hits] == [True, True, True, False]
        assert [hit.remaining for hit in hits] == [2, 1, 0, 0]
        assert {hit.reset_at for hit in hits} == {MINUTE_START + 60}
        assert hits[-1].headers()["Retry-After"] == "60"

    async def test_two_limiters_share_one_budget(
        self, limiters: tuple[RedisRateLimiter, RedisRateLimiter], clock: FakeClock
    ) -> None:
        first, second = limiters
        hits = [await (first if index % 2 else second).hit("key:a", (MINUTE,)) for index in range(4)]
        assert [hit.remaining for hit in hits[:3]] == [2, 1, 0]
        assert not hits[3].allowed

    async def test_concurrent_hits_never_overspend(
        self, limiters: tuple[RedisRateLimiter, RedisRateLimiter], clock: FakeClock
    ) -> None:
        first, second = limiters
        hits = await asyncio.gather(*((first, second)[index % 2].hit("key:a", (MINUTE, DAY)) for index in range(20)))
        assert sum(hit.allowed for hit in hits) == MINUTE.limit
        assert sorted(hit.remaining for hit in hits if hit.allowed) == [0, 1, 2]

    async def test_buckets_are_independent(
        self, limiters: tuple[RedisRateLimiter, RedisRateLimiter], clock: FakeClock
    ) -> None:
        limiter, _ = limiters
        for _ in range(4):
            await limiter.hit("key:a", (MINUTE,))
        hit = await limiter.hit("key:b", (MINUTE,))
        assert hit.allowed
        assert hit.remaining == 2

    async def test_next_window_restores_the_budget(
        self, limiters: tuple[RedisRateLimiter, RedisRateLimiter], clock: FakeClock
    ) -> None:
        limiter, _ = limiters
        for _ in range(4):
            await limiter.hit("key:a", (MINUTE,))
        clock.now = MINUTE_START + 60
        hit = await limiter.hit("key:a", (MINUTE,))
        assert hit.allowed
        assert hit.remaining == 2

    async def test_refused_hits_use_up_no_budget(
        self, limiters: tuple[RedisRateLimiter, RedisRateLimiter], clock: FakeClock
    ) -> None:
        limiter, _ = limiters
        hits = [await limiter.hit("key:a", (MINUTE, DAY)) for _ in range(10)]
        assert [hit.allowed for hit in hits] == [True] * 3 + [False] * 7
        clock.advance(60)
        later = [await limiter.hit("key:a", (MINUTE, DAY)) for _ in range(3)]
        assert [hit.allowed for hit in later] == [True, True, False]

    async def test_counters_expire_after_their_window(
        self, redis: Redis, prefix: str, limiters: tuple[RedisRateLimiter, RedisRateLimiter]
    ) -> None:
        limiter, _ = limiters
        await limiter.hit("key:a", (MINUTE, DAY))
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
        ttls = sorted([await redis.ttl(key) for key in keys])
        assert len(ttls) == 2
        assert 0 < ttls[0] <= MINUTE.seconds + 5
        assert MINUTE.seconds + 5 < ttls[1] <= DAY.seconds + 5

    async def test_ping_answers(self, limiters: tuple[RedisRateLimiter, RedisRateLimiter]) -> None:
        limiter, _ = limiters
        await limiter.ping()


class TestReadyWithRedis:
    @pytest.fixture
    def settings(self, database_url: str, tmp_path: Path, redis_url: str) -> Settings:
        return make_settings(database_url, tmp_path / "data", redis_url=redis_url)

    async def test_reports_redis(self, client: httpx.AsyncClient) -> None:
        body = ok(await client.get("/ready"))
        assert body["checks"] == {"database": "ok", "redis": "ok"}

    async def test_limits_through_redis(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.get("/api/account/summary", headers=alice.headers)
        ok(response)
        assert response.headers["X-RateLimit-Remaining"] == "59"


class TestReadyWithRedisDown:
    @pytest.fixture
    def settings(self, database_url: str, tmp_path: Path) -> Settings:
        return make_settings(database_url, tmp_path / "data", redis_url=f"redis://127.0.0.1:{free_port()}/0")

    async def test_is_503_in_the_error_shape(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/ready")
        body = assert_error(response, 503, "SERVICE_UNAVAILABLE")
        assert body["checks"] == {"database": "ok", "redis": "unavailable"}


class TestWorkersSetting:
    def test_several_workers_need_redis(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("YOLOSTACK_REDIS_URL", raising=False)
        monkeypatch.setenv("YOLOSTACK_WORKERS", "2")
        with pytest.raises(ValidationError, match="YOLOSTACK_REDIS_URL"):
            Settings()

    def test_several_workers_with_redis_are_accepted(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("YOLOSTACK_REDIS_URL", "redis://127.0.0.1:6379/0")
        monkeypatch.setenv("YOLOSTACK_WORKERS", "2")
        settings = Settings()
        assert settings.workers == 2
        assert settings.redis_url == "redis://127.0.0.1:6379/0"


def wait_for_a_fresh_minute() -> None:
    """Fixed windows restart on the minute: leave enough of this one for the whole test."""
    into_minute = time.time() % 60
    if into_minute > 45:
        time.sleep(60 - into_minute + 0.05)


@pytest.fixture
def two_servers(redis_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer, str]]:
    """Two ``yolostack serve`` processes on one SQLite data dir and one Redis; the admin's key."""
    env = {
        "YOLOSTACK_DATA_DIR": str(tmp_path / "data"),
        "YOLOSTACK_REDIS_URL": redis_url,
        "YOLOSTACK_RATE_LIMITS__ENTERPRISE__PER_MINUTE": str(SHARED_PER_MINUTE),
    }
    servers: list[LiveServer] = []
    try:
        servers.append(launch_server(env))
        # The first has migrated and created the admin once its banner is out; the second may start.
        servers[0].wait_for_banner()
        servers.append(launch_server(env))
        for server in servers:
            server.wait_until_healthy()
        key = servers[0].key
        assert key is not None, servers[0].output
        assert servers[1].key is None, servers[1].output
        yield servers[0], servers[1], key
    finally:
        for server in servers:
            server.stop()


class TestSharedLimitAcrossProcesses:
    def test_budget_is_shared_between_two_servers(self, two_servers: tuple[LiveServer, LiveServer, str]) -> None:
        first, second, key = two_servers
        headers = {"Authorization": f"Bearer {key}"}
        wait_for_a_fresh_minute()
        remaining = []
        for index in range(SHARED_PER_MINUTE):
            server = (first, second)[index % 2]
            response = httpx.get(f"{server.base_url}/api/account/summary", headers=headers, timeout=10)
            ok(response)
            assert response.headers["X-RateLimit-Limit"] == str(SHARED_PER_MINUTE)
            remaining.append(int(response.headers["X-RateLimit-Remaining"]))
        assert remaining == list(range(SHARED_PER_MINUTE - 1, -1, -1))
        for server in (first, second):
            response = httpx.get(f"{server.base_url}/api/account/summary", headers=headers, timeout=10)
            assert_error(response, 429, "RATE_LIMITED")
            assert 1 <= int(response.headers["Retry-After"]) <= 60


class TestServeWithWorkers:
    def test_worker_processes_share_one_budget(self, redis_url: str, tmp_path: Path) -> None:
        env = {
            "YOLOSTACK_DATA_DIR": str(tmp_path / "data"),
            "YOLOSTACK_REDIS_URL": redis_url,
            "YOLOSTACK_WORKERS": "2",
            "YOLOSTACK_RATE_LIMITS__ENTERPRISE__PER_MINUTE": str(SHARED_PER_MINUTE),
        }
        server = launch_server(env)
        try:
            server.wait_until_healthy()
            assert server.key is not None, server.output
            headers = {"Authorization": f"Bearer {server.key}"}
            wait_for_a_fresh_minute()
            # A fresh connection per request lets the kernel hand them to either worker process.
            for _ in range(SHARED_PER_MINUTE):
                ok(httpx.get(f"{server.base_url}/api/account/summary", headers=headers, timeout=10))
            response = httpx.get(f"{server.base_url}/api/account/summary", headers=headers, timeout=10)
            assert_error(response, 429, "RATE_LIMITED")
            assert server.output.count("Started server process") == 2, server.output
        finally:
            server.stop()
