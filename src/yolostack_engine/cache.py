"""ModelCache: an LRU of loaded models with one load per key and leases that defer closing.

Keys are opaque strings; the server uses ``"{model_id}:{artifact_version}:{backend}"`` so that
``invalidate(f"{model_id}:")`` drops every version of a model.

Loads run in a worker thread. Concurrent first requests for a key share one load task, so the
loader runs once and a failure reaches every waiter; a failed load is not cached, the next request
tries again. A shared task (rather than a lock held by the first caller) keeps working when that first
caller is cancelled: the load finishes and the others still get the model.

Eviction is least-recently-used, by model count and by the summed ``memory_bytes()``, and never
evicts the model just loaded (a single model larger than ``max_bytes`` still serves). An evicted or
invalidated model is closed only when its last lease ends, so a request that is running on it is
never cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from yolostack_engine import ServedModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheStats:
    """Counters since the cache was created, and what it holds now."""

    hits: int
    misses: int
    loads: int
    load_failures: int
    evictions: int
    resident_models: int
    resident_bytes: int
    retiring_models: int  # evicted or invalidated, closed when their last lease ends


@dataclass(eq=False)
class _Entry:
    key: str
    model: ServedModel
    nbytes: int
    leases: int = 0
    is_retired: bool = False


@dataclass(eq=False)
class _Load:
    """A load in progress; every caller waiting on it holds one lease once it succeeds."""

    waiters: int = 0
    is_stale: bool = False
    task: asyncio.Task[_Entry] = field(init=False)


class ModelCache:
    """LRU cache of loaded models, keyed by string, with per-key single-flight loading and leases.

    Use it from one event loop. ``lease(key)`` is the safe way to use a model; ``get(key)`` returns
    it without holding it, which suits warm-up and code that does not run it.

    Example:
        >>> cache = ModelCache(lambda key: load_model(root / key.split(":")[0]), max_models=4, max_bytes=2 << 30)
        >>> async with cache.lease("abc:3:onnxruntime") as model:  # doctest: +SKIP
        ...     predictions = await batcher.submit(model, image, PredictOptions())
    """

    def __init__(
        self,
        loader: Callable[[str], ServedModel],
        *,
        max_models: int,
        max_bytes: int,
        executor: Executor | None = None,
    ) -> None:
        if max_models < 1:
            raise ValueError(f"max_models must be at least 1, got {max_models}")
        if max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, got {max_bytes}")
        self._loader = loader
        self._max_models = max_models
        self._max_bytes = max_bytes
        self._executor = executor
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._loads: dict[str, _Load] = {}
        self._retiring: set[_Entry] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._resident_bytes = 0
        self._hits = self._misses = self._load_count = self._load_failures = self._evictions = 0
        self._is_closed = False

    async def get(self, key: str) -> ServedModel:
        """Return the model for `key`, loading it on first use; it may be evicted once returned."""
        entry = await self._acquire(key)
        self._release(entry)
        return entry.model

    @contextlib.asynccontextmanager
    async def lease(self, key: str) -> AsyncIterator[ServedModel]:
        """Hold the model for `key` (loading it on first use); it is not closed until the block exits."""
        entry = await self._acquire(key)
        try:
            yield entry.model
        finally:
            self._release(entry)

    def invalidate(self, key_prefix: str) -> int:
        """Drop cached models whose key starts with `key_prefix`; return how many were resident.

        Loads in progress for those keys are not cached when they finish (their waiters still get
        the model), so the next request loads the new artifact. Call from the event loop.
        """
        keys = [key for key in self._entries if key.startswith(key_prefix)]
        for key in keys:
            self._retire(self._pop(key))
        for key in [key for key in self._loads if key.startswith(key_prefix)]:
            self._loads.pop(key).is_stale = True
        return len(keys)

    def stats(self) -> CacheStats:
        """Return the counters and what is resident now."""
        return CacheStats(
            hits=self._hits,
            misses=self._misses,
            loads=self._load_count,
            load_failures=self._load_failures,
            evictions=self._evictions,
            resident_models=len(self._entries),
            resident_bytes=self._resident_bytes,
            retiring_models=len(self._retiring),
        )

    def keys(self) -> list[str]:
        """Return the resident keys, least recently used first."""
        return list(self._entries)

    async def close(self) -> None:
        """Refuse new requests, wait for loads in progress, close idle models now and leased ones on release."""
        self._is_closed = True
        for key in list(self._entries):
            self._retire(self._pop(key))
        loads = list(self._loads.values())
        self._loads.clear()
        for load in loads:
            load.is_stale = True
        if loads:
            await asyncio.wait([load.task for load in loads])
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until every model whose close has started is closed."""
        while self._closing:
            await asyncio.wait(list(self._closing))

    async def _acquire(self, key: str) -> _Entry:
        """Return the entry for `key` with one lease taken, loading it if needed."""
        if self._is_closed:
            raise RuntimeError("the model cache is closed")
        entry = self._entries.get(key)
        if entry is not None:
            self._hits += 1
            self._entries.move_to_end(key)
            entry.leases += 1
            return entry
        self._misses += 1
        load = self._loads.get(key) or self._start_load(key)
        load.waiters += 1
        try:
            return await asyncio.shield(load.task)
        except asyncio.CancelledError:
            self._abandon(load)
            raise

    def _abandon(self, load: _Load) -> None:
        """Give back a cancelled waiter's share of a load (its lease, if the load already counted it)."""
        task = load.task
        if task.done() and not task.cancelled() and task.exception() is None:
            self._release(task.result())
        else:
            load.waiters -= 1

    def _start_load(self, key: str) -> _Load:
        load = _Load()
        load.task = asyncio.get_running_loop().create_task(self._load(key, load), name=f"load model {key}")
        # Retrieve the exception even when every waiter was cancelled, so asyncio does not log it.
        load.task.add_done_callback(lambda task: task.cancelled() or task.exception())
        self._loads[key] = load
        return load

    async def _load(self, key: str, load: _Load) -> _Entry:
        """Load `key` in a worker thread, then cache it (unless invalidated meanwhile) and evict."""
        self._load_count += 1
        loop = asyncio.get_running_loop()
        try:
            model, nbytes = await loop.run_in_executor(self._executor, self._load_sync, key)
        except Exception:
            self._load_failures += 1
            raise
        finally:
            if self._loads.get(key) is load:
                del self._loads[key]
        entry = _Entry(key, model, nbytes, leases=load.waiters)
        if load.is_stale:
            self._retire(entry)
        else:
            self._entries[key] = entry
            self._resident_bytes += nbytes
            self._evict_over_budget(keep=key)
        return entry

    def _load_sync(self, key: str) -> tuple[ServedModel, int]:
        model = self._loader(key)
        try:
            return model, model.memory_bytes()
        except Exception:
            model.close()
            raise

    def _evict_over_budget(self, keep: str) -> None:
        while len(self._entries) > 1 and (
            len(self._entries) > self._max_models or self._resident_bytes > self._max_bytes
        ):
            victim = next(key for key in self._entries if key != keep)
            self._evictions += 1
            logger.info("evicting model %s from the cache", victim)
            self._retire(self._pop(victim))

    def _pop(self, key: str) -> _Entry:
        entry = self._entries.pop(key)
        self._resident_bytes -= entry.nbytes
        return entry

    def _retire(self, entry: _Entry) -> None:
        """Take an entry out of service: close it now if nobody holds it, else when the last lease ends."""
        entry.is_retired = True
        if entry.leases == 0:
            self._close_later(entry)
        else:
            self._retiring.add(entry)

    def _release(self, entry: _Entry) -> None:
        entry.leases -= 1
        if entry.is_retired and entry.leases == 0:
            self._retiring.discard(entry)
            self._close_later(entry)

    def _close_later(self, entry: _Entry) -> None:
        # A task, not an await in the caller: a lease may end inside a cancelled request.
        task = asyncio.get_running_loop().create_task(self._close_model(entry))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_model(self, entry: _Entry) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, entry.model.close)
        except Exception:
            logger.exception("closing model %s failed", entry.key)
