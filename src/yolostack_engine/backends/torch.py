"""PyTorch backend (the reference): ultralytics' AutoBackend on model.pt, outputs in the ONNX layout."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from yolostack_engine.backends.base import Backend, file_bytes
from yolostack_engine.errors import EngineError

try:
    import torch
    from ultralytics.nn.autobackend import AutoBackend
except ImportError as error:  # pragma: no cover - depends on the environment
    raise EngineError("the torch backend is not installed: pip install torch ultralytics") from error


_LOAD_LOCK = threading.Lock()


@contextmanager
def _restricted_torch_load() -> Iterator[None]:
    """Route ultralytics' ``torch.load`` through the conversion's restricted unpickler while a model loads.

    The server must never plainly unpickle an uploaded checkpoint: the bytes already passed the same
    allowlist in the conversion sandbox, and loading them here applies it again.
    """
    from yolostack_engine.convert import safe_pickle

    original = torch.load

    def restricted(f: Any, *_args: Any, **_kwargs: Any) -> Any:
        return original(f, map_location="cpu", pickle_module=safe_pickle, weights_only=False)

    with _LOAD_LOCK:
        torch.load = restricted
        try:
            yield
        finally:
            torch.load = original


def _onnx_layout(output: Any) -> list[np.ndarray]:
    """Keep what the ONNX export keeps: the inference tensor(s), dropping training-only extras."""
    first = output[0] if isinstance(output, list | tuple) else output
    tensors = list(first) if isinstance(first, list | tuple) else [first]
    return [t.detach().float().cpu().numpy() for t in tensors]


class TorchBackend(Backend):
    """An ultralytics model in eval mode; forward calls are serialized (torch modules are not re-entrant safe)."""

    name = "torch"

    def __init__(self, path: Path, *, device: str = "cpu", threads: int | None = None, precision: str = "f32") -> None:
        self.path = path
        self.device = device
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise EngineError(f"device {device!r} requested but torch has no CUDA support here")
        if threads:
            torch.set_num_threads(threads)
        self.torch_device = torch.device(device)
        half = precision == "f16" and device.startswith("cuda")
        with _restricted_torch_load():
            self.model: Any = AutoBackend(str(path), device=self.torch_device, fp16=half, fuse=True, verbose=False)
        self.model.eval()
        self.lock = threading.Lock()
        self.max_concurrency = 1

    def forward(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the model on a (B, 3, h, w) float32 batch."""
        if self.model is None:
            raise EngineError("model is closed")
        tensor = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(self.torch_device)
        with self.lock, torch.inference_mode():
            if self.model.fp16:
                tensor = tensor.half()
            return _onnx_layout(self.model(tensor))

    def memory_bytes(self) -> int:
        """Return the size of the model's parameters and buffers."""
        if self.model is None:
            return file_bytes(self.path)
        tensors = [*self.model.parameters(), *self.model.buffers()]
        # AutoBackend may hold the network outside its registered submodules; then the checkpoint size stands in.
        return sum(t.numel() * t.element_size() for t in tensors) or file_bytes(self.path)

    def close(self) -> None:
        """Drop the model (and free cached GPU memory)."""
        self.model = None
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
