"""OpenVINO backend: reads model.onnx directly (no IR), dynamic shapes, a pool of infer requests."""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Any

import numpy as np

from yolostack_engine.backends.base import Backend, file_bytes
from yolostack_engine.errors import EngineError

try:
    import openvino as ov
except ImportError as error:  # pragma: no cover - depends on the environment
    raise EngineError("the openvino backend is not installed: pip install openvino") from error

PRECISIONS = ("f32", "bf16", "f16", "auto")


def _device_name(device: str) -> str:
    """Map our device strings ("cpu", "gpu", "intel:gpu", "npu") to OpenVINO's."""
    name = device.partition(":")[2] if device.startswith("intel:") else device
    if name.startswith("cuda"):
        raise EngineError("the openvino backend does not run on CUDA devices; use onnxruntime or torch")
    return name.upper()


def _config(precision: str, threads: int | None) -> dict[str, Any]:
    """Return the compile config: throughput streams, and f32 unless reduced precision is asked for."""
    if precision not in PRECISIONS:
        raise EngineError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    config: dict[str, Any] = {"PERFORMANCE_HINT": "THROUGHPUT"}
    if precision in ("f32", "f16"):
        # OpenVINO silently runs bf16 on CPUs that have it; f32 keeps results equal to the reference.
        config["INFERENCE_PRECISION_HINT"] = precision
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return config


class OpenVINOBackend(Backend):
    """A compiled model and a pool of InferRequests, one per stream, so concurrent forward() calls overlap."""

    name = "openvino"

    def __init__(self, path: Path, *, device: str = "cpu", threads: int | None = None, precision: str = "f32") -> None:
        self.path = path
        self.device = device
        core = ov.Core()
        model = core.read_model(str(path))
        self.compiled: Any = core.compile_model(model, _device_name(device), _config(precision, threads))
        self.max_concurrency = max(1, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.requests: queue.Queue[Any] = queue.Queue()
        for _ in range(self.max_concurrency):
            self.requests.put(self.compiled.create_infer_request())

    def forward(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the model on a (B, 3, h, w) float32 batch with a free infer request (blocks until one is free)."""
        if self.compiled is None:
            raise EngineError("model is closed")
        request = self.requests.get()
        try:
            request.infer({0: np.ascontiguousarray(batch, np.float32)})
            # Copy out: the request's output tensors are reused by its next inference.
            return [np.array(request.get_output_tensor(i).data) for i in range(len(self.compiled.outputs))]
        finally:
            self.requests.put(request)

    def memory_bytes(self) -> int:
        """Estimate the loaded weights by the ONNX file size."""
        return file_bytes(self.path)

    def close(self) -> None:
        """Drop the compiled model and its requests."""
        self.compiled = None
        self.requests = queue.Queue()
