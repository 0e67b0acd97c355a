"""ModelCache with real models loaded by ONNX Runtime: single-flight loads, LRU eviction, leases."""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from yolostack_engine import EngineError, ServedModel, load_model
from yolostack_engine.cache import ModelCache

pytestmark = pytest.mark.slow

TINY_BATCH = np.zeros((1, 3, 32, 32), np.float32)


class CountingLoader:
    """Loads "<name>:<version>:onnxruntime" keys from root/<name>, counting loads per key."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: Counter[str] = Counter()

    def __call__(self, key: str) -> ServedModel:
        self.calls[key] += 1
        name, _, backend = key.split(":")
        return load_model(self.root / name, backend)


@pytest.fixture(scope="session")
def served_dir(model_dir: Callable[[str], Path]) -> Path:
    return model_dir("detect")


@pytest.fixture
def models_root(tmp_path: Path, served_dir: Path) -> Path:
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        shutil.copy(served_dir / "model.onnx", tmp_path / name / "model.onnx")
    return tmp_path


@pytest.fixture
def loader(models_root: Path) -> CountingLoader:
    return CountingLoader(models_root)


@pytest.fixture
async def cache(loader: CountingLoader) -> AsyncIterator[ModelCache]:
    cache = ModelCache(loader, max_models=2, max_bytes=1 << 40)
    yield cache
    await cache.close()


def is_closed(model: ServedModel) -> bool:
    try:
        model.forward(TINY_BATCH)
    except EngineError:
        return True
    return False


def key(name: str) -> str:
    return f"{name}:1:onnxruntime"


class TestGet:
    async def test_concurrent_first_gets_load_once(self, cache: ModelCache, loader: CountingLoader) -> None:
        models = await asyncio.gather(*(cache.get(key("a")) for _ in range(10)))

        assert all(model is models[0] for model in models)
        assert loader.calls == {key("a"): 1}
        stats = cache.stats()
        assert (stats.loads, stats.misses, stats.hits, stats.resident_models) == (1, 10, 0, 1)

    async def test_later_get_is_a_hit(self, cache: ModelCache, loader: CountingLoader) -> None:
        first = await cache.get(key("a"))

        assert await cache.get(key("a")) is first
        assert loader.calls == {key("a"): 1}
        assert cache.stats().hits == 1

    async def test_resident_bytes_sum_memory_bytes(self, cache: ModelCache) -> None:
        a = await cache.get(key("a"))
        b = await cache.get(key("b"))

        assert cache.stats().resident_bytes == a.memory_bytes() + b.memory_bytes() > 0

    async def test_first_caller_cancelled_while_loading_does_not_stop_the_load(
        self, cache: ModelCache, loader: CountingLoader
    ) -> None:
        first = asyncio.create_task(cache.get(key("a")))
        await asyncio.sleep(0)
        second = asyncio.create_task(cache.get(key("a")))
        await asyncio.sleep(0)
        first.cancel()

        model = await second

        assert first.cancelled()
        assert not is_closed(model)
        assert loader.calls == {key("a"): 1}


class TestLoadFailure:
    async def test_failure_reaches_every_waiter_and_is_not_cached(
        self, cache: ModelCache, loader: CountingLoader, models_root: Path, served_dir: Path
    ) -> None:
        missing = key("missing")

        results = await asyncio.gather(*(cache.get(missing) for _ in range(3)), return_exceptions=True)

        assert all(isinstance(result, EngineError) for result in results)
        assert loader.calls == {missing: 1}
        assert cache.stats().load_failures == 1
        assert cache.stats().resident_models == 0

        (models_root / "missing").mkdir()
        shutil.copy(served_dir / "model.onnx", models_root / "missing" / "model.onnx")
        model = await cache.get(missing)

        assert not is_closed(model)
        assert loader.calls == {missing: 2}


class TestEviction:
    async def test_least_recently_used_is_evicted_by_count(self, cache: ModelCache) -> None:
        a = await cache.get(key("a"))
        b = await cache.get(key("b"))
        await cache.get(key("a"))  # a is now more recent than b

        await cache.get(key("c"))
        await cache.wait_closed()

        assert cache.keys() == [key("a"), key("c")]
        assert cache.stats().evictions == 1
        assert is_closed(b)
        assert not is_closed(a)

    async def test_least_recently_used_is_evicted_by_bytes(self, loader: CountingLoader) -> None:
        probe = loader(key("a"))
        size = probe.memory_bytes()
        probe.close()
        cache = ModelCache(loader, max_models=10, max_bytes=int(size * 2.5))
        try:
            a = await cache.get(key("a"))
            await cache.get(key("b"))
            await cache.get(key("c"))
            await cache.wait_closed()

            assert cache.keys() == [key("b"), key("c")]
            assert cache.stats().resident_bytes == 2 * size
            assert is_closed(a)
        finally:
            await cache.close()

    async def test_model_just_loaded_is_kept_even_over_budget(self, loader: CountingLoader) -> None:
        cache = ModelCache(loader, max_models=10, max_bytes=1)
        try:
            await cache.get(key("a"))
            b = await cache.get(key("b"))

            assert cache.keys() == [key("b")]
            assert not is_closed(b)
        finally:
            await cache.close()

    async def test_leased_model_is_closed_only_after_release(self, loader: CountingLoader) -> None:
        cache = ModelCache(loader, max_models=1, max_bytes=1 << 40)
        try:
            async with cache.lease(key("a")) as a:
                await cache.get(key("b"))
                await cache.wait_closed()

                assert cache.keys() == [key("b")]
                assert cache.stats().retiring_models == 1
                assert not is_closed(a)

            await cache.wait_closed()
            assert is_closed(a)
            assert cache.stats().retiring_models == 0
        finally:
            await cache.close()


class TestInvalidate:
    async def test_drops_models_with_the_prefix(self, cache: ModelCache, loader: CountingLoader) -> None:
        a = await cache.get(key("a"))
        b = await cache.get(key("b"))

        assert cache.invalidate("a:") == 1
        await cache.wait_closed()

        assert cache.keys() == [key("b")]
        assert is_closed(a)
        assert not is_closed(b)
        assert await cache.get(key("a")) is not a
        assert loader.calls[key("a")] == 2

    async def test_load_in_progress_is_not_cached(self, cache: ModelCache, loader: CountingLoader) -> None:
        async def lease_once() -> tuple[ServedModel, bool]:
            async with cache.lease(key("a")) as model:
                return model, is_closed(model)

        loading = asyncio.create_task(lease_once())
        await asyncio.sleep(0)  # the load has started
        assert cache.invalidate("a:") == 0

        stale, was_closed_while_leased = await loading
        await cache.wait_closed()

        assert not was_closed_while_leased
        assert is_closed(stale)
        assert cache.keys() == []
        assert await cache.get(key("a")) is not stale
        assert loader.calls[key("a")] == 2


class TestClose:
    async def test_closes_models_and_refuses_new_requests(self, loader: CountingLoader) -> None:
        cache = ModelCache(loader, max_models=2, max_bytes=1 << 40)
        a = await cache.get(key("a"))

        await cache.close()

        assert is_closed(a)
        with pytest.raises(RuntimeError, match="closed"):
            await cache.get(key("a"))

    def test_invalid_limits_are_refused(self, loader: CountingLoader) -> None:
        with pytest.raises(ValueError, match="max_models"):
            ModelCache(loader, max_models=0, max_bytes=1)
