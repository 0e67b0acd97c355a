"""GPU check for the engine: our torch backend on CUDA against ultralytics on the same GPU (parity and speed).

Run on a machine with an NVIDIA GPU: ``python bench/engine_gpu.py [--model yolo11n.yaml] [--imgsz 640]``.
It builds the model from the package's yaml (no downloads), exports ONNX, then compares
``ServedModel.predict`` (backend torch, device cuda:0; and ONNX Runtime with whichever providers are
installed) with ``YOLO(model.pt).predict(device=0)`` on ``bus.jpg`` and ``zidane.jpg``, and times both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")

import cv2
import numpy as np


def build(directory: Path, yaml: str, imgsz: int) -> Path:
    from ultralytics import YOLO  # type: ignore[attr-defined]

    model = YOLO(yaml)
    model.save(str(directory / "model.pt"))
    exported = YOLO(str(directory / "model.pt")).export(format="onnx", dynamic=True, simplify=False, imgsz=imgsz)
    Path(exported).rename(directory / "model.onnx")
    return directory


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return image


def summary(results: Any) -> list[dict[str, Any]]:
    """The first result's ``summary()`` (ultralytics' return type is a wide union)."""
    rows: list[dict[str, Any]] = results[0].summary()
    return rows


def compare(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> str:
    """Match each of our rows to the same-class reference row with the nearest box (random weights tie often,
    so the order among near-equal confidences may differ); report matches and the largest differences."""
    unmatched = list(theirs)
    box = conf = 0.0
    matched = 0
    for row in ours:
        candidates = [other for other in unmatched if other["class"] == row["class"]]
        if not candidates:
            continue
        best = min(candidates, key=lambda other: max(abs(row["box"][k] - other["box"][k]) for k in row["box"]))
        difference = max(abs(row["box"][k] - best["box"][k]) for k in row["box"])
        if difference > 1.0:
            continue
        unmatched.remove(best)
        matched += 1
        box, conf = max(box, difference), max(conf, abs(row["confidence"] - best["confidence"]))
    return (
        f"{matched}/{len(ours)} of ours matched ({len(theirs)} reference rows), "
        f"max box diff {box:.4f} px, max conf diff {conf:.2e}"
    )


def timed(function: Any, repeats: int) -> float:
    """Median milliseconds of ``repeats`` calls after two warm-ups."""
    for _ in range(2):
        function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="yolo11n.yaml")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--directory", type=Path, help="a prebuilt served-model directory (model.pt + model.onnx)")
    args = parser.parse_args()

    import onnxruntime
    import torch
    import ultralytics
    from ultralytics import YOLO  # type: ignore[attr-defined]

    from yolostack_engine import PredictOptions, load_model

    print(f"torch {torch.__version__}, CUDA {torch.cuda.is_available()}, ultralytics {ultralytics.__version__}")
    print(f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    print(f"onnxruntime {onnxruntime.__version__} providers: {onnxruntime.get_available_providers()}")
    assets = Path(ultralytics.__file__).parent / "assets"
    images = [read(assets / name) for name in ("bus.jpg", "zidane.jpg")]
    # Random weights detect little at 0.25; a low threshold gives rows to compare.
    options = PredictOptions(imgsz=args.imgsz, conf=0.1, iou=0.7)
    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as work:
        directory = args.directory or build(Path(work), args.model, args.imgsz)
        reference = YOLO(str(directory / "model.pt"))
        served = load_model(directory, "torch", device=device)
        for name, image in zip(("bus.jpg", "zidane.jpg"), images, strict=True):
            theirs = reference.predict(image, imgsz=args.imgsz, conf=0.1, iou=0.7, device=device, verbose=False)
            ours = served.predict([image], options)[0].summary()
            print(f"parity torch/{device} {name}: {compare(ours, summary(theirs))}")
        providers = onnxruntime.get_available_providers()
        onnx_device = "cuda" if "CUDAExecutionProvider" in providers else "cpu"
        onnx = load_model(directory, "onnxruntime", device=onnx_device)
        print(f"onnxruntime backend on {onnx_device}: providers in use {getattr(onnx.backend, 'providers', '?')}")
        theirs = reference.predict(images[0], imgsz=args.imgsz, conf=0.1, iou=0.7, device=device, verbose=False)
        print(
            f"parity onnxruntime/{onnx_device} bus.jpg: {compare(onnx.predict([images[0]], options)[0].summary(), summary(theirs))}"
        )

        def sync(function: Any) -> Any:
            def call() -> None:
                function()
                if device.startswith("cuda"):
                    torch.cuda.synchronize()

            return call

        batch8 = [images[0]] * 8
        rows = [
            (
                "ultralytics YOLO.predict, 1 image",
                timed(
                    sync(lambda: reference.predict(images[0], imgsz=args.imgsz, device=device, verbose=False)),
                    args.repeats,
                ),
                1,
            ),
            (
                "yolostack torch backend, 1 image",
                timed(sync(lambda: served.predict([images[0]], PredictOptions(imgsz=args.imgsz))), args.repeats),
                1,
            ),
            (
                "ultralytics YOLO.predict, batch 8",
                timed(
                    sync(lambda: reference.predict(batch8, imgsz=args.imgsz, device=device, verbose=False)),
                    args.repeats // 5 or 1,
                ),
                8,
            ),
            (
                "yolostack torch backend, batch 8",
                timed(sync(lambda: served.predict(batch8, PredictOptions(imgsz=args.imgsz))), args.repeats // 5 or 1),
                8,
            ),
            (
                "yolostack torch forward only, batch 8",
                timed(
                    sync(
                        lambda: served.forward(
                            np.concatenate(
                                [served.pre_process(image, PredictOptions(imgsz=args.imgsz)).tensor for image in batch8]
                            )
                        )
                    ),
                    args.repeats // 5 or 1,
                ),
                8,
            ),
        ]
        plain = PredictOptions(imgsz=args.imgsz)
        prepared = [served.pre_process(image, plain) for image in batch8]
        tensor = np.concatenate([item.tensor for item in prepared])
        outputs = served.forward(tensor)
        rows += [
            ("  stage: pre_process x8", timed(lambda: [served.pre_process(image, plain) for image in batch8], 5), 8),
            ("  stage: forward (tensor ready)", timed(sync(lambda: served.forward(tensor)), 5), 8),
            ("  stage: post_process", timed(lambda: served.post_process(outputs, prepared, plain), 5), 8),
        ]
        print(f"\n{'path':45} {'ms/call':>10} {'images/s':>10}")
        for label, milliseconds, count in rows:
            print(f"{label:45} {milliseconds:10.2f} {count * 1000 / milliseconds:10.1f}")


if __name__ == "__main__":
    main()
