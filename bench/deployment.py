"""A dedicated deployment against the shared predict route and the raw runtime, in one run; and cold start.

    .venv/bin/python bench/deployment.py [--duration 10] [--rounds 3] [--concurrency 1 8 32] [--cold-starts 3]
    .venv/bin/python bench/deployment.py --quick      # smoke run: 1 round of 2 s, 1 cold start

yolo11n (built from ``yolo11n.yaml``) at imgsz 640 on ultralytics' ``bus.jpg``, one ``yolostack serve``
(local deployment backend, rate limits raised out of the way):
- dedicated: a deployment with minInstances = maxInstances = 2, cpu 1 each, driven through its
  ``serviceUrl`` (``POST /d/{id}``, ``x-api-key``): the API process relays the bytes to its replicas;
- shared: ``POST /api/models/{id}/predict`` on the same server (the model runs in the API process);
- raw: the best of ONNX Runtime and OpenVINO f32 at batch 1 on the same ``model.onnx``, no HTTP, as
  ``bench/predict.py`` measures them (the baseline);
- cold start: a second deployment with minInstances 0, maxInstances 1; once it has scaled to zero, one
  request is timed to the first byte of its answer (and one warm request after it), with the replica's
  own "ready in X s" line from the deployment's logs.
Every throughput measurement runs once per round, the rounds in rotated order; the table shows medians
over the rounds. Prints ratios dedicated / shared, dedicated / raw and shared / raw; no pass/fail threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.server import LiveServer, start_server

from bench.predict import (
    STARTUP_TIMEOUT,
    RawOnnxRuntime,
    RawOpenVINO,
    Sample,
    Target,
    build_checkpoint,
    bus_image,
    cpu_model,
    download_onnx,
    drive,
    load_average,
    median,
    ours_env,
    ultralytics_tensor,
    upload_model,
)
from yolostack_engine.media import decode_image
from yolostack_engine.threads import available_cores

# Idle deployments scale down (and to zero) within seconds here, not minutes.
DEPLOYMENT_ENV = {
    "YOLOSTACK_DEPLOYMENTS__SCALE_TO_ZERO_DELAY_SECONDS": "2",
    "YOLOSTACK_DEPLOYMENTS__DOWNSCALE_DELAY_SECONDS": "2",
}
FIELDS = {"imgsz": "640", "conf": "0.25"}
READY_TIMEOUT = 300.0
SCALE_TIMEOUT = 120.0
QUIET_CPU = 0.1  # cores: the server's process tree counts as settled below this
QUIET_TIMEOUT = 30.0
RAW = {"raw onnxruntime": "onnxruntime f32, every core intra-op", "raw openvino": "openvino f32, THROUGHPUT"}
ROUTES = {
    "dedicated": "dedicated (serviceUrl, 2 replicas x 1 cpu)",
    "shared": "shared (POST /api/models/{id}/predict)",
}


@dataclass
class Deployment:
    path: str  # /api/deployments/{owner}/{slug}
    url: str  # its serviceUrl
    id: str


@dataclass
class ColdStart:
    first_byte_s: float
    answer_s: float
    warm_s: float
    status: int
    ready_line: str


@dataclass
class Run:
    rounds: int
    duration: float
    concurrency: list[int]
    cores: int
    load_before: str
    results: dict[str, list[Sample]] = field(default_factory=dict)
    tree_cpu: dict[str, list[float]] = field(default_factory=dict)  # label -> CPU ms per image, server + replicas
    cold: list[ColdStart] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (the replicas and the spare)."""
    total = 0.0
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def settle(pid: int) -> None:
    """Until the server's process tree is nearly idle (a spare interpreter done importing), at most 30 s."""
    deadline = time.monotonic() + QUIET_TIMEOUT
    while time.monotonic() < deadline:
        before = tree_cpu_seconds(pid)
        time.sleep(1.0)
        if tree_cpu_seconds(pid) - before < QUIET_CPU:
            return


# --- deployments ------------------------------------------------------------------------------------


