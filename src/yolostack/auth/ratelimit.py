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
        starts = [_window_start(now, window) for window in windows]
        keys = [(bucket, window.seconds, start) for window, start in zip(windows, starts, strict=True)]
        counts = [self._counts.get(key, 0) + 1 for key in keys]
        result = RateLimitResult(
            tuple(
                WindowCount(window, count, start + window.seconds)
                for window, count, start in zip(windows, counts, starts, strict=True)
            ),
            now,
        )
        # A refused request is not served, so it draws from no window (see HIT_SCRIPT).
        if result.allowed:
            self._counts.update(zip(keys, counts, strict=True))
        return result

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < 60:
            return
        self._last_sweep = now
        expired = [key for key in self._counts if key[2] + key[1] <= now]
        for key in expired:
            del self._counts[key]

    async def close(self) -> None:
        self._counts.clear()


# Atomically: count this hit in every window, unless one of them would go over its limit. A refused
# request is not served, so it must not use up budget: otherwise a client hammering through a refused
# minute would burn its whole day. Returns each window's count including this hit.
HIT_SCRIPT = """
local n = #KEYS
local counts = {}
local allowed = true
for i = 1, n do
  counts[i] = tonumber(redis.call('GET', KEYS[i]) or '0') + 1
  if counts[i] > tonumber(ARGV[i]) then allowed = false end
end
if allowed then
  for i = 1, n do
    redis.call('INCR', KEYS[i])
    redis.call('EXPIRE', KEYS[i], ARGV[n + i])
  end
end
return counts
"""


class RedisRateLimiter:
    """State in Redis, so every server process draws from one budget per key."""

    def __init__(self, redis: Redis, prefix: str = "yolostack:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._hit_script = redis.register_script(HIT_SCRIPT)

    @classmethod
    def from_url(cls, url: str, prefix: str = "yolostack:") -> RedisRateLimiter:
        return cls(Redis.from_url(url), prefix)

    async def hit(self, bucket: str, windows: tuple[Window, ...]) -> RateLimitResult:
        now = time.time()
        starts = [_window_start(now, window) for window in windows]
        keys = [
            f"{self._prefix}rl:{bucket}:{window.seconds}:{start}" for window, start in zip(windows, starts, strict=True)
        ]
        limits = [window.limit for window in windows]
        expiries = [window.seconds + 5 for window in windows]
        replies = await self._hit_script(keys=keys, args=[*limits, *expiries])
        counts = tuple(
            WindowCount(window, int(reply), start + window.seconds)
            for window, reply, start in zip(windows, replies, starts, strict=True)
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
