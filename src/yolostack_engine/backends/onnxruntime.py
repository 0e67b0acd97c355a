"""ONNX Runtime backend: CPU, or CUDA/TensorRT execution providers on a GPU."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from yolostack_engine.backends.base import Backend, file_bytes
from yolostack_engine.errors import EngineError

try:
    import onnxruntime as ort
except ImportError as error:  # pragma: no cover - depends on the environment
    raise EngineError("the onnxruntime backend is not installed: pip install onnxruntime") from error


def cuda_available() -> bool:
    """Return whether onnxruntime can run on a CUDA GPU."""
    return "CUDAExecutionProvider" in ort.get_available_providers()


def _providers(device: str) -> list[str | tuple[str, dict[str, str]]]:
    """Return execution providers in preference order for a device ("cpu" or "cuda[:N]")."""
    if not device.startswith("cuda"):
        return ["CPUExecutionProvider"]
    if not cuda_available():
        raise EngineError(
            f"device {device!r} requested but onnxruntime has no CUDA provider: pip install onnxruntime-gpu"
        )
    index = device.partition(":")[2] or "0"
    available = ort.get_available_providers()
    providers: list[str | tuple[str, dict[str, str]]] = []
    if "TensorrtExecutionProvider" in available:
        providers.append(("TensorrtExecutionProvider", {"device_id": index}))
    providers.append(("CUDAExecutionProvider", {"device_id": index}))
    return [*providers, "CPUExecutionProvider"]


class OnnxRuntimeBackend(Backend):
    """One InferenceSession; onnxruntime's run() is thread-safe."""

    name = "onnxruntime"

    def __init__(self, path: Path, *, device: str = "cpu", threads: int | None = None) -> None:
        self.path = path
        self.device = device
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.log_severity_level = 3
        self.session: ort.InferenceSession | None = ort.InferenceSession(
            str(path), sess_options=options, providers=_providers(device)
        )
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        # Intra-op threads already use every core on CPU; a GPU overlaps copies of a second request.
        self.max_concurrency = 2 if device.startswith("cuda") else 1

    def forward(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the session on a (B, 3, h, w) float32 batch."""
        if self.session is None:
            raise EngineError("model is closed")
        outputs = self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(batch, np.float32)})
        return [np.asarray(o) for o in outputs]

    def memory_bytes(self) -> int:
        """Estimate the loaded weights by the ONNX file size."""
        return file_bytes(self.path)

    def close(self) -> None:
        """Drop the session."""
        self.session = None
