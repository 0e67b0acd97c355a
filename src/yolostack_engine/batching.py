"""DynamicBatcher: gather concurrent requests for one model into batches (LitServe's collation loop).

Flow of one ``submit``: pre-process in the executor, then join the open *group* of its model whose
``(options, prepared.batch_key)`` is equal. A group becomes ready when it holds ``max_batch_size``
images or its oldest image has waited ``max_wait_ms``. Ready groups run in the order they became ready, with at most
``model.backend.max_concurrency`` forward calls in flight per model; a ready group that waits for a
free slot keeps taking new images (up to ``max_batch_size``), so a busy backend gets larger batches.
The forward call and the post-processing run in the executor, never on the event loop; the slot is
freed as soon as forward returns, so the next batch's forward overlaps this batch's post-processing.

Per-image timings follow ultralytics' batched ``speed`` (per image = batch time / batch size): each
prediction reports its own pre-processing time and an equal share of its batch's forward and
post-processing times, so summing ``speed`` over a batch gives the compute it used. A caller's
latency is larger: it also waited in the queue and for the whole batch.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from yolostack_engine.threads import default_executor

if TYPE_CHECKING:
    from yolostack_engine import Prediction, PredictOptions, PreparedImage, ServedModel

    _GroupKey: TypeAlias = tuple[PredictOptions, tuple[int, ...]]


@dataclass(frozen=True)
class BatcherStats:
    """Batches run since the batcher was created, and requests in progress now."""

    batches_run: int
    images_run: int
    failed_batches: int
    active_requests: int  # submitted and not yet answered (pre-processing, queued or running)
    batch_sizes: dict[int, int]  # batch size -> how many batches had it

    @property
    def mean_batch_size(self) -> float:
        """Images per batch, 0.0 before the first batch."""
        return self.images_run / self.batches_run if self.batches_run else 0.0


@dataclass(eq=False)
class _Request:
    prepared: PreparedImage
    future: asyncio.Future[Prediction]


@dataclass(eq=False)
class _Group:
    """Requests that can share one forward call: same model, options and input shape."""

    key: _GroupKey
    options: PredictOptions
    requests: list[_Request] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    is_ready: bool = False


@dataclass(eq=False)
class _Lane:
    """One model's open groups, the groups ready to run, and its forward calls in flight."""

    model: ServedModel
    max_in_flight: int
    open_groups: dict[_GroupKey, _Group] = field(default_factory=dict)
    ready: deque[_Group] = field(default_factory=deque)
    in_flight: int = 0

    @property
    def is_idle(self) -> bool:
        return not self.open_groups and not self.ready and self.in_flight == 0


