"""Predict throughput of a real ``yolostack serve``, against the raw runtimes and a naive server, in one run.

    .venv/bin/python bench/predict.py [--duration 8] [--rounds 3] [--bf16] [--quick]

yolo11n (built from ``yolo11n.yaml``, or ``--weights``) at imgsz 640 on ultralytics' ``bus.jpg``:
- raw backends, no HTTP: ONNX Runtime ``InferenceSession.run`` and OpenVINO compiled-model calls on the
  1x3x640x480 tensor ultralytics' rect letterbox makes of bus.jpg, using the ``model.onnx`` our server
  converted (downloaded through ``GET /api/models/{id}/files``); OpenVINO with the THROUGHPUT hint and
  its optimal number of requests in flight (AsyncInferQueue), at f32 and at its default precision;
- ours: ``yolostack serve`` (default backend, f32; ``--bf16`` adds a second server at bf16) driven with
  multipart ``POST /api/models/{id}/predict`` by an ``httpx.AsyncClient`` at concurrency 1, 4 and 16;
- naive: ``bench/naive_server.py`` (FastAPI + ``YOLO(...).predict`` in the handler) under uvicorn,
  driven the same way.
Every measurement runs once per round, the rounds in rotated order, and the table shows medians over
the rounds: the machine may be shared, and interleaving spreads the noise over every line alike.
Prints images/s, p50/p95 latency, CPU ms per image of the process that ran the model, and the ratios
ours / best raw backend at our precision and ours / naive; no pass/fail threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.server import LiveServer, free_port, start_server

from yolostack_engine import PredictOptions, load_model
from yolostack_engine.media import decode_image
from yolostack_engine.threads import available_cores, tune_threads

BUILD = "from ultralytics import YOLO; YOLO('yolo11n.yaml').save({path!r})"
NAIVE_APP = Path(__file__).resolve().parent / "naive_server.py"
UNLIMITED = "10000000"
PLANS = ("FREE", "PRO", "ENTERPRISE")
STARTUP_TIMEOUT = 300.0
CONVERSION_TIMEOUT = 900.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    """One measurement: throughput, latencies, and the CPU the model's process spent per image."""

    images_per_s: float
    latencies_ms: list[float]
    cpu_ms_per_image: float | None = None
    client_cpu_ms_per_image: float | None = None
    # ours only: medians of the response's metadata.functionTimeCall and images[0].speed
    server_ms: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # answers with an unexpected status (not counted above)

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p95(self) -> float:
        return percentile(self.latencies_ms, 95)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def median(values: list[float]) -> float:
    present = [value for value in values if value == value]  # drop NaN
    return statistics.median(present) if present else float("nan")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# --- the model and the input ------------------------------------------------------------------------


def build_checkpoint(work: Path) -> Path:
    """An untrained yolo11n saved as a .pt (no download): the network's cost does not depend on its weights."""
    path = work / "yolo11n.pt"
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(work / "yolo-config")}
    subprocess.run(
        [sys.executable, "-c", BUILD.format(path=str(path))], env=env, cwd=work, check=True, capture_output=True
    )
    return path


def bus_image() -> Path:
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets" / "bus.jpg"


def ultralytics_tensor(image: np.ndarray) -> np.ndarray:
    """Bus.jpg as ultralytics' predictor feeds a dynamic-shape model: rect letterbox, RGB, CHW, 0-1 float32."""
    from ultralytics.data.augment import LetterBox

    padded = np.asarray(LetterBox((640, 640), auto=True, stride=32)(image=image))
    chw = padded[..., ::-1].transpose(2, 0, 1)
    return np.ascontiguousarray(chw[None], dtype=np.float32) / np.float32(255)


# --- raw backends -----------------------------------------------------------------------------------


