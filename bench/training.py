"""One tiny training run through yolostack vs the same run as a bare ``yolo train``, in one process tree.

    .venv/bin/python bench/training.py [--images 128] [--size 128] [--epochs 8] [--batch 8]

- baseline: ``yolo train`` on the local dataset folder (yolo11n.yaml, CPU, workers=0, plots=False);
- yolostack: a live ``yolostack serve`` (SQLite + local disk) with the same dataset uploaded and
  ingested beforehand; timed from ``POST /api/training/start`` until the job reads ``completed``
  (dispatch, runner start, ``ul://`` dataset download and conversion, the trainer's telemetry, and the
  final weights upload included).
Prints both wall times and their ratio (target ≤ 1.05×); no pass/fail threshold.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.server import start_server
from tests.fixtures.synthetic import make_yolo
from tests.jobs.helpers import api, create_model, ok, upload_dataset, wait_training

BIN = Path(sys.executable).parent


def clean_env(config: Path) -> dict[str, str]:
    (config / "Ultralytics").mkdir(parents=True, exist_ok=True)
    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    shutil.copy(font, config / "Ultralytics" / "Arial.ttf")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ULTRALYTICS_", "YOLO", "PYTEST"))}
    return {**env, "YOLO_CONFIG_DIR": str(config), "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "False"}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bare(work: Path, args: argparse.Namespace) -> float:
    root = make_yolo(work / "local", images=args.images, size=args.size)
    data = root / "data.yaml"
    data.write_text(data.read_text().replace("path: .", f"path: {root}"))
    command = [
        str(BIN / "yolo"), "train", "model=yolo11n.yaml", f"data={data}", f"epochs={args.epochs}",
        f"imgsz={args.size}", f"batch={args.batch}", "workers=0", "plots=False", "device=cpu",
        f"project={work / 'runs'}", "name=bare",
    ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, env=clean_env(work / "config"), cwd=work, check=True, capture_output=True)
    return time.perf_counter() - started


def through_yolostack(work: Path, args: argparse.Namespace) -> float:
    server = start_server({"YOLOSTACK_DATA_DIR": str(work / "data"), "YOLOSTACK_JOBS__DISPATCH_INTERVAL_SECONDS": "1"})
    try:
        assert server.key is not None
        http = api(server.base_url, server.key)
        upload_dataset(http, work, "bench", images=args.images, size=args.size)
        model = create_model(http, "bench", "run")
        train_args = {
            "model": "yolo11n.yaml", "data": "ul://admin/datasets/bench", "epochs": args.epochs,
            "imgsz": args.size, "batch": args.batch, "workers": 0, "plots": False,
        }  # fmt: skip
        started = time.perf_counter()
        ok(http.post("/api/training/start", json={"modelId": model["id"], "trainArgs": train_args}))
        job = wait_training(http, "admin", "bench", "run", timeout=3600)
        elapsed = time.perf_counter() - started
        assert job["status"] == "completed", job
        return elapsed
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-training-") as temporary:
        work = Path(temporary)
        cpu = children_cpu()
        baseline = bare(work / "bare", args)
        baseline_cpu, cpu = children_cpu() - cpu, children_cpu()
        ours = through_yolostack(work / "ours", args)
        ours_cpu = children_cpu() - cpu
    print(f"yolo11n.yaml, {args.images} images at {args.size} px, {args.epochs} epochs, batch {args.batch}, CPU")
    print(f"bare yolo train        {baseline:7.1f} s wall  {baseline_cpu:7.1f} s CPU")
    print(f"through yolostack      {ours:7.1f} s wall  (server + runner CPU {ours_cpu:7.1f} s incl. ingest)")
    print(f"ratio (wall)           {ours / baseline:7.3f}x   target <= 1.05x")


if __name__ == "__main__":
    main()
