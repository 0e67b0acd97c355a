"""The runtime interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np


class Backend(ABC):
    """Runs a model's network on a batch: (B, 3, h, w) float32 in, the ONNX-layout outputs out."""

    name: str
    device: str
    max_concurrency: int = 1  # forward() calls that usefully run at once

    @abstractmethod
    def forward(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the network; thread-safe."""

    @abstractmethod
    def memory_bytes(self) -> int:
        """Return an estimate of the memory the loaded model holds."""

    @abstractmethod
    def close(self) -> None:
        """Release the runtime's resources; forward() must not be called afterwards."""


def file_bytes(path: Path) -> int:
    """Return a file's size, or 0 when missing (a cheap memory estimate for loaded weights)."""
    return path.stat().st_size if path.is_file() else 0