def wait_for(http: httpx.Client, path: str, done: Callable[[dict[str, Any]], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        view = http.get(path).raise_for_status().json()["deployment"]
        if view["status"] == "failed":
            raise SystemExit(f"{path} failed: {view.get('statusMessage')}")
        if done(view):
            return
        time.sleep(0.2)
    raise SystemExit(f"{path} was not {what} after {timeout:.0f} s: {view}")


def create_deployment(http: httpx.Client, model: dict[str, Any], slug: str, **resources: int) -> Deployment:
    """POST /api/deployments/{owner}, then wait until it is ready with its minInstances replicas up."""
    body = {"project": model["project"], "model": model["model"], "deployment": slug, "name": slug, **resources}
    created = http.post(f"/api/deployments/{model['owner']}", json={**body, "region": "us-central1"})
    created.raise_for_status()
    path = f"/api/deployments/{model['owner']}/{slug}"
    replicas = max(1, resources["minInstances"])
    wait_for(
        http, path, lambda view: view["status"] == "ready" and view["instances"] == replicas, "ready", READY_TIMEOUT
    )
    view = http.get(path).json()["deployment"]
    return Deployment(path, view["serviceUrl"], view["id"])


def ready_lines(http: httpx.Client, deployment: Deployment) -> list[str]:
    entries = http.get(f"{deployment.path}/logs", params={"limit": 1000}).raise_for_status().json()["entries"]
    return [entry["message"] for entry in entries if " ready in " in entry["message"]]  # newest first


def timed_request(url: str, key: str, image: bytes) -> tuple[float, float, int]:
    """Seconds to the first byte of the answer (status line and headers) and to its end, on a new connection."""
    files = {"file": ("bus.jpg", image, "image/jpeg")}
    with httpx.Client(headers={"x-api-key": key}, timeout=600) as http:
        started = time.perf_counter()
        with http.stream("POST", url, data=FIELDS, files=files) as response:
            first_byte = time.perf_counter() - started
            response.read()
        return first_byte, time.perf_counter() - started, response.status_code


def cold_start(http: httpx.Client, deployment: Deployment, key: str, image: bytes, pid: int) -> ColdStart:
    """Wait until the deployment has no replica (and the spare interpreter is ready), then one request."""
    wait_for(http, deployment.path, lambda view: view["instances"] == 0, "scaled to zero", SCALE_TIMEOUT)
    settle(pid)
    seen = len(ready_lines(http, deployment))
    first_byte, answer, status = timed_request(deployment.url, key, image)
    warm = timed_request(deployment.url, key, image)[1]
    lines = ready_lines(http, deployment)
    line = lines[0] if len(lines) > seen else "(no new 'ready in' line in the deployment's logs)"
    return ColdStart(first_byte, answer, warm, status, line)


# --- the run ----------------------------------------------------------------------------------------


def http_measure(
    run: Run, label: str, target: Target, image: bytes, concurrency: int, duration: float
) -> Callable[[], Sample]:
    def measure() -> Sample:
        before = tree_cpu_seconds(target.pid)
        try:
            sample = asyncio.run(drive(target, image, concurrency, duration, 3))[0]
        except RuntimeError as error:  # drive gives up after 20 failed requests
            return Sample(float("nan"), [], errors=[str(error)])
        answers = len(sample.latencies_ms) + concurrency  # drive leaves out each client's first answer
        run.tree_cpu[label].append((tree_cpu_seconds(target.pid) - before) * 1000 / answers)
        return sample

    return measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, medians reported (default 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--cold-starts", type=int, default=3, help="timed cold starts (default 3)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run: 1 round of 2 s, 1 cold start")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds, args.cold_starts = min(args.duration, 2.0), 1, 1
    with tempfile.TemporaryDirectory(prefix="yolostack-bench-") as folder:
        work = Path(folder)
        server = start_server({**ours_env(work / "data", work, "f32"), **DEPLOYMENT_ENV}, timeout=STARTUP_TIMEOUT)
        try:
            run = bench(args, work, server)
        finally:
            server.stop()
    report(run)


def bench(args: argparse.Namespace, work: Path, server: LiveServer) -> Run:
    image = bus_image().read_bytes()
    tensor = ultralytics_tensor(decode_image(image))
    run = Run(args.rounds, args.duration, args.concurrency, available_cores(), load_average())
    key = server.key
    if key is None:
        raise SystemExit(f"the server printed no API key:\n{server.output}")
    model_id = upload_model(server, key, build_checkpoint(work))
    onnx = download_onnx(server, key, model_id, work / "served" / "model.onnx")
    bearer = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.base_url, headers=bearer, timeout=600) as http:
        model = http.get(f"/api/models/{model_id}").raise_for_status().json()["data"]
        dedicated = create_deployment(http, model, "dedicated", cpu=1, minInstances=2, maxInstances=2)
        cold = create_deployment(http, model, "cold", cpu=1, minInstances=0, maxInstances=1)
        print(f"model {model_id}; deployments ready: dedicated {dedicated.url}, cold {cold.url}", flush=True)
        pid = server.process.pid
        targets = {
            "dedicated": Target(dedicated.url, pid, {"x-api-key": key}, ours=True, fields=FIELDS),
            "shared": Target(f"{server.base_url}/api/models/{model_id}/predict", pid, bearer, ours=True, fields=FIELDS),
        }
        for target in targets.values():  # load the shared model, warm the runtimes and the connections
            asyncio.run(drive(target, image, 4, 0.0, 2))
        raw_ort, raw_openvino = RawOnnxRuntime(onnx, run.cores), RawOpenVINO(onnx, "f32")
        measurements: list[tuple[str, Callable[[], Sample]]] = [
            ("raw onnxruntime", lambda: raw_ort.measure(tensor, args.duration, 3)),
            ("raw openvino", lambda: raw_openvino.measure(tensor, args.duration, 3)),
        ]
        for concurrency in args.concurrency:
            for name, target in targets.items():
                label = f"{name} c={concurrency}"
                measurements.append((label, http_measure(run, label, target, image, concurrency, args.duration)))
        run.results = {label: [] for label, _ in measurements}
        run.tree_cpu = {label: [] for label, _ in measurements}
        for round_index in range(args.rounds):
            shift = (round_index * len(measurements)) // args.rounds
            print(f"round {round_index + 1}/{args.rounds} (load average {load_average()})", flush=True)
            for label, measure in measurements[shift:] + measurements[:shift]:
                sample = measure()
                run.results[label].append(sample)
                failed = f"  {len(sample.errors)} failed, e.g. {sample.errors[0]}" if sample.errors else ""
                print(f"  {label:<16} {sample.images_per_s:7.2f}/s  p50 {sample.p50:8.1f} ms{failed}", flush=True)
        for index in range(args.cold_starts):
            run.cold.append(cold_start(http, cold, key, image, pid))
            print(f"cold start {index + 1}/{args.cold_starts}: {run.cold[-1].first_byte_s:.2f} s", flush=True)
        run.problems = problems(http, [dedicated, cold], server, work / "data")
    return run


def problems(http: httpx.Client, deployments: list[Deployment], server: LiveServer, data_dir: Path) -> list[str]:
    """What went wrong on the way: the deployments' WARNING/ERROR log lines, metrics, server tracebacks."""
    found: list[str] = []
    for deployment in deployments:
        logs = http.get(f"{deployment.path}/logs", params={"severity": "WARNING,ERROR", "limit": 1000})
        for entry in logs.raise_for_status().json()["entries"]:
            found.append(f"{deployment.path}: {entry['severity']} {entry['message'][:300]}")
        summary = http.get(f"{deployment.path}/metrics", params={"range": "1h"}).raise_for_status().json()["summary"]
        found.append(
            f"{deployment.path} metrics (1h): {summary['totalRequests']} requests, {summary['errorCount']} errors, "
            f"p50 {summary['p50LatencyMs']} ms, p95 {summary['p95LatencyMs']} ms (info)"
        )
    tracebacks = server.output.count("Traceback")
    replica_log = data_dir / "deployments" / "replicas.log"
    if replica_log.exists():
        tracebacks += replica_log.read_text(errors="replace").count("Traceback")
    if tracebacks:
        found.append(f"{tracebacks} traceback(s) in the server's output and replicas.log")
    return found


def report(run: Run) -> None:
    def summary(label: str) -> tuple[float, float, float]:
        samples = run.results[label]
        return (
            median([s.images_per_s for s in samples]),
            median([s.p50 for s in samples]),
            median([s.p95 for s in samples]),
        )

    def cpu(label: str) -> str:
        samples = run.results[label]
        server = median([s.cpu_ms_per_image for s in samples if s.cpu_ms_per_image is not None])
        tree = median(run.tree_cpu[label]) if run.tree_cpu[label] else server
        return f"{tree:6.1f} [{server:5.1f}]"

    print()
    print(
        f"machine: {run.cores} cores ({os.cpu_count()} online, {cpu_model()}); "
        f"load average {run.load_before} at start, {load_average()} at end"
    )
    print(f"{run.rounds} interleaved round(s), {run.duration:g} s per measurement; medians over the rounds")
    print("CPU ms/img: raw = this process; HTTP = the server's process tree (API process + replicas) [API process]")
    print(f"{'':<52} {'images/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'CPU ms/img':>14}  images/s per round")
    for label, text in RAW.items():
        ips, p50, p95 = summary(label)
        print(f"  {text:<50} {ips:9.2f} {p50:8.1f} {p95:8.1f} {cpu(label):>14}  {per_round(run, label)}")
    baseline_label = max(RAW, key=lambda label: summary(label)[0])
    baseline = summary(baseline_label)[0]
    print(f"  baseline (raw): the best line at batch 1, {RAW[baseline_label]}")
    for concurrency in run.concurrency:
        for name, text in ROUTES.items():
            label = f"{name} c={concurrency}"
            ips, p50, p95 = summary(label)
            failed = sum(len(s.errors) for s in run.results[label])
            print(
                f"  {f'{text}, c={concurrency}':<50} {ips:9.2f} {p50:8.1f} {p95:8.1f} {cpu(label):>14}  "
                f"{per_round(run, label)}" + (f"  ({failed} requests failed)" if failed else "")
            )
    print()
    print("ratios of medians, images/s (p50 latency dedicated/shared)")
    for concurrency in run.concurrency:
        dedicated, d50, _ = summary(f"dedicated c={concurrency}")
        shared, s50, _ = summary(f"shared c={concurrency}")
        print(
            f"  concurrency {concurrency:>2}: dedicated/shared {dedicated / shared:5.2f}x   "
            f"dedicated/raw {dedicated / baseline:5.2f}x   shared/raw {shared / baseline:5.2f}x   "
            f"(p50 {d50 / s50:4.2f}x)"
        )
    print()
    print("where the time goes (medians, ms): wall p50 at the client against the route's own call time")
    print("(metadata.functionTimeCall: measured in the replica for dedicated, in the API process for shared)")
    for concurrency in run.concurrency:
        for name in ROUTES:
            label = f"{name} c={concurrency}"
            call = median([s.server_ms.get("call", float("nan")) for s in run.results[label]])
            print(f"  {name:<10} c={concurrency:<3} wall {summary(label)[1]:8.1f}   call {call:8.1f}")
    report_cold(run)


def per_round(run: Run, label: str) -> str:
    return " ".join(f"{s.images_per_s:.2f}" for s in run.results[label])


def report_cold(run: Run) -> None:
    print()
    print("cold start: minInstances 0, maxInstances 1, scaled to zero; one request on a new connection")
    for index, cold in enumerate(run.cold, 1):
        print(
            f"  #{index}: first byte {cold.first_byte_s:6.2f} s, answer {cold.answer_s:6.2f} s (HTTP {cold.status}); "
            f"a warm request right after {cold.warm_s * 1000:6.1f} ms; replica log: {cold.ready_line}"
        )
    if run.cold:
        print(f"  median first byte {statistics.median(c.first_byte_s for c in run.cold):.2f} s")
    print()
    print("problems seen (deployment logs at WARNING and above, server tracebacks); metrics for reference")
    for line in run.problems or ["none"]:
        print(f"  {line}")


if __name__ == "__main__":
    main()