class RawOnnxRuntime:
    """One InferenceSession with every core as intra-op threads, one run at a time (its best on CPU)."""

    def __init__(self, onnx: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self.threads = threads
        self.session = ort.InferenceSession(str(onnx), sess_options=options, providers=["CPUExecutionProvider"])
        self.feed_name = self.session.get_inputs()[0].name

    def measure(self, tensor: np.ndarray, duration: float, minimum: int) -> Sample:
        self.session.run(None, {self.feed_name: tensor})
        latencies: list[float] = []
        cpu = time.process_time()
        started = time.perf_counter()
        while len(latencies) < minimum or time.perf_counter() - started < duration:
            begin = time.perf_counter()
            self.session.run(None, {self.feed_name: tensor})
            latencies.append((time.perf_counter() - begin) * 1000)
        elapsed = time.perf_counter() - started
        cpu_ms = (time.process_time() - cpu) * 1000 / len(latencies)
        return Sample(len(latencies) / elapsed, latencies, cpu_ms_per_image=cpu_ms)


class RawOpenVINO:
    """A compiled model with the THROUGHPUT hint, ``in_flight`` requests kept busy by an AsyncInferQueue."""

    def __init__(self, onnx: Path, precision: str | None, in_flight: int | None = None) -> None:
        import openvino as ov

        config: dict[str, Any] = {"PERFORMANCE_HINT": "THROUGHPUT"}
        if precision is not None:
            config["INFERENCE_PRECISION_HINT"] = precision
        self.compiled: Any = ov.Core().compile_model(str(onnx), "CPU", config)
        self.optimal = max(1, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.in_flight = in_flight or self.optimal
        self.streams = int(self.compiled.get_property("NUM_STREAMS"))
        self.threads = int(self.compiled.get_property("INFERENCE_NUM_THREADS"))
        self.resolved_precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())
        self.queue: Any = ov.AsyncInferQueue(self.compiled, self.in_flight)
        self.latencies: list[float] = []
        self.queue.set_callback(self._done)

    def _done(self, request: Any, begin: float) -> None:
        self.latencies.append((time.perf_counter() - begin) * 1000)

    def measure(self, tensor: np.ndarray, duration: float, minimum: int, images: int = 1) -> Sample:
        """Images/s (``images`` per call), latency per call, CPU per image."""
        for _ in range(self.in_flight):
            self.queue.start_async({0: tensor}, time.perf_counter())
        self.queue.wait_all()
        self.latencies = []
        submitted = 0
        cpu = time.process_time()
        started = time.perf_counter()
        while submitted < minimum or time.perf_counter() - started < duration:
            self.queue.start_async({0: tensor}, time.perf_counter())  # blocks until a request is free
            submitted += 1
        self.queue.wait_all()
        elapsed = time.perf_counter() - started
        cpu_ms = (time.process_time() - cpu) * 1000 / (submitted * images)
        return Sample(submitted * images / elapsed, list(self.latencies), cpu_ms_per_image=cpu_ms)


# --- servers ----------------------------------------------------------------------------------------


def ours_env(data_dir: Path, work: Path, precision: str) -> dict[str, str]:
    env = {
        "YOLOSTACK_DATA_DIR": str(data_dir),
        "YOLOSTACK_INFERENCE__PRECISION": precision,
        "YOLO_CONFIG_DIR": str(work / "yolo-config"),
    }
    for plan in PLANS:  # the admin is enterprise; raise every plan so the limiter never answers 429 here
        env[f"YOLOSTACK_RATE_LIMITS__{plan}__PER_MINUTE"] = UNLIMITED
        env[f"YOLOSTACK_RATE_LIMITS__{plan}__PER_DAY"] = UNLIMITED
    return env


def upload_model(server: LiveServer, key: str, checkpoint: Path) -> str:
    """Create a project, upload the .pt (multipart), wait until its conversion is ready; returns the model id."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=600) as http:
        project = http.post("/api/projects", json={"name": "bench"})
        project.raise_for_status()
        form = {"projectId": project.json()["id"], "name": "yolo11n"}
        files = {"file": (checkpoint.name, checkpoint.read_bytes(), "application/octet-stream")}
        created = http.post("/api/models", data=form, files=files)
        created.raise_for_status()
        model_id: str = created.json()["id"]
        deadline = time.monotonic() + CONVERSION_TIMEOUT
        while time.monotonic() < deadline:
            serving = http.get(f"/api/models/{model_id}").json()["data"]["serving"]
            if serving["status"] == "ready":
                return model_id
            if serving["status"] == "failed":
                raise SystemExit(f"conversion failed: {serving.get('error')}")
            time.sleep(0.5)
    raise SystemExit(f"the model was not ready for serving after {CONVERSION_TIMEOUT:.0f} s")


def download_onnx(server: LiveServer, key: str, model_id: str, target: Path) -> Path:
    """The model.onnx the server serves, through its files listing and signed link."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=600) as http:
        files = http.get(f"/api/models/{model_id}/files").json()["files"]
        url = next(item["downloadUrl"] for item in files if item["name"] == "model.onnx")
        response = httpx.get(url, timeout=600)
        response.raise_for_status()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(response.content)
    return target


@dataclass
class NaiveServer:
    process: subprocess.Popen[bytes]
    base_url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_naive(checkpoint: Path, work: Path) -> NaiveServer:
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith(("YOLOSTACK_", "YOLO_"))}
    env.update({"BENCH_NAIVE_MODEL": str(checkpoint), "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(work / "naive")})
    command = [sys.executable, "-m", "uvicorn", "naive_server:app", "--app-dir", str(NAIVE_APP.parent)]
    with (work / "naive.log").open("wb") as log:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    server = NaiveServer(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.1)
    server.stop()
    raise SystemExit(f"the naive server did not start:\n{(work / 'naive.log').read_text()[-3000:]}")


@dataclass
class Target:
    """An HTTP predict endpoint to drive, with the status every answer must have."""

    url: str
    pid: int
    headers: dict[str, str]
    ours: bool
    fields: dict[str, str] = field(default_factory=dict)
    expect: int = 200


@dataclass
class Answer:
    client: int
    sent: float
    answered: float
    body: dict[str, Any]


async def drive(target: Target, image: bytes, concurrency: int, duration: float, minimum: int) -> tuple[Sample, str]:
    """``concurrency`` clients, each posting bus.jpg back to back for ``duration`` s (and ``minimum`` times).

    Throughput counts the answers after every client has had its first one, over the time from then to
    the last answer. Latencies and the server's own timings leave out each client's first request.
    """
    answers: list[Answer] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=target.headers, timeout=600, limits=limits) as http:
        deadline = time.perf_counter() + duration

        async def client(index: int) -> None:
            done = 0
            while done < minimum or time.perf_counter() < deadline:
                sent = time.perf_counter()
                files = {"file": ("bus.jpg", image, "image/jpeg")}
                response = await http.post(target.url, data=target.fields, files=files)
                answered = time.perf_counter()
                if response.status_code != target.expect:
                    errors.append(f"{response.status_code}: {response.text[:300]}")
                    if len(errors) > 20:
                        raise RuntimeError(f"{target.url} keeps failing: {errors[-1]}")
                    continue
                answers.append(Answer(index, sent, answered, response.json()))
                done += 1

        server_cpu = process_cpu_seconds(target.pid)
        client_cpu = time.process_time()
        await asyncio.gather(*(client(index) for index in range(concurrency)))
        server_cpu = process_cpu_seconds(target.pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
    first_each = {index: min(a.answered for a in answers if a.client == index) for index in range(concurrency)}
    steady = [a for a in answers if a.answered > first_each[a.client]]
    window_start = max(first_each.values())
    window_end = max(a.answered for a in answers)
    counted = sum(1 for a in answers if a.answered > window_start)
    if counted and window_end > window_start:
        rate = counted / (window_end - window_start)
    else:
        rate = len(answers) / (window_end - min(a.sent for a in answers))
    sample = Sample(
        rate,
        [(a.answered - a.sent) * 1000 for a in steady],
        cpu_ms_per_image=server_cpu * 1000 / len(answers),
        client_cpu_ms_per_image=client_cpu * 1000 / len(answers),
        errors=errors,
    )
    backend = ""
    if target.ours and target.expect == 200:
        bodies = [a.body for a in steady] or [a.body for a in answers]
        sample.server_ms = {"call": median([float(b["metadata"]["functionTimeCall"]) for b in bodies])}
        for stage in ("preprocess", "inference", "postprocess"):
            sample.server_ms[stage] = median([float(b["images"][0]["speed"][stage]) for b in bodies])
        backend = str(bodies[-1]["metadata"]["version"]["backend"])
    return sample, backend


def http_run(
    target: Target, image: bytes, concurrency: int, duration: float, minimum: int
) -> Callable[[], tuple[Sample, str]]:
    return lambda: asyncio.run(drive(target, image, concurrency, duration, minimum))


# --- in-process stage costs -------------------------------------------------------------------------


def stage_costs(served: Any, data: bytes, repeats: int) -> dict[str, float]:
    """Median CPU ms of each step of one request's work, run alone and in sequence in this process.

    CPU time, not wall time, so that other work on a shared machine does not inflate it: the calling
    thread's for the single-threaded steps, the whole process's for forward (the runtime's threads).
    """
    options = PredictOptions()
    names = ("decode", "letterbox", "forward", "postprocess", "json")
    timings: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        begin = time.thread_time()
        image = decode_image(data)
        decoded = time.thread_time()
        prepared = served.pre_process(image, options)
        letterboxed = time.thread_time()
        process = time.process_time()
        outputs = served.forward(prepared.tensor)
        forward = time.process_time() - process
        begin_post = time.thread_time()
        prediction = served.post_process(outputs, [prepared], options)[0]
        post = time.thread_time()
        json.dumps({"images": [{"results": prediction.summary()}]})
        end = time.thread_time()
        spent = (decoded - begin, letterboxed - decoded, forward, post - begin_post, end - post)
        for name, seconds in zip(names, spent, strict=True):
            timings[name].append(seconds * 1000)
    return {name: median(values) for name, values in timings.items()}


def idle_cpu(pid: int, seconds: float) -> float:
    """CPU ms per second a server spends with no request (background tasks, threads that poll or spin)."""
    time.sleep(0.5)  # let the runtime's threads settle after the last measurement
    before = process_cpu_seconds(pid)
    time.sleep(seconds)
    return (process_cpu_seconds(pid) - before) * 1000 / seconds


# --- the run ----------------------------------------------------------------------------------------


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


@dataclass
class Run:
    """Everything the report needs."""

    rounds: int
    duration: float
    concurrency: list[int]
    precisions: list[str]
    cores: int
    load_before: str
    raw_labels: dict[str, str]
    engine: str  # how ours' engine runs the model (streams, threads, requests in flight)
    backends: dict[str, str] = field(default_factory=dict)
    results: dict[str, list[Sample]] = field(default_factory=dict)
    stages: list[dict[str, float]] = field(default_factory=list)
    idle: dict[str, list[float]] = field(default_factory=dict)  # server -> CPU ms per second with no requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measurement (default 15)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, medians reported (default 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--bf16", action="store_true", help="also serve at YOLOSTACK_INFERENCE__PRECISION=bf16")
    parser.add_argument("--weights", type=Path, help="a yolo11n .pt to use instead of an untrained one")
    parser.add_argument("--quick", action="store_true", help="a short smoke run: 1 round of 2 s")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds = min(args.duration, 2.0), 1
    servers: list[LiveServer | NaiveServer] = []
    with tempfile.TemporaryDirectory(prefix="yolostack-bench-") as folder:
        try:
            run = bench(args, Path(folder), servers)
        finally:
            for server in servers:
                server.stop()
    report(run)


def bench(args: argparse.Namespace, work: Path, servers: list[LiveServer | NaiveServer]) -> Run:
    minimum = 2 if args.quick else 3  # requests per client at least, so every client has steady answers
    image_bytes = bus_image().read_bytes()
    tensor = ultralytics_tensor(decode_image(image_bytes))
    batch8 = np.ascontiguousarray(np.repeat(tensor, 8, axis=0))  # what ours' batcher forms at concurrency >= 8
    cores = available_cores()
    load_before = load_average()
    checkpoint = args.weights.resolve() if args.weights else build_checkpoint(work)
    print(f"checkpoint {checkpoint.name}; bus.jpg tensor {tuple(tensor.shape)}", flush=True)
    data_dir = work / "data"
    first = start_server(ours_env(data_dir, work, "f32"), timeout=STARTUP_TIMEOUT)
    servers.append(first)
    key = first.key
    if key is None:
        raise SystemExit(f"the server printed no API key:\n{first.output}")
    model_id = upload_model(first, key, checkpoint)
    onnx = download_onnx(first, key, model_id, work / "served" / "model.onnx")
    # meta.json beside it (from the server's store) for the in-process stage timings' load_model
    shutil.copy(next(data_dir.rglob("meta.json")), onnx.parent / "meta.json")
    print(f"converted by the server: model {model_id}, {onnx.stat().st_size / 1e6:.1f} MB model.onnx", flush=True)
    precisions = ["f32"]
    ours = {"f32": first}
    if args.bf16:
        # A copy of the data directory (the same key and converted model) served at bf16 beside it.
        first.stop()
        servers.remove(first)
        shutil.copytree(data_dir, work / "data-bf16")
        for precision, directory in (("f32", data_dir), ("bf16", work / "data-bf16")):
            ours[precision] = start_server(ours_env(directory, work, precision), timeout=STARTUP_TIMEOUT)
            servers.append(ours[precision])
        precisions.append("bf16")
    naive = start_naive(checkpoint, work)
    servers.append(naive)

    auth = {"Authorization": f"Bearer {key}"}
    targets = {
        f"ours {precision}": Target(
            f"{server.base_url}/api/models/{model_id}/predict", server.process.pid, auth, ours=True
        )
        for precision, server in ours.items()
    }
    targets["naive"] = Target(f"{naive.base_url}/predict", naive.process.pid, {}, ours=False)
    # A predict refused at its parameter check: auth, the model's DB lookup and the multipart parse of
    # bus.jpg happen, the decode and the model do not.
    probe = Target(targets["ours f32"].url, first.process.pid, auth, ours=True, fields={"conf": "5"}, expect=400)
    backends: dict[str, str] = {}
    for name, target in targets.items():  # load the model, warm the runtime and the connections
        backends[name] = asyncio.run(drive(target, image_bytes, 4, 0.0, 2))[1]

    raw_ort = RawOnnxRuntime(onnx, cores)
    raw_f32 = RawOpenVINO(onnx, "f32")
    raw_f32_one = RawOpenVINO(onnx, "f32", in_flight=1)
    raw_default = RawOpenVINO(onnx, None)
    threads = tune_threads(cores)
    # The engine as the server loads it (backend auto = openvino on CPU, f32, threads per stream).
    served = load_model(onnx.parent, "openvino", threads=threads.threads_per_stream, precision="f32")
    compiled = served.backend.compiled  # type: ignore[attr-defined]
    engine = (
        f"openvino f32, THROUGHPUT, INFERENCE_NUM_THREADS={threads.threads_per_stream}: "
        f"{compiled.get_property('NUM_STREAMS')} streams, {served.backend.max_concurrency} requests in flight; "
        f"dynamic batches of up to 8 images; {threads.executor_workers} executor workers"
    )
    run = Run(
        rounds=args.rounds,
        duration=args.duration,
        concurrency=args.concurrency,
        precisions=precisions,
        cores=cores,
        load_before=load_before,
        raw_labels={
            "raw onnxruntime f32": f"onnxruntime, {raw_ort.threads} intra-op threads, 1 run at a time",
            "raw openvino f32": f"openvino f32, THROUGHPUT, {raw_f32.in_flight} in flight ({raw_f32.streams} streams)",
            "raw openvino f32 1-in-flight": "openvino f32, THROUGHPUT, 1 request in flight",
            "raw openvino default": f"openvino default precision (= {raw_default.resolved_precision} on this CPU), "
            f"{raw_default.in_flight} in flight",
            "raw openvino f32 batch 8": f"openvino f32, 8x3x640x480 batches, {raw_f32.in_flight} in flight (info)",
        },
        engine=engine,
        backends=backends,
    )
    measurements: list[tuple[str, Callable[[], tuple[Sample, str]]]] = [
        ("raw onnxruntime f32", lambda: (raw_ort.measure(tensor, args.duration, 3), "")),
        ("raw openvino f32", lambda: (raw_f32.measure(tensor, args.duration, 3), "")),
        ("raw openvino f32 1-in-flight", lambda: (raw_f32_one.measure(tensor, args.duration, 3), "")),
        ("raw openvino default", lambda: (raw_default.measure(tensor, args.duration, 3), "")),
        ("raw openvino f32 batch 8", lambda: (raw_f32.measure(batch8, args.duration, 3, images=8), "")),
        ("ours http probe", http_run(probe, image_bytes, 4, min(args.duration, 3.0), 5)),
    ]
    for concurrency in args.concurrency:
        for name, target in targets.items():
            measurements.append(
                (f"{name} c={concurrency}", http_run(target, image_bytes, concurrency, args.duration, minimum))
            )
    run.results = {label: [] for label, _ in measurements}
    for round_index in range(args.rounds):
        shift = (round_index * len(measurements)) // args.rounds
        print(f"round {round_index + 1}/{args.rounds} (load average {load_average()})", flush=True)
        for label, measure in measurements[shift:] + measurements[:shift]:
            sample = measure()[0]
            run.results[label].append(sample)
            print(
                f"  {label:<30} {sample.images_per_s:7.2f}/s  p50 {sample.p50:8.1f} ms  "
                f"CPU {sample.cpu_ms_per_image or 0:6.1f} ms/img"
                + (f"  {len(sample.errors)} failed, e.g. {sample.errors[0]}" if sample.errors else ""),
                flush=True,
            )
        run.stages.append(stage_costs(served, image_bytes, 3 if args.quick else 10))
        for name, target in targets.items():
            run.idle.setdefault(name, []).append(idle_cpu(target.pid, 2.0 if args.quick else 5.0))
    served.close()
    for name, server in ours.items():  # what the server logged about failed requests, if any
        tracebacks = [chunk for chunk in server.output.split("ERROR") if "Traceback" in chunk]
        if tracebacks:
            first_error = tracebacks[0].strip()
            sql = [line.strip() for line in first_error.splitlines() if line.strip().startswith("[SQL:")]
            cause = next(
                (line for line in first_error.splitlines() if line.startswith(("sqlite3.", "sqlalchemy."))), ""
            )
            print(
                f"{name}: {len(tracebacks)} error(s) logged; the first: {first_error.splitlines()[0]}\n  {cause}"
                + "".join(f"\n  {line[:300]}" for line in sql[:1])
                + f"\n  ...{first_error[-1200:]}"
            )
    return run


def report(run: Run) -> None:
    def summary(label: str) -> tuple[float, float, float, float]:
        samples = run.results[label]
        return (
            median([s.images_per_s for s in samples]),
            median([s.p50 for s in samples]),
            median([s.p95 for s in samples]),
            median([s.cpu_ms_per_image for s in samples if s.cpu_ms_per_image is not None]),
        )

    def per_round(label: str) -> str:
        return " ".join(f"{s.images_per_s:.2f}" for s in run.results[label])

    print()
    print(
        f"machine: {run.cores} cores ({os.cpu_count()} online, {cpu_model()}); "
        f"load average {run.load_before} at start, {load_average()} at end"
    )
    print(f"{run.rounds} interleaved round(s), {run.duration:g} s per measurement; medians over the rounds")
    for name, backend in run.backends.items():
        if name.startswith("ours"):
            print(f"{name}: backend reported by the predict response (metadata.version.backend): {backend}")
    print(f"ours' engine: {run.engine}")
    header = f"{'':<60} {'images/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'CPU ms/img':>11}  images/s per round"
    print()
    print("raw backends, no HTTP, the 1x3x640x480 tensor (CPU: this process, all threads)")
    print(header)
    for label, text in run.raw_labels.items():
        ips, p50, p95, cpu = summary(label)
        print(f"  {text:<58} {ips:9.2f} {p50:8.1f} {p95:8.1f} {cpu:11.1f}  {per_round(label)}")
    baseline_label = max(("raw onnxruntime f32", "raw openvino f32"), key=lambda label: summary(label)[0])
    baseline, _, _, baseline_cpu = summary(baseline_label)
    print(
        "  baseline for ours (f32, its configured precision): the best f32 line at batch 1, "
        f"{run.raw_labels[baseline_label]}"
    )
    print()
    print("HTTP predict, multipart bus.jpg (CPU: the server process; [the client's own CPU])")
    print(header)
    for concurrency in run.concurrency:
        for name in [*(f"ours {precision}" for precision in run.precisions), "naive"]:
            label = f"{name} c={concurrency}"
            ips, p50, p95, cpu = summary(label)
            client = median([s.client_cpu_ms_per_image or 0.0 for s in run.results[label]])
            text = f"{name} (yolostack serve)" if name.startswith("ours") else "naive (FastAPI + YOLO.predict)"
            text += f", concurrency {concurrency}"
            failed = sum(len(s.errors) for s in run.results[label])
            print(
                f"  {text:<58} {ips:9.2f} {p50:8.1f} {p95:8.1f} {cpu:5.1f} [{client:4.1f}]  {per_round(label)}"
                + (f"  ({failed} requests failed)" if failed else "")
            )
    print()
    print("ratios of medians (targets: ours / best raw >= 0.9x, ours / naive >= 2x); CPU: images per CPU-second")
    raw_default = summary("raw openvino default")[0]
    for concurrency in run.concurrency:
        ips, p50, _, cpu = summary(f"ours f32 c={concurrency}")
        naive_ips, naive_p50, _, naive_cpu = summary(f"naive c={concurrency}")
        line = (
            f"  concurrency {concurrency:>2}: ours/raw {ips / baseline:5.2f}x (CPU {baseline_cpu / cpu:4.2f}x)"
            f"   ours/naive {ips / naive_ips:5.2f}x (CPU {naive_cpu / cpu:4.2f}x)   p50 ours/naive {p50 / naive_p50:4.2f}x"
        )
        if "bf16" in run.precisions:
            line += f"   ours bf16/raw default {summary(f'ours bf16 c={concurrency}')[0] / raw_default:5.2f}x"
        print(line)
    print()
    print("where ours' time goes (medians, ms; call = metadata.functionTimeCall, from the route's start;")
    print("infer = the image's share of its batch's forward, so it shrinks as batches grow)")
    print(f"  {'':<12} {'wall p50':>9} {'call':>8} {'preproc':>8} {'infer':>8} {'postproc':>8}")
    for concurrency in run.concurrency:
        for precision in run.precisions:
            label = f"ours {precision} c={concurrency}"
            server = {
                key: median([s.server_ms[key] for s in run.results[label]])
                for key in ("call", "preprocess", "inference", "postprocess")
            }
            print(
                f"  {f'{precision} c={concurrency}':<12} {summary(label)[1]:9.1f} {server['call']:8.1f} "
                f"{server['preprocess']:8.1f} {server['inference']:8.1f} {server['postprocess']:8.1f}"
            )
    step = {name: median([stage[name] for stage in run.stages]) for name in run.stages[0]}
    probe_cpu = summary("ours http probe")[3]
    print()
    print("CPU per image (ms), where ours spends more than the raw runtime")
    print(
        "  one request's steps alone in this process: "
        + ", ".join(f"{name} {ms:.1f}" for name, ms in step.items())
        + f"; forward's share {step['forward'] / sum(step.values()):.0%}"
    )
    print(f"  ours' server CPU for a predict refused after auth + DB lookup + multipart parse: {probe_cpu:.1f}")
    idle = {name: median(values) for name, values in run.idle.items()}
    print("  idle servers, CPU ms per second: " + ", ".join(f"{name} {ms:.1f}" for name, ms in idle.items()))
    outside = step["decode"] + step["letterbox"] + step["postprocess"] + step["json"] + probe_cpu
    for concurrency in run.concurrency:
        ips, _, _, cpu = summary(f"ours f32 c={concurrency}")
        print(
            f"  concurrency {concurrency:>2}: ours {cpu:.1f} - raw {baseline_cpu:.1f} = {cpu - baseline_cpu:+.1f}; "
            f"steps outside forward + the probe {outside:.1f}, idle CPU spread over its images "
            f"{idle['ours f32'] / ips:.1f}"
        )


if __name__ == "__main__":
    main()
