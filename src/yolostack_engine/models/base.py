"""ServedModel: from_path -> pre_process -> forward -> post_process, shared by every task."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yolostack_engine.backends.base import Backend
from yolostack_engine.info import ModelInfo
from yolostack_engine.ops.letterbox import LetterboxParams, check_imgsz, letterbox, to_tensor
from yolostack_engine.options import PredictOptions
from yolostack_engine.results import Prediction


@dataclass
class PreparedImage:
    """One pre-processed image and what post-processing needs to map results back."""

    tensor: np.ndarray  # (1, 3, h, w) float32, contiguous
    orig_shape: tuple[int, int]
    letterbox: LetterboxParams | None = None  # None for classification (resize + crop)
    preprocess_ms: float = 0.0

    @property
    def batch_key(self) -> tuple[int, ...]:
        """Images with equal keys can be stacked into one batch."""
        return tuple(self.tensor.shape)

    @property
    def input_shape(self) -> tuple[int, int]:
        """Return the (h, w) the network sees."""
        return int(self.tensor.shape[2]), int(self.tensor.shape[3])


class ServedModel:
    """A loaded model of one task running on one backend."""

    task = ""

    def __init__(self, info: ModelInfo, backend: Backend) -> None:
        self.info = info
        self.backend = backend

    @classmethod
    def from_path(
        cls,
        directory: Path,
        backend: str = "auto",
        *,
        device: str = "cpu",
        threads: int | None = None,
        precision: str = "f32",
    ) -> ServedModel:
        """Load a served-model directory on a backend; returns the subclass for its task."""
        from yolostack_engine.backends import create_backend
        from yolostack_engine.models import model_class

        directory = Path(directory)
        info = ModelInfo.from_dir(directory)
        runtime = create_backend(directory, backend, device=device, threads=threads, precision=precision)
        return model_class(info.task)(info, runtime)

    def pre_process(self, image: np.ndarray, options: PredictOptions) -> PreparedImage:
        """Letterbox a BGR HxWx3 uint8 image to a stride-multiple rectangle, as ultralytics does for dynamic models."""
        start = time.perf_counter()
        size = check_imgsz(options.imgsz, self.info.stride)
        padded, params = letterbox(image, (size, size), auto=True, stride=self.info.stride)
        tensor = to_tensor(padded)
        elapsed = (time.perf_counter() - start) * 1000
        return PreparedImage(tensor, (image.shape[0], image.shape[1]), params, elapsed)

    def forward(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the network on a (B, 3, h, w) batch; thread-safe."""
        return self.backend.forward(batch)

    def post_process(
        self, outputs: list[np.ndarray], prepared: Sequence[PreparedImage], options: PredictOptions
    ) -> list[Prediction]:
        """Turn one batch's raw outputs into one Prediction per image."""
        raise NotImplementedError

    def predict(self, images: Sequence[np.ndarray], options: PredictOptions) -> list[Prediction]:
        """Pre-process, batch equal-shaped images, forward, post-process; results keep the input order."""
        prepared = [self.pre_process(image, options) for image in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, item in enumerate(prepared):
            groups.setdefault(item.batch_key, []).append(index)
        results: list[Prediction | None] = [None] * len(images)
        for indices in groups.values():
            items = [prepared[i] for i in indices]
            for i, prediction in zip(indices, self._run_batch(items, options), strict=True):
                results[i] = prediction
        return [r for r in results if r is not None]

    def _run_batch(self, items: list[PreparedImage], options: PredictOptions) -> list[Prediction]:
        """Forward and post-process one batch of equal-shaped images, splitting timings evenly."""
        batch = items[0].tensor if len(items) == 1 else np.concatenate([i.tensor for i in items])
        start = time.perf_counter()
        outputs = self.forward(batch)
        inference_ms = (time.perf_counter() - start) * 1000 / len(items)
        start = time.perf_counter()
        predictions = self.post_process(outputs, items, options)
        postprocess_ms = (time.perf_counter() - start) * 1000 / len(items)
        for item, prediction in zip(items, predictions, strict=True):
            prediction.speed = {
                "preprocess": item.preprocess_ms,
                "inference": inference_ms,
                "postprocess": postprocess_ms,
            }
        return predictions

    def memory_bytes(self) -> int:
        """Return an estimate of the memory the loaded model holds."""
        return self.backend.memory_bytes()

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()

    def __enter__(self) -> ServedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


WARMUP_SIZE = 64


def load_model(
    directory: Path,
    backend: str = "auto",
    *,
    device: str = "cpu",
    threads: int | None = None,
    precision: str = "f32",
) -> ServedModel:
    """Load a served-model directory (same as ServedModel.from_path) and run it once, alone.

    The first inference must not run on two threads at once: OpenVINO's Python binding initialises a static
    in its first ``infer`` while holding the GIL, and a second thread entering it meanwhile deadlocks the
    process (seen with concurrent first requests). One warm-up call here, before the model is shared, also
    moves the runtime's lazy initialisation out of the first request."""
    model = ServedModel.from_path(directory, backend, device=device, threads=threads, precision=precision)
    model.predict([np.zeros((WARMUP_SIZE, WARMUP_SIZE, 3), dtype=np.uint8)], PredictOptions(imgsz=WARMUP_SIZE))
    return model
