"""Rate limits (spec §4): per key, by plan, with ``X-RateLimit-*`` headers and ``Retry-After`` on a 429."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from tests.fixtures.app import make_settings
from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.clock import DAY_END, MINUTE_START, FakeClock, freeze_ratelimit_clock
from tests.fixtures.factories import User, add_key, create_user
from yolostack.auth.dependencies import plan_windows
from yolostack.auth.ratelimit import MemoryRateLimiter, RateLimitResult, Window, WindowCount
from yolostack.config import PlanLimits, RateLimitSettings, Settings
from yolostack.core.db import Database
from yolostack.tables import Account, Plan

SUMMARY = "/api/account/summary"
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
MINUTE = Window(3, 60)
DAY = Window(5, 86_400)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return freeze_ratelimit_clock(monkeypatch)


def result(*counts: tuple[Window, int, int], now: float = MINUTE_START) -> RateLimitResult:
    return RateLimitResult(tuple(WindowCount(window, count, reset) for window, count, reset in counts), now)


def rate_headers(response: httpx.Response) -> dict[str, int]:
    return {name: int(response.headers[name]) for name in RATE_HEADERS}


async def set_account_limits(database: Database, user: User, *, per_minute: int | None, per_day: int | None) -> None:
    async with database.engine.begin() as connection:
        await connection.execute(
            update(Account)
            .where(Account.id == user.account.id)
            .values(rate_limit_per_minute=per_minute, rate_limit_per_day=per_day)
        )


class TestWindowCount:
    def test_remaining_counts_down_to_zero(self) -> None:
        assert WindowCount(MINUTE, 1, MINUTE_START + 60).remaining == 2
        assert WindowCount(MINUTE, 3, MINUTE_START + 60).remaining == 0

    def test_remaining_is_never_negative(self) -> None:
        assert WindowCount(MINUTE, 7, MINUTE_START + 60).remaining == 0

    def test_exceeded_only_past_the_limit(self) -> None:
        assert not WindowCount(MINUTE, 3, MINUTE_START + 60).exceeded
        assert WindowCount(MINUTE, 4, MINUTE_START + 60).exceeded


class TestRateLimitResult:
    def test_allowed_within_every_window(self) -> None:
        assert result((MINUTE, 3, MINUTE_START + 60), (DAY, 5, DAY_END)).allowed

    def test_refused_when_any_window_is_exceeded(self) -> None:
        assert not result((MINUTE, 1, MINUTE_START + 60), (DAY, 6, DAY_END)).allowed
        assert not result((MINUTE, 4, MINUTE_START + 60), (DAY, 4, DAY_END)).allowed

    def test_limit_is_the_shortest_window(self) -> None:
        assert result((MINUTE, 1, MINUTE_START + 60), (DAY, 1, DAY_END)).limit == 3

    def test_remaining_is_the_smallest_across_windows(self) -> None:
        assert result((MINUTE, 1, MINUTE_START + 60), (DAY, 1, DAY_END)).remaining == 2
        assert result((MINUTE, 1, MINUTE_START + 60), (DAY, 4, DAY_END)).remaining == 1

    def test_reset_is_the_end_of_the_window_with_least_left(self) -> None:
        assert result((MINUTE, 1, MINUTE_START + 60), (DAY, 1, DAY_END)).reset_at == MINUTE_START + 60
        assert result((MINUTE, 1, MINUTE_START + 60), (DAY, 5, DAY_END)).reset_at == DAY_END

    def test_refusal_resets_when_every_exceeded_window_has_ended(self) -> None:
        refused = result((MINUTE, 4, MINUTE_START + 60), (DAY, 6, DAY_END))
        assert refused.reset_at == DAY_END
        assert refused.binding.window == DAY

    def test_retry_after_rounds_up_to_whole_seconds(self) -> None:
        refused = result((MINUTE, 4, MINUTE_START + 60), now=MINUTE_START + 0.2)
        assert refused.retry_after == 60

    def test_retry_after_is_at_least_one_second(self) -> None:
        refused = result((MINUTE, 4, MINUTE_START + 60), now=MINUTE_START + 60)
        assert refused.retry_after == 1

    def test_allowed_headers_have_no_retry_after(self) -> None:
        headers = result((MINUTE, 1, MINUTE_START + 60), (DAY, 1, DAY_END)).headers()
        assert headers == {
            "X-RateLimit-Limit": "3",
            "X-RateLimit-Remaining": "2",
            "X-RateLimit-Reset": str(MINUTE_START + 60),
        }

    def test_refused_headers_add_retry_after(self) -> None:
        headers = result((MINUTE, 4, MINUTE_START + 60), (DAY, 4, DAY_END), now=MINUTE_START + 20.5).headers()
        assert headers == {
            "X-RateLimit-Limit": "3",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(MINUTE_START + 60),
            "Retry-After": "40",
        }


class TestMemoryRateLimiter:
    async def test_counts_hits_within_a_window(self, clock: FakeClock) -> None:
        limiter = MemoryRateLimiter()
        hits = [await limiter.hit("key:a", (MINUTE,)) for _ in range(4)]
        assert [hit.allowed for hit in hits] == [True, True, True, False]
        assert [hit.remaining for hit in hits] == [2, 1, 0, 0]

    async def test_reset_is_the_end_of_the_window(self, clock: FakeClock) -> None:
        clock.advance(30)
        hit = await MemoryRateLimiter().hit("key:a", (MINUTE,))
        assert hit.reset_at == MINUTE_START + 60

    async def test_retry_after_points_at_the_window_end(self, clock: FakeClock) -> None:
        limiter = MemoryRateLimiter()
        for _ in range(3):
            await limiter.hit("key:a", (MINUTE,))
        clock.advance(10.5)
        refused = await limiter.hit("key:a", (MINUTE,))
        assert not refused.allowed
        assert refused.retry_after == 50
        assert refused.headers()["Retry-After"] == "50"

    async def test_next_window_restores_the_budget(self, clock: FakeClock) -> None:
        limiter = MemoryRateLimiter()
        for _ in range(4):
            await limiter.hit("key:a", (MINUTE,))
        clock.now = MINUTE_START + 60
        hit = await limiter.hit("key:a", (MINUTE,))
        assert hit.allowed
        assert hit.remaining == 2
        assert hit.reset_at == MINUTE_START + 120

    async def test_buckets_are_independent(self, clock: FakeClock) -> None:
        limiter = MemoryRateLimiter()
        for _ in range(4):
            await limiter.hit("key:a", (MINUTE,))
        hit = await limiter.hit("key:b", (MINUTE,))
        assert hit.allowed
        assert hit.remaining == 2

    async def test_day_window_refuses_while_the_minute_allows(self, clock: FakeClock) -> None:
        limiter = MemoryRateLimiter()
        windows = (Window(10, 60), Window(3, 86_400))
        for _ in range(3):
            assert (await limiter.hit("key:a", windows)).allowed
            clock.advance(60)
        refused = await limiter.hit("key:a", windows)
        assert not refused.allowed
        assert refused.binding.window.seconds == 86_400
        assert refused.reset_at == DAY_END
        assert refused.retry_after == DAY_END - int(clock.now)

    async def test_refused_hits_use_up_no_budget(self, clock: FakeClock) -> None:
        limiter = MemoryRateLimiter()
        hits = [await limiter.hit("key:a", (MINUTE, DAY)) for _ in range(10)]
        assert [hit.allowed for hit in hits] == [True] * 3 + [False] * 7
        clock.advance(60)
        later = [await limiter.hit("key:a", (MINUTE, DAY)) for _ in range(3)]
        assert [hit.allowed for hit in later] == [True, True, False]

    async def test_close_forgets_every_count(self, clock: FakeClock) -> None:
        limiter = MemoryRateLimiter()
        for _ in range(4):
            await limiter.hit("key:a", (MINUTE,))
        await limiter.close()
        assert (await limiter.hit("key:a", (MINUTE,))).allowed


class TestPlanLimits:
    def test_defaults_follow_the_spec(self) -> None:
        limits = RateLimitSettings()
        assert limits.free == PlanLimits(per_minute=60, per_day=1_000)
        assert limits.pro == PlanLimits(per_minute=300, per_day=50_000)

    @pytest.mark.parametrize(
        ("plan", "per_minute", "per_day"), [(Plan.free, 60, 1_000), (Plan.pro, 300, 50_000)], ids=str
    )
    def test_plan_sets_both_windows(self, tmp_path: Path, plan: Plan, per_minute: int, per_day: int) -> None:
        settings = make_settings("sqlite+aiosqlite:///unused.db", tmp_path)
        account = Account(username="someone", name="someone", plan=plan)
        assert plan_windows(settings, account) == (Window(per_minute, 60), Window(per_day, 86_400))

    def test_one_limit_can_be_configured_alone(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("YOLOSTACK_RATE_LIMITS__ENTERPRISE__PER_MINUTE", "6")
        limits = Settings().rate_limits
        assert limits.enterprise == PlanLimits(per_minute=6, per_day=RateLimitSettings().enterprise.per_day)
        assert limits.free == RateLimitSettings().free

    async def test_free_account_gets_60_per_minute(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.get(SUMMARY, headers=alice.headers)
        ok(response)
        assert rate_headers(response)["X-RateLimit-Limit"] == 60

    async def test_pro_account_gets_300_per_minute(self, client: httpx.AsyncClient, database: Database) -> None:
        paula = await create_user(database, "paula", plan=Plan.pro)
        response = await client.get(SUMMARY, headers=paula.headers)
        ok(response)
        assert rate_headers(response)["X-RateLimit-Limit"] == 300


class TestRateLimitHeaders:
    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [
            ("GET", SUMMARY, 200),
            ("GET", "/api/projects", 200),
            ("GET", "/api/activity", 200),
            ("GET", "/api/trash", 200),
            ("GET", "/api/api-keys", 200),
            ("GET", "/api/users?username=alice", 200),
            ("GET", "/api/projects/project_missing", 404),
            ("POST", "/api/projects", 422),
        ],
        ids=str,
    )
    async def test_authenticated_response_carries_them(
        self, client: httpx.AsyncClient, alice: User, method: str, path: str, status: int
    ) -> None:
        response = await client.request(method, path, headers=alice.headers, json={} if method == "POST" else None)
        assert response.status_code == status, response.text
        headers = rate_headers(response)
        assert headers["X-RateLimit-Limit"] == 60
        assert headers["X-RateLimit-Remaining"] == 59
        assert "Retry-After" not in response.headers

    async def test_forbidden_response_carries_them(self, client: httpx.AsyncClient, database: Database) -> None:
        scoped = await create_user(database, "carol", scopes=["projects"])
        response = await client.get(SUMMARY, headers=scoped.headers)
        assert_error(response, 403, "FORBIDDEN")
        assert rate_headers(response)["X-RateLimit-Remaining"] == 59

    async def test_reset_is_the_unix_second_the_minute_ends(self, client: httpx.AsyncClient, alice: User) -> None:
        before = time.time()
        response = await client.get(SUMMARY, headers=alice.headers)
        after = time.time()
        ok(response)
        reset = rate_headers(response)["X-RateLimit-Reset"]
        assert reset % 60 == 0
        assert before < reset <= after + 60

    async def test_remaining_decreases_with_each_request(
        self, client: httpx.AsyncClient, alice: User, clock: FakeClock
    ) -> None:
        remaining = []
        for _ in range(3):
            response = await client.get(SUMMARY, headers=alice.headers)
            remaining.append(rate_headers(response)["X-RateLimit-Remaining"])
        assert remaining == [59, 58, 57]

    async def test_unauthenticated_response_carries_none(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.get(SUMMARY, headers={"x-api-key": "ul_" + "0" * 40})
        assert_error(response, 401, "UNAUTHORIZED")
        assert not any(name in response.headers for name in (*RATE_HEADERS, "Retry-After"))

    async def test_health_is_not_limited(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health")
        assert response.status_code == 200
        assert not any(name in response.headers for name in RATE_HEADERS)


class TestRateLimited:
    """A tiny budget (free: 3/min, 5/day; enterprise: 3/min by default) on a frozen clock."""

    @pytest.fixture
    def settings(self, database_url: str, tmp_path: Path) -> Settings:
        return make_settings(
            database_url,
            tmp_path / "data",
            rate_limits={
                "free": {"per_minute": MINUTE.limit, "per_day": DAY.limit},
                "enterprise": {"per_minute": 3, "per_day": 100},
            },
        )

    async def exhaust_minute(self, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        for _ in range(MINUTE.limit):
            ok(await client.get(SUMMARY, headers=headers))

    async def test_request_over_the_limit_is_429(
        self, client: httpx.AsyncClient, alice: User, clock: FakeClock
    ) -> None:
        await self.exhaust_minute(client, alice.headers)
        response = await client.get(SUMMARY, headers=alice.headers)
        body = assert_error(response, 429, "RATE_LIMITED")
        assert body["error"]["details"] == {"limit": 3, "windowSeconds": 60}
        assert rate_headers(response) == {
            "X-RateLimit-Limit": 3,
            "X-RateLimit-Remaining": 0,
            "X-RateLimit-Reset": MINUTE_START + 60,
        }
        assert response.headers["Retry-After"] == "60"

    async def test_retry_after_counts_down_to_the_window_end(
        self, client: httpx.AsyncClient, alice: User, clock: FakeClock
    ) -> None:
        await self.exhaust_minute(client, alice.headers)
        clock.advance(20.5)
        response = await client.get(SUMMARY, headers=alice.headers)
        assert_error(response, 429, "RATE_LIMITED")
        assert response.headers["Retry-After"] == "40"

    async def test_every_request_in_the_window_stays_refused(
        self, client: httpx.AsyncClient, alice: User, clock: FakeClock
    ) -> None:
        await self.exhaust_minute(client, alice.headers)
        for path in (SUMMARY, "/api/projects", "/api/trash"):
            assert_error(await client.get(path, headers=alice.headers), 429, "RATE_LIMITED")

    async def test_next_minute_restores_the_budget(
        self, client: httpx.AsyncClient, alice: User, clock: FakeClock
    ) -> None:
        await self.exhaust_minute(client, alice.headers)
        assert_error(await client.get(SUMMARY, headers=alice.headers), 429, "RATE_LIMITED")
        clock.now = MINUTE_START + 60
        response = await client.get(SUMMARY, headers=alice.headers)
        ok(response)
        # Four of the day's five are used now: the day window has least left.
        assert rate_headers(response)["X-RateLimit-Remaining"] == 1

    async def test_refused_requests_use_up_no_budget(
        self, client: httpx.AsyncClient, alice: User, clock: FakeClock
    ) -> None:
        await self.exhaust_minute(client, alice.headers)
        for _ in range(5):
            assert_error(await client.get(SUMMARY, headers=alice.headers), 429, "RATE_LIMITED")
        clock.advance(60)
        for _ in range(DAY.limit - MINUTE.limit):
            ok(await client.get(SUMMARY, headers=alice.headers))
        assert_error(await client.get(SUMMARY, headers=alice.headers), 429, "RATE_LIMITED")

    async def test_day_limit_holds_across_minutes(
        self, client: httpx.AsyncClient, alice: User, clock: FakeClock
    ) -> None:
        await self.exhaust_minute(client, alice.headers)
        clock.advance(60)
        for _ in range(DAY.limit - MINUTE.limit):
            ok(await client.get(SUMMARY, headers=alice.headers))
        response = await client.get(SUMMARY, headers=alice.headers)
        body = assert_error(response, 429, "RATE_LIMITED")
        assert body["error"]["details"] == {"limit": 5, "windowSeconds": 86_400}
        assert int(response.headers["X-RateLimit-Reset"]) == DAY_END
        assert int(response.headers["Retry-After"]) == DAY_END - int(clock.now)

    async def test_each_key_has_its_own_budget(
        self, client: httpx.AsyncClient, database: Database, alice: User, clock: FakeClock
    ) -> None:
        second = {"x-api-key": await add_key(database, alice)}
        await self.exhaust_minute(client, alice.headers)
        assert_error(await client.get(SUMMARY, headers=alice.headers), 429, "RATE_LIMITED")
        response = await client.get(SUMMARY, headers=second)
        ok(response)
        assert rate_headers(response)["X-RateLimit-Remaining"] == 2

    async def test_other_accounts_are_unaffected(
        self, client: httpx.AsyncClient, alice: User, bob: User, clock: FakeClock
    ) -> None:
        await self.exhaust_minute(client, alice.headers)
        assert_error(await client.get(SUMMARY, headers=alice.headers), 429, "RATE_LIMITED")
        ok(await client.get(SUMMARY, headers=bob.headers))

    async def test_unauthorized_requests_consume_nothing(
        self, client: httpx.AsyncClient, alice: User, clock: FakeClock
    ) -> None:
        for headers in ({}, {"x-api-key": "ul_" + "0" * 40}, {"Authorization": "Bearer nonsense"}) * 3:
            assert_error(await client.get(SUMMARY, headers=headers), 401, "UNAUTHORIZED")
        response = await client.get(SUMMARY, headers=alice.headers)
        ok(response)
        assert rate_headers(response)["X-RateLimit-Remaining"] == 2

    async def test_enterprise_per_minute_override_is_honoured(
        self, client: httpx.AsyncClient, database: Database, clock: FakeClock
    ) -> None:
        erin = await create_user(database, "erin", plan=Plan.enterprise)
        await set_account_limits(database, erin, per_minute=5, per_day=None)
        for expected_remaining in range(4, -1, -1):
            response = await client.get(SUMMARY, headers=erin.headers)
            ok(response)
            assert rate_headers(response)["X-RateLimit-Limit"] == 5
            assert rate_headers(response)["X-RateLimit-Remaining"] == expected_remaining
        assert_error(await client.get(SUMMARY, headers=erin.headers), 429, "RATE_LIMITED")

    async def test_enterprise_per_day_override_is_honoured(
        self, client: httpx.AsyncClient, database: Database, clock: FakeClock
    ) -> None:
        erin = await create_user(database, "erin", plan=Plan.enterprise)
        await set_account_limits(database, erin, per_minute=None, per_day=2)
        for _ in range(2):
            ok(await client.get(SUMMARY, headers=erin.headers))
            clock.advance(60)
        response = await client.get(SUMMARY, headers=erin.headers)
        body = assert_error(response, 429, "RATE_LIMITED")
        assert body["error"]["details"] == {"limit": 2, "windowSeconds": 86_400}
        assert int(response.headers["Retry-After"]) == DAY_END - int(clock.now)


class TestLimiterUnavailable:
    """A configured Redis that does not answer: fail closed with 503, never a bare 500 or an unlimited pass."""

    @pytest.fixture
    def settings(self, database_url: str, tmp_path: Path) -> Settings:
        # Port 1 on loopback: nothing listens there, so every limiter call fails to connect.
        return make_settings(database_url, tmp_path / "data", redis_url="redis://127.0.0.1:1/0")

    async def test_authenticated_request_is_503(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.get("/api/projects", headers=alice.headers)
        assert_error(response, 503, "SERVICE_UNAVAILABLE")
        assert response.headers["retry-after"] == "5"

    async def test_bad_key_is_still_401(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.get("/api/projects", headers={"x-api-key": "ul_" + "2" * 40}), 401, "UNAUTHORIZED")
