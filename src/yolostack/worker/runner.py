"""``python -m yolostack.worker.runner``: run one job, described by ``YOLOSTACK_JOB_SPEC``.

The same entrypoint runs under the local executor (a child process of the server) and on a Ray node.
It needs no database or storage access: it talks to the server over HTTP with the job's own key.
Training is the real ``ultralytics`` trainer pointed at this server (``ULTRALYTICS_PLATFORM_URL``), so
its progress arrives through the same telemetry as a user's own run; an export is ``YOLO.export``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from yolostack_engine.processes import ULTRALYTICS_DIRS, private_environment

TIMEOUT = httpx.Timeout(60.0, connect=10.0)
# How long the run's final checkpoint upload keeps being retried while the server does not answer (restarting).
FINAL_UPLOAD_PATIENCE = 300.0


class ServerApi:
    """The few calls a runner makes, with the job key."""

    def __init__(self, base_url: str, api_key: str, job_id: str) -> None:
        self.job_id = job_id
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=TIMEOUT)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.request(method, path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} → HTTP {response.status_code}: {response.text[:500]}")
        data = response.json()
        assert isinstance(data, dict)
        return data

    def event(self, phase: str, **fields: Any) -> dict[str, Any]:
        return self.call("POST", f"/api/jobs/{self.job_id}/events", {"phase": phase, **fields})

    def download(self, url: str, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        with httpx.stream("GET", url, timeout=TIMEOUT) as response:
            response.raise_for_status()
            with target.open("wb") as handle:
                for chunk in response.iter_bytes(1024 * 1024):
                    handle.write(chunk)
        return target


def prepare_ultralytics(work: Path, server_url: str, api_key: str) -> None:
    """Before ultralytics is imported: our server as its Platform, offline, and every file it writes in the
    job dir (its settings, datasets, runs and weights dirs; HOME, TMPDIR and caches)."""
    os.environ.update(private_environment(work))
    os.environ.update({"ULTRALYTICS_PLATFORM_URL": server_url, "ULTRALYTICS_API_KEY": api_key})
    tempfile.tempdir = None  # read TMPDIR again
    font = work / "config" / "Ultralytics" / "Arial.ttf"
    if not font.exists():  # training plots want Arial and would download it; matplotlib ships a stand-in
        import matplotlib

        shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)


def keep_runs_in(work: Path) -> None:
    """Check that ultralytics took its folders from the settings written before its import (it bakes the
    datasets dir into module constants then); set them again for an ultralytics that did not."""
    from ultralytics.utils import SETTINGS

    wanted = {f"{name}_dir": str(work / name) for name in ULTRALYTICS_DIRS}
    if any(SETTINGS.get(key) != value for key, value in wanted.items()):
        SETTINGS.update(**wanted, sync=False)  # type: ignore[no-untyped-call]


def patient_final_upload(patience: float = FINAL_UPLOAD_PATIENCE, sleep: Callable[[float], None] = time.sleep) -> None:
    """ultralytics tries the run's final checkpoint upload for a few seconds only, then warns that the model
    will not be available: a server restarting at that moment (its run goes on, on Ray or after adoption)
    would lose the run's weights. Retry it with backoff until it lands or ``patience`` runs out. The
    periodic uploads (``progress=False``) are left as they are: the next one or the final one follows."""
    from ultralytics.utils.callbacks import platform

    upload: Callable[..., Any] = platform._upload_model

    def until_it_lands(*args: Any, **kwargs: Any) -> Any:
        result = upload(*args, **kwargs)
        if not kwargs.get("progress"):
            return result
        deadline, delay = time.monotonic() + patience, 2.0
        while result is None and time.monotonic() < deadline:
            print(f"final checkpoint upload failed; retrying in {delay:g} s", flush=True)
            sleep(delay)
            delay = min(delay * 2, 30.0)
            result = upload(*args, **kwargs)
        return result

    platform._upload_model = until_it_lands


def run_training(spec: dict[str, Any], api: ServerApi, work: Path) -> None:
    training = spec["training"]
    api.event("preparing")
    from ultralytics.models.yolo.model import YOLO

    keep_runs_in(work)
    # The base may be another account's public checkpoint: load it (and every checkpoint of the run)
    # through the engine's restricted unpickler, as exports and conversion do.
    from yolostack_engine.convert.child import install_restricted_load

    install_restricted_load()
    patient_final_upload()
    args = {key: value for key, value in training["trainArgs"].items() if key not in ("model", "data", "device")}
    device = "0" if spec.get("gpus") else "cpu"
    model = YOLO(training["base"])
    model.train(
        data=training["data"], project=training["project"], name=training["name"], exist_ok=True, device=device, **args
    )


def run_export(spec: dict[str, Any], api: ServerApi, work: Path) -> None:
    export = spec["export"]
    api.event("downloading")
    files = api.call("GET", f"/api/models/{spec['modelId']}/files").get("files") or []
    if not files:
        raise RuntimeError("the model has no weights to export")
    weights = api.download(files[0]["downloadUrl"], work / "input" / files[0]["name"])
    api.event("exporting")
    from ultralytics.models.yolo.model import YOLO

    keep_runs_in(work)
    _prepare_export_toolchain(export["format"], work)
    # A checkpoint is a pickle: every torch.load here goes through the engine's restricted unpickler, so a
    # hostile upload is refused by name instead of running code in the runner (same allowlist as conversion).
    from yolostack_engine.convert.child import install_restricted_load

    install_restricted_load()
    device = "0" if spec.get("gpus") else "cpu"
    produced = Path(str(YOLO(str(weights)).export(format=export["format"], device=device, **export.get("args", {}))))
    artifact = _single_file(produced)
    api.event("uploading")
    size = artifact.stat().st_size
    staged = api.call("POST", f"/api/jobs/{api.job_id}/artifact", {"filename": artifact.name, "size": size})
    with artifact.open("rb") as handle:
        response = httpx.put(
            staged["uploadUrl"],
            content=handle,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            timeout=httpx.Timeout(600.0, connect=10.0),
        )
    if response.status_code >= 300:
        raise RuntimeError(f"artifact upload failed: HTTP {response.status_code} {response.text[:300]}")
    api.event("completed", sessionId=staged["sessionId"])


def _prepare_export_toolchain(name: str, work: Path) -> None:
    """Refuse at once, in words, what this node cannot export; keep the exporters offline and out of pip."""
    from yolostack_engine.export_formats import canonical, missing, unavailable_message

    fmt = canonical(name)
    if fmt is None:
        raise RuntimeError(f"unknown export format '{name}'")
    gpus = 0
    if fmt.gpu:
        import torch

        gpus = torch.cuda.device_count()
    lacking = missing(fmt, gpus=gpus)
    if lacking:
        raise RuntimeError(unavailable_message(fmt, lacking))
    if fmt.name in ("saved_model", "pb", "edgetpu"):
        # onnx2tf downloads this calibration sample from GitHub unless it is in the working directory.
        import numpy as np

        sample = work / "calibration_image_sample_data_20x128x128x3_float32.npy"
        if not sample.exists():
            np.save(sample, np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
    if fmt.name == "mnn":
        # MNN's converter imports this logger, which runs `pip install` and phones home; without it, it logs nothing.
        import types

        sys.modules.setdefault("MNN.tools.utils.log", types.ModuleType("MNN.tools.utils.log"))


def _single_file(produced: Path) -> Path:
    """Directory outputs (OpenVINO, NCNN, …) travel as one zip named after the directory."""
    if produced.is_file():
        return produced
    archive = produced.with_name(produced.name + ".zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(produced.rglob("*")):
            if path.is_file():
                bundle.write(path, Path(produced.name) / path.relative_to(produced))
    return archive


def main() -> int:
    spec = json.loads(os.environ["YOLOSTACK_JOB_SPEC"])
    work = Path(spec.get("workDir") or os.getcwd()).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    prepare_ultralytics(work, spec["serverUrl"], spec["apiKey"])
    api = ServerApi(spec["serverUrl"], spec["apiKey"], spec["jobId"])
    try:
        if spec["kind"] == "training":
            run_training(spec, api, work)
        else:
            run_export(spec, api, work)
    except BaseException as error:
        message = f"{type(error).__name__}: {error}".strip()
        print(f"RUNNER FAILED: {message}", flush=True)
        try:
            api.event("failed", error=message[:2000])
        except Exception as report_error:
            print(f"could not report the failure: {report_error}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