class DynamicBatcher:
    """Batch concurrent predictions per model by size and wait time; see the module docstring.

    Create one per process (in the server's lifespan) and share it: batches only form across requests
    that go through the same batcher.

    Example:
        >>> batcher = DynamicBatcher(max_batch_size=8, max_wait_ms=5)
        >>> prediction = await batcher.submit(model, image, PredictOptions(conf=0.5))  # doctest: +SKIP
        >>> frames = await batcher.submit_many(model, video_frames, PredictOptions())  # doctest: +SKIP
        >>> await batcher.close()  # doctest: +SKIP
    """

    def __init__(self, *, max_batch_size: int, max_wait_ms: float, executor: Executor | None = None) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must not be negative, got {max_wait_ms}")
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        self._owns_executor = executor is None
        self._executor = executor if executor is not None else default_executor()
        self._lanes: dict[ServedModel, _Lane] = {}
        self._batch_tasks: set[asyncio.Task[None]] = set()
        self._active_requests = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._is_closing = False
        self._batches_run = self._images_run = self._failed_batches = 0
        self._batch_sizes: Counter[int] = Counter()

    async def submit(self, model: ServedModel, image: np.ndarray, options: PredictOptions) -> Prediction:
        """Predict one BGR image, batched with concurrent requests for the same model and options."""
        if self._is_closing:
            raise RuntimeError("the batcher is closed")
        self._active_requests += 1
        self._drained.clear()
        try:
            loop = asyncio.get_running_loop()
            prepared = await loop.run_in_executor(self._executor, model.pre_process, image, options)
            future: asyncio.Future[Prediction] = loop.create_future()
            self._enqueue(model, options, _Request(prepared, future))
            return await future
        finally:
            self._active_requests -= 1
            if self._active_requests == 0:
                self._drained.set()

    async def submit_many(
        self, model: ServedModel, images: Sequence[np.ndarray], options: PredictOptions
    ) -> list[Prediction]:
        """Predict several images (a multi-image request, video frames); results keep the input order.

        At most a few batches' worth of images are pre-processed ahead of the model, so a long video
        does not hold every frame's tensor in memory at once. The first failure cancels the rest.
        """
        window = asyncio.Semaphore(self.max_batch_size * (max(1, model.backend.max_concurrency) + 1))

        async def submit_in_window(image: np.ndarray) -> Prediction:
            async with window:
                return await self.submit(model, image, options)

        tasks = [asyncio.ensure_future(submit_in_window(image)) for image in images]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            raise

    def stats(self) -> BatcherStats:
        """Return the batch counters."""
        return BatcherStats(
            batches_run=self._batches_run,
            images_run=self._images_run,
            failed_batches=self._failed_batches,
            active_requests=self._active_requests,
            batch_sizes=dict(self._batch_sizes),
        )

    async def close(self) -> None:
        """Refuse new requests, run everything queued now, wait for it, and stop an owned executor."""
        self._is_closing = True
        for lane in list(self._lanes.values()):
            for group in list(lane.open_groups.values()):
                self._mark_ready(lane, group)
            self._dispatch(lane)
        await self._drained.wait()
        while self._batch_tasks:
            await asyncio.wait(list(self._batch_tasks))
        if self._owns_executor:
            await asyncio.to_thread(self._executor.shutdown)

    def _enqueue(self, model: ServedModel, options: PredictOptions, request: _Request) -> None:
        lane = self._lanes.get(model)
        if lane is None:
            lane = self._lanes[model] = _Lane(model, max(1, model.backend.max_concurrency))
        key: _GroupKey = (options, request.prepared.batch_key)
        group = lane.open_groups.get(key)
        if group is None:
            group = lane.open_groups[key] = _Group(key, options)
            loop = asyncio.get_running_loop()
            group.timer = loop.call_later(self.max_wait_ms / 1000, self._on_wait_elapsed, lane, group)
        group.requests.append(request)
        if len(group.requests) >= self.max_batch_size:
            del lane.open_groups[key]
            self._mark_ready(lane, group)
        elif self._is_closing:
            self._mark_ready(lane, group)
        self._dispatch(lane)

    def _on_wait_elapsed(self, lane: _Lane, group: _Group) -> None:
        group.timer = None
        self._mark_ready(lane, group)
        self._dispatch(lane)

    def _mark_ready(self, lane: _Lane, group: _Group) -> None:
        if group.timer is not None:
            group.timer.cancel()
            group.timer = None
        if not group.is_ready:
            group.is_ready = True
            lane.ready.append(group)

    def _dispatch(self, lane: _Lane) -> None:
        """Start ready groups, oldest first, while the model has free forward slots."""
        while lane.ready and lane.in_flight < lane.max_in_flight:
            group = lane.ready.popleft()
            if lane.open_groups.get(group.key) is group:
                del lane.open_groups[group.key]
            # Callers that gave up (cancelled) while queued take no place in the batch.
            requests = [request for request in group.requests if not request.future.done()]
            if not requests:
                continue
            lane.in_flight += 1
            task = asyncio.get_running_loop().create_task(self._run_batch(lane, group.options, requests))
            self._batch_tasks.add(task)
            task.add_done_callback(self._batch_tasks.discard)
        if lane.is_idle and self._lanes.get(lane.model) is lane:
            del self._lanes[lane.model]

    async def _run_batch(self, lane: _Lane, options: PredictOptions, requests: list[_Request]) -> None:
        loop = asyncio.get_running_loop()
        prepared = [request.prepared for request in requests]
        self._batches_run += 1
        self._images_run += len(requests)
        self._batch_sizes[len(requests)] += 1
        try:
            try:
                outputs, forward_ms = await loop.run_in_executor(self._executor, _forward, lane.model, prepared)
            finally:
                lane.in_flight -= 1
                self._dispatch(lane)
            predictions = await loop.run_in_executor(
                self._executor, _post_process, lane.model, outputs, prepared, options, forward_ms
            )
        except asyncio.CancelledError:
            for request in requests:
                request.future.cancel()
            raise
        except Exception as error:
            self._failed_batches += 1
            for request in requests:
                if not request.future.done():
                    request.future.set_exception(error)
        else:
            for request, prediction in zip(requests, predictions, strict=True):
                if not request.future.done():
                    request.future.set_result(prediction)


def _forward(model: ServedModel, prepared: list[PreparedImage]) -> tuple[list[np.ndarray], float]:
    """Stack the tensors and run the network; return the outputs and the forward time in ms."""
    batch = prepared[0].tensor if len(prepared) == 1 else np.concatenate([item.tensor for item in prepared])
    start = time.perf_counter()
    outputs = model.forward(batch)
    return outputs, (time.perf_counter() - start) * 1000


def _post_process(
    model: ServedModel,
    outputs: list[np.ndarray],
    prepared: list[PreparedImage],
    options: PredictOptions,
    forward_ms: float,
) -> list[Prediction]:
    """Post-process one batch and give each prediction its own pre-processing time and a share of the rest."""
    start = time.perf_counter()
    predictions = model.post_process(outputs, prepared, options)
    postprocess_ms = (time.perf_counter() - start) * 1000
    if len(predictions) != len(prepared):
        raise RuntimeError(f"post_process returned {len(predictions)} predictions for {len(prepared)} images")
    size = len(prepared)
    for item, prediction in zip(prepared, predictions, strict=True):
        prediction.speed = {
            "preprocess": item.preprocess_ms,
            "inference": forward_ms / size,
            "postprocess": postprocess_ms / size,
        }
    return predictions
