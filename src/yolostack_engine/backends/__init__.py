"""Backend selection; each runtime module is imported only when chosen."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from yolostack_engine.backends.base import Backend
from yolostack_engine.errors import EngineError

BACKENDS = ("onnxruntime", "openvino", "torch")
_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "torch": "ultralytics"}
_INSTALL = {
    "onnxruntime": "pip install onnxruntime (or onnxruntime-gpu)",
    "openvino": "pip install openvino",
    "torch": "pip install torch ultralytics",
}


def is_available(name: str) -> bool:
    """Return whether a backend's runtime is installed (without importing it)."""
    module = _MODULES.get(name)
    return module is not None and importlib.util.find_spec(module) is not None


def available_backends() -> list[str]:
    """Return the installed backends, in preference order."""
    return [name for name in BACKENDS if is_available(name)]


def resolve_backend(backend: str, device: str) -> str:
    """Pick a concrete backend for "auto": OpenVINO on CPU, CUDA onnxruntime (else torch) on GPU."""
    if backend != "auto":
        if backend not in BACKENDS:
            raise EngineError(f"unknown backend {backend!r}; choose one of auto, {', '.join(BACKENDS)}")
        return backend
    if device.startswith("cuda"):
        from yolostack_engine.backends.onnxruntime import cuda_available

        return "onnxruntime" if is_available("onnxruntime") and cuda_available() else "torch"
    for name in ("openvino", "onnxruntime", "torch"):
        if is_available(name):
            return name
    raise EngineError("no inference runtime installed: pip install openvino or onnxruntime")


def require(name: str) -> None:
    """Raise a clear EngineError when a backend's runtime is not installed."""
    if not is_available(name):
        raise EngineError(f"the {name} backend is not installed: {_INSTALL[name]}")


def create_backend(
    directory: Path, backend: str = "auto", *, device: str = "cpu", threads: int | None = None, precision: str = "f32"
) -> Backend:
    """Load the model files in directory on the chosen runtime."""
    name = resolve_backend(backend, device)
    require(name)
    if name == "onnxruntime":
        from yolostack_engine.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(_model_file(directory, "model.onnx"), device=device, threads=threads)
    if name == "openvino":
        from yolostack_engine.backends.openvino import OpenVINOBackend

        return OpenVINOBackend(
            _model_file(directory, "model.onnx"), device=device, threads=threads, precision=precision
        )
    from yolostack_engine.backends.torch import TorchBackend

    return TorchBackend(_model_file(directory, "model.pt"), device=device, threads=threads, precision=precision)


def _model_file(directory: Path, name: str) -> Path:
    """Return directory/name or raise EngineError when it is missing."""
    path = Path(directory) / name
    if not path.is_file():
        raise EngineError(f"{name} not found in {directory}")
    return path


__all__ = ["BACKENDS", "Backend", "available_backends", "create_backend", "is_available", "resolve_backend"]
