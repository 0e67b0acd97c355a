"""Thread settings for CPU inference: how many streams, threads per stream and executor workers.

A *stream* is one `forward()` call running at a time (an ONNX Runtime session run, an OpenVINO infer
request). Each stream uses `threads_per_stream` intra-op threads. Small YOLO models stop scaling at
about four threads per convolution: past that, the threads spend more time synchronising than
computing, so extra cores buy more throughput as extra streams than as extra threads in one stream.

    cores   streams x threads   executor workers
      1          1 x 1                 3
      2          1 x 2                 3
      4          1 x 4                 3
      8          2 x 4                 4
     16          4 x 4                 6

The executor runs pre-processing, `forward()` and post-processing. It holds one worker per stream
plus room for pre/post-processing of the next batch while the current one runs (OpenCV and NumPy
release the GIL), so the streams never wait for a letterbox to finish.

Example:
    >>> settings = tune_threads(2)
    >>> (settings.inference_streams, settings.threads_per_stream, settings.executor_workers)
    (1, 2, 3)
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

# Threads per convolution beyond which a small model gains more from another stream.
_THREADS_PER_STREAM_CAP = 4


@dataclass(frozen=True)
class ThreadSettings:
    """Threads to give the inference runtime and the engine's executor for a number of cores."""

    cores: int
    inference_streams: int
    threads_per_stream: int
    executor_workers: int


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's total)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def tune_threads(cores: int | None = None) -> ThreadSettings:
    """Pick streams, intra-op threads per stream and executor size for `cores` (default: available)."""
    cores = available_cores() if cores is None else cores
    if cores < 1:
        raise ValueError(f"cores must be at least 1, got {cores}")
    streams = max(1, cores // _THREADS_PER_STREAM_CAP)
    threads_per_stream = max(1, cores // streams)
    pre_post_workers = max(2, streams // 2)
    return ThreadSettings(
        cores=cores,
        inference_streams=streams,
        threads_per_stream=threads_per_stream,
        executor_workers=streams + pre_post_workers,
    )


def default_executor(settings: ThreadSettings | None = None) -> ThreadPoolExecutor:
    """A thread pool sized for the engine's pre-processing, forward and post-processing work."""
    settings = settings or tune_threads()
    return ThreadPoolExecutor(max_workers=settings.executor_workers, thread_name_prefix="yolostack-engine")
