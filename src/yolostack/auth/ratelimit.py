"""Fixed-window rate limits per key (spec §4), in process or shared through Redis."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis


@dataclass(frozen=True)
class Window:
    limit: int
    seconds: int


@dataclass(frozen=True)
class WindowCount:
    window: Window
    count: int
    reset_at: int

    @property
    def remaining(self) -> int:
        return max(self.window.limit - self.count, 0)

    @property
    def exceeded(self) -> bool:
        return self.count > self.window.limit


@dataclass(frozen=True)
class RateLimitResult:
    """The outcome of one hit, rendered as the ``X-RateLimit-*`` headers."""

    counts: tuple[WindowCount, ...]
    now: float

    @property
    def allowed(self) -> bool:
        return not any(count.exceeded for count in self.counts)

    @property
    def limit(self) -> int:
        # The shortest window is the one clients feel first (the seed shows the per-minute figure).
        return self.counts[0].window.limit

    @property
    def remaining(self) -> int:
        return min(count.remaining for count in self.counts)

    @property
    def binding(self) -> WindowCount:
        exceeded = [count for count in self.counts if count.exceeded]
        if exceeded:
            return max(exceeded, key=lambda count: count.reset_at)
        return min(self.counts, key=lambda count: (count.remaining, count.reset_at))

    @property
    def reset_at(self) -> int:
        return self.binding.reset_at

    @property
    def retry_after(self) -> int:
        return max(math.ceil(self.reset_at - self.now), 1)

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class RateLimiter(Protocol):
    async def hit(self, bucket: str, windows: tuple[Window, ...]) -> RateLimitResult: ...

    async def close(self) -> None: ...


def _window_start(now: float, window: Window) -> int:
    return int(now // window.seconds) * window.seconds


class MemoryRateLimiter:
    """State in this process only: right for the single-process embedded mode and nothing else."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int, int], int] = {}
        self._last_sweep = 0.0

    async def hit(self, bucket: str, windows: tuple[Window, ...]) -> RateLimitResult:
        now = time.time()
        self._sweep(now)
        counts = []
        for window in windows:
            start = _window_start(now, window)
            key = (bucket, window.seconds, start)
            self._counts[key] = self._counts.get(key, 0) + 1
            counts.append(WindowCount(window, self._counts[key], start + window.seconds))
        return RateLimitResult(tuple(counts), now)

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < 60:
            return
        self._last_sweep = now
        expired = [key for key in self._counts if key[2] + key[1] <= now]
        for key in expired:
            del self._counts[key]

    async def close(self) -> None:
        self._counts.clear()


class RedisRateLimiter:
    """State in Redis, so every server process draws from one budget per key."""

    def __init__(self, redis: Redis, prefix: str = "yolostack:") -> None:
        self._redis = redis
        self._prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = "yolostack:") -> RedisRateLimiter:
        return cls(Redis.from_url(url), prefix)

    async def hit(self, bucket: str, windows: tuple[Window, ...]) -> RateLimitResult:
        now = time.time()
        starts = [_window_start(now, window) for window in windows]
        async with self._redis.pipeline(transaction=True) as pipe:
            for window, start in zip(windows, starts, strict=True):
                key = f"{self._prefix}rl:{bucket}:{window.seconds}:{start}"
                pipe.incr(key)
                pipe.expire(key, window.seconds + 5)
            replies = await pipe.execute()
        counts = tuple(
            WindowCount(window, int(replies[2 * index]), start + window.seconds)
            for index, (window, start) in enumerate(zip(windows, starts, strict=True))
        )
        return RateLimitResult(counts, now)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


def create_rate_limiter(redis_url: str | None) -> RateLimiter:
    if redis_url:
        return RedisRateLimiter.from_url(redis_url)
    return MemoryRateLimiter()
