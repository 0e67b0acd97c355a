"""DynamicBatcher on a real yolo11n ONNX export and ONNX Runtime: grouping, timing, errors, the loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolostack_engine import EngineError, Prediction, PredictOptions, ServedModel, load_model
from yolostack_engine.batching import DynamicBatcher
from yolostack_engine.threads import default_executor, tune_threads

OPTIONS = PredictOptions(conf=0.2)  # the calibrated random model scores about 0.1-0.3


@pytest.fixture(scope="session")
def served_dir(model_dir: Callable[[str], Path]) -> Path:
    """A served-model directory holding a dynamic yolo11n ONNX export (calibrated random weights)."""
    return model_dir("detect")


@pytest.fixture(scope="session")
def model(served_dir: Path) -> Iterator[ServedModel]:
    with load_model(served_dir, "onnxruntime") as loaded:
        yield loaded


@pytest.fixture(scope="session")
def images(bus: np.ndarray) -> list[np.ndarray]:
    """Eight different images of bus.jpg's shape, so a batch of them stacks into one tensor."""
    variants = [bus, cv2.flip(bus, 1), cv2.flip(bus, 0), cv2.flip(bus, -1)]
    return variants + [np.roll(variant, 270, axis=1) for variant in variants]


@pytest.fixture
async def batcher() -> AsyncIterator[DynamicBatcher]:
    batcher = DynamicBatcher(max_batch_size=4, max_wait_ms=200)
    yield batcher
    await batcher.close()


def assert_same_prediction(actual: Prediction, expected: Prediction) -> None:
    assert actual.orig_shape == expected.orig_shape
    assert actual.boxes is not None
    assert expected.boxes is not None
    assert len(actual.boxes) == len(expected.boxes)
    # Order by class then position: boxes whose scores tie within float noise may swap places.
    actual_rows = actual.boxes[np.lexsort(actual.boxes[:, [1, 0, 5]].T)]
    expected_rows = expected.boxes[np.lexsort(expected.boxes[:, [1, 0, 5]].T)]
    np.testing.assert_array_equal(actual_rows[:, 5], expected_rows[:, 5])
    np.testing.assert_allclose(actual_rows[:, :4], expected_rows[:, :4], atol=1e-3)
    np.testing.assert_allclose(actual_rows[:, 4], expected_rows[:, 4], atol=1e-3)


@pytest.mark.slow
class TestSubmit:
    async def test_concurrent_submits_are_batched_and_match_predict(
        self, batcher: DynamicBatcher, model: ServedModel, images: list[np.ndarray]
    ) -> None:
        predictions = await asyncio.gather(*(batcher.submit(model, image, OPTIONS) for image in images))

        stats = batcher.stats()
        assert stats.images_run == 8
        assert stats.batches_run < 8
        assert max(stats.batch_sizes) > 1
        assert stats.mean_batch_size > 1
        assert sum(len(prediction) for prediction in predictions) > 0
        for image, prediction in zip(images, predictions, strict=True):
            assert_same_prediction(prediction, model.predict([image], OPTIONS)[0])

    async def test_speed_reports_own_preprocess_and_a_share_of_the_batch(
        self, model: ServedModel, images: list[np.ndarray]
    ) -> None:
        batcher = DynamicBatcher(max_batch_size=4, max_wait_ms=10_000)
        try:
            predictions = await asyncio.gather(*(batcher.submit(model, image, OPTIONS) for image in images[:4]))
        finally:
            await batcher.close()

        assert batcher.stats().batch_sizes == {4: 1}
        for prediction in predictions:
            assert set(prediction.speed) == {"preprocess", "inference", "postprocess"}
            assert all(ms > 0 for ms in prediction.speed.values())
        # One batch: every image carries the same share of its forward and post-processing time.
        assert len({p.speed["inference"] for p in predictions}) == 1
        assert len({p.speed["postprocess"] for p in predictions}) == 1

    async def test_different_options_and_shapes_are_not_mixed(
        self, model: ServedModel, images: list[np.ndarray]
    ) -> None:
        square = cv2.resize(images[0], (640, 640))
        other = PredictOptions(conf=0.25)
        requests = [(images[0], OPTIONS), (images[1], other), (square, OPTIONS), (images[2], OPTIONS)]
        batcher = DynamicBatcher(max_batch_size=8, max_wait_ms=1000)
        try:
            predictions = await asyncio.gather(*(batcher.submit(model, image, opts) for image, opts in requests))
        finally:
            await batcher.close()

        assert batcher.stats().batch_sizes == {1: 2, 2: 1}
        for (image, opts), prediction in zip(requests, predictions, strict=True):
            assert_same_prediction(prediction, model.predict([image], opts)[0])

    async def test_lone_request_is_flushed_after_max_wait(self, model: ServedModel, images: list[np.ndarray]) -> None:
        batcher = DynamicBatcher(max_batch_size=8, max_wait_ms=150)
        try:
            start = time.perf_counter()
            prediction = await batcher.submit(model, images[0], OPTIONS)
            elapsed = time.perf_counter() - start
        finally:
            await batcher.close()

        assert elapsed >= 0.15
        assert batcher.stats().batch_sizes == {1: 1}
        assert_same_prediction(prediction, model.predict([images[0]], OPTIONS)[0])

    async def test_full_batch_does_not_wait(self, model: ServedModel, images: list[np.ndarray]) -> None:
        batcher = DynamicBatcher(max_batch_size=2, max_wait_ms=60_000)
        try:
            await asyncio.wait_for(asyncio.gather(*(batcher.submit(model, i, OPTIONS) for i in images[:2])), 30)
        finally:
            await batcher.close()

        assert batcher.stats().batch_sizes == {2: 1}


@pytest.mark.slow
class TestSubmitMany:
    async def test_results_keep_input_order_and_share_batches(
        self, batcher: DynamicBatcher, model: ServedModel, images: list[np.ndarray]
    ) -> None:
        predictions = await batcher.submit_many(model, images, OPTIONS)

        assert batcher.stats().mean_batch_size > 1
        assert [len(p) for p in predictions] == [len(p) for p in model.predict(images, OPTIONS)]
        for image, prediction in zip(images, predictions, strict=True):
            assert_same_prediction(prediction, model.predict([image], OPTIONS)[0])

    async def test_empty_request_returns_no_predictions(self, batcher: DynamicBatcher, model: ServedModel) -> None:
        assert await batcher.submit_many(model, [], OPTIONS) == []


@pytest.mark.slow
class TestErrors:
    async def test_pre_process_error_reaches_only_its_caller(
        self, batcher: DynamicBatcher, model: ServedModel, images: list[np.ndarray]
    ) -> None:
        empty = np.zeros((0, 0, 3), np.uint8)
        requests = [images[0], empty, images[1]]

        results = await asyncio.gather(*(batcher.submit(model, i, OPTIONS) for i in requests), return_exceptions=True)

        assert isinstance(results[1], Exception)
        assert isinstance(results[0], Prediction)
        assert isinstance(results[2], Prediction)
        assert batcher.stats().failed_batches == 0

    async def test_forward_error_reaches_only_that_batchs_callers(
        self, batcher: DynamicBatcher, served_dir: Path, model: ServedModel, images: list[np.ndarray]
    ) -> None:
        closed = load_model(served_dir, "onnxruntime")
        closed.close()
        requests = [(closed, images[0]), (model, images[1]), (closed, images[2]), (model, images[3])]

        results = await asyncio.gather(
            *(batcher.submit(m, image, OPTIONS) for m, image in requests), return_exceptions=True
        )

        assert isinstance(results[0], EngineError)
        assert isinstance(results[2], EngineError)
        assert isinstance(results[1], Prediction)
        assert isinstance(results[3], Prediction)
        assert batcher.stats().failed_batches == 1

    async def test_cancelled_waiter_does_not_break_the_others(
        self, model: ServedModel, images: list[np.ndarray]
    ) -> None:
        batcher = DynamicBatcher(max_batch_size=8, max_wait_ms=500)
        tasks = [asyncio.create_task(batcher.submit(model, image, OPTIONS)) for image in images[:3]]
        await asyncio.sleep(0.3)  # pre-processed and queued, the batch not yet run
        tasks[1].cancel()
        try:
            results = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await batcher.close()

        assert isinstance(results[1], asyncio.CancelledError)
        assert isinstance(results[0], Prediction)
        assert isinstance(results[2], Prediction)
        assert batcher.stats().images_run == 2


@pytest.mark.slow
class TestEventLoop:
    async def test_loop_keeps_ticking_while_batches_run(
        self, batcher: DynamicBatcher, model: ServedModel, images: list[np.ndarray]
    ) -> None:
        gaps: list[float] = []
        done = asyncio.Event()

        async def tick() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        start = time.perf_counter()
        predictions = await asyncio.gather(*(batcher.submit(model, image, OPTIONS) for image in images))
        elapsed = time.perf_counter() - start
        done.set()
        await ticker

        # A loop blocked by a batch would show one gap at least as long as that batch's forward call.
        longest_forward_s = max(p.speed["inference"] for p in predictions) * max(batcher.stats().batch_sizes) / 1000
        assert max(gaps) < max(0.25, longest_forward_s / 2)
        assert len(gaps) > elapsed / 0.05


@pytest.mark.slow
class TestClose:
    async def test_close_runs_queued_requests_without_waiting(
        self, model: ServedModel, images: list[np.ndarray]
    ) -> None:
        batcher = DynamicBatcher(max_batch_size=8, max_wait_ms=60_000)
        tasks = [asyncio.create_task(batcher.submit(model, image, OPTIONS)) for image in images[:2]]
        await asyncio.sleep(1.0)  # both pre-processed and queued behind a one-minute wait

        await asyncio.wait_for(batcher.close(), 30)

        assert all(isinstance(task.result(), Prediction) for task in tasks)
        assert batcher.stats().batch_sizes == {2: 1}

    async def test_submit_after_close_is_refused(self, model: ServedModel, images: list[np.ndarray]) -> None:
        batcher = DynamicBatcher(max_batch_size=2, max_wait_ms=1)
        await batcher.close()

        with pytest.raises(RuntimeError, match="closed"):
            await batcher.submit(model, images[0], OPTIONS)

    def test_invalid_settings_are_refused(self) -> None:
        with pytest.raises(ValueError, match="max_batch_size"):
            DynamicBatcher(max_batch_size=0, max_wait_ms=1)
        with pytest.raises(ValueError, match="max_wait_ms"):
            DynamicBatcher(max_batch_size=1, max_wait_ms=-1)


class TestTuneThreads:
    @pytest.mark.parametrize(
        ("cores", "streams", "threads", "workers"),
        [(1, 1, 1, 3), (2, 1, 2, 3), (4, 1, 4, 3), (8, 2, 4, 4), (16, 4, 4, 6)],
    )
    def test_splits_cores_into_streams(self, cores: int, streams: int, threads: int, workers: int) -> None:
        settings = tune_threads(cores)

        assert (settings.inference_streams, settings.threads_per_stream, settings.executor_workers) == (
            streams,
            threads,
            workers,
        )
        assert settings.inference_streams * settings.threads_per_stream <= cores

    def test_default_executor_has_the_tuned_size(self) -> None:
        executor = default_executor(tune_threads(2))
        try:
            assert executor._max_workers == 3
        finally:
            executor.shutdown()
