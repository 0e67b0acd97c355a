"""``yolostack watch``: follow a training run, an export or a dataset ingest until it ends, through the API only.

A client like the official ones (no database access): it polls the job's read endpoint and, with
``--logs``, ``/api/jobs/{id}/logs``. In a terminal it draws a ``rich`` progress bar; otherwise it
prints one plain line per change, for CI logs and scripts.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn

COMPLETED, FAILED, STOPPED, INTERRUPTED = 0, 1, 2, 130
EXIT_CODES = {"completed": COMPLETED, "failed": FAILED, "cancelled": STOPPED}
ACTIVE = frozenset({"pending", "queued", "starting", "running"})
EXPORT_PHASES = ("preparing", "downloading", "exporting", "uploading", "completed")
TARGET_HELP = "owner/project/model, ul://owner/project/model, model_…, job_… (training or ingest) or export_…"
# The metrics shown, in order: a label and the ultralytics names it stands for (first one present wins).
HEADLINE = (
    ("mAP50-95", ("metrics/mAP50-95(B)", "metrics/mAP50-95(M)", "metrics/mAP50-95(P)")),
    ("top1", ("metrics/accuracy_top1",)),
    ("box_loss", ("train/box_loss",)),
    ("loss", ("train/loss",)),
)
SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
JOB_ID = re.compile(r"^(?:job|export)_[A-Za-z0-9]+$")
MODEL_ID = re.compile(r"^model_[A-Za-z0-9]+$")
# How long a watch keeps retrying a server that stopped answering before it gives up.
PATIENCE_S = 120.0
LOG_PAGE = 1000

Sleep = Callable[[float], None]


class WatchError(Exception):
    """Why watching cannot go on, and the exit code that says so."""

    def __init__(self, message: str, code: int = STOPPED) -> None:
        super().__init__(message)
        self.message, self.code = message, code


class Unreachable(Exception):
    """The server did not answer (or answered 5xx): worth another try."""


@dataclass(frozen=True)
class Target:
    """What to follow: the path that answers ``{job: …}`` and whether it is a model's latest run."""

    path: str
    label: str
    is_model: bool


def parse_target(text: str) -> Target:
    """``owner/project/model`` (optionally ``ul://``), ``model_…``, ``job_…`` or ``export_…``."""
    value = text.strip().removeprefix("ul://").strip("/")
    if JOB_ID.match(value):
        return Target(f"/api/jobs/{value}", value, is_model=False)
    if MODEL_ID.match(value):
        return Target(f"/api/models/{value}/training", value, is_model=True)
    parts = value.split("/")
    if len(parts) == 3 and all(SEGMENT.match(part) for part in parts):
        path = "/".join(quote(part, safe="") for part in parts)
        return Target(f"/api/models/{path}/training", value, is_model=True)
    raise WatchError(f"cannot watch '{text}': expected {TARGET_HELP}")


@dataclass(frozen=True)
class Snapshot:
    """One poll of a job, training or export, in the few fields watch shows."""

    job_id: str
    kind: str
    status: str
    epoch: int = 0
    epochs: int = 0
    metrics: tuple[tuple[str, float], ...] = ()
    eta_ms: int = 0
    phase: str | None = None
    export_format: str | None = None
    error: str | None = None
    dataset_id: str | None = None  # an ingest's dataset
    images: int = 0  # an ingest's images imported so far, of ``image_total``
    image_total: int = 0

    @property
    def is_done(self) -> bool:
        return self.status not in ACTIVE

    @property
    def change(self) -> tuple[str, int, str | None]:
        """What a new plain line is printed for: the status, the epoch, or the export's or ingest's phase."""
        return (self.status, self.epoch, self.phase)


def snapshot_of(job: dict[str, Any]) -> Snapshot:
    """A ``job`` object from ``…/training`` or ``/api/jobs/{id}`` (clients.md §1.4)."""
    error = job.get("error")
    message = str(error.get("message") or "") or None if isinstance(error, dict) else None
    job_id, status = str(job.get("id")), str(job.get("status"))
    if job.get("kind") == "ingest":
        progress = job.get("progress") or {}
        phase = job.get("phase")
        return Snapshot(
            job_id,
            "ingest",
            status,
            images=_int(progress.get("current")),
            image_total=_int(progress.get("total")),
            phase=str(phase) if phase else None,
            error=message,
            dataset_id=str(job.get("datasetId") or "") or None,
        )
    if job.get("kind") == "export":
        phase, export_format = job.get("phase"), job.get("format")
        return Snapshot(
            job_id,
            "export",
            status,
            phase=str(phase) if phase else None,
            export_format=str(export_format) if export_format else None,
            error=message,
        )
    progress, timing = job.get("progress") or {}, job.get("timing") or {}
    return Snapshot(
        job_id,
        "training",
        status,
        epoch=_int(progress.get("currentEpoch")),
        epochs=_int(progress.get("totalEpochs")),
        metrics=headline(job.get("epochMetrics") or {}),
        eta_ms=_int(timing.get("etaMs")),
        error=message,
    )


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


def headline(metrics: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    """The few metrics worth a glance (mAP50-95, box loss …), labelled, in a fixed order."""
    shown = []
    for label, names in HEADLINE:
        value = next((metrics[name] for name in names if isinstance(metrics.get(name), int | float)), None)
        if value is not None:
            shown.append((label, float(value)))
    return tuple(shown)


def duration(ms: int) -> str:
    seconds = max(ms, 0) // 1000
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds // 60 % 60:02d}m"


def position(snapshot: Snapshot) -> list[str]:
    """Where the job is: ``epoch 3/10``, ``phase exporting`` or ``phase importing  images 120/400`` (nothing
    while unknown)."""
    if snapshot.kind == "ingest":
        phase = [f"phase {snapshot.phase}"] if snapshot.phase and not snapshot.is_done else []
        return phase + ([f"images {snapshot.images}/{snapshot.image_total}"] if snapshot.image_total else [])
    if snapshot.kind == "export":
        return [f"phase {snapshot.phase}"] if snapshot.phase else []
    return [f"epoch {snapshot.epoch}/{snapshot.epochs}"] if snapshot.epochs else []


def extras(snapshot: Snapshot) -> list[str]:
    """The headline metrics and the ETA, as ``label value`` pairs."""
    parts = [f"{label} {value:.3f}" for label, value in snapshot.metrics]
    if snapshot.eta_ms and not snapshot.is_done:
        parts.append(f"eta {duration(snapshot.eta_ms)}")
    return parts


def describe(snapshot: Snapshot) -> str:
    """``training job_…``, ``export job_… (onnx)`` or ``ingest job_… (dataset_…)``."""
    if snapshot.kind == "ingest":
        return f"ingest {snapshot.job_id}" + (f" ({snapshot.dataset_id})" if snapshot.dataset_id else "")
    if snapshot.kind == "export":
        what = f" ({snapshot.export_format})" if snapshot.export_format else ""
        return f"export {snapshot.job_id}{what}"
    return f"training {snapshot.job_id}"


def format_line(snapshot: Snapshot) -> str:
    """The plain line for one state, e.g. ``training job_x running  epoch 1/2  mAP50-95 0.01  eta 4s``."""
    return "  ".join([f"{describe(snapshot)} {snapshot.status}", *position(snapshot), *extras(snapshot)])


class View(Protocol):
    def show(self, snapshot: Snapshot) -> None: ...
    def log(self, text: str) -> None: ...
    def close(self, snapshot: Snapshot | None) -> None: ...


class PlainView:
    """One line per change, for pipes and CI logs."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.last: tuple[str, int, str | None] | None = None

    def show(self, snapshot: Snapshot) -> None:
        if snapshot.change != self.last:
            self.last = snapshot.change
            print(format_line(snapshot), file=self.out, flush=True)

    def log(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def close(self, snapshot: Snapshot | None) -> None:
        """Nothing to tidy: the last state already has its line."""


class RichView:
    """A live progress bar: one step per epoch, or per export phase."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console,
        )
        self.task: TaskID | None = None

    def show(self, snapshot: Snapshot) -> None:
        total, done = steps(snapshot)
        title, detail = escape(bar_title(snapshot)), escape("  ".join(extras(snapshot)))
        if self.task is None:
            self.task = self.progress.add_task(title, total=total, completed=done, detail=detail)
            self.progress.start()
        else:
            self.progress.update(self.task, description=title, total=total, completed=done, detail=detail)

    def log(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def close(self, snapshot: Snapshot | None) -> None:
        self.progress.stop()
        if snapshot is not None and snapshot.is_done:
            style = {"completed": "green", "failed": "red"}.get(snapshot.status, "yellow")
            self.console.print(f"[{style}]{escape(format_line(snapshot))}[/{style}]", highlight=False)


def steps(snapshot: Snapshot) -> tuple[int | None, int]:
    """The bar's total and position: epochs, phases of an export, or images of an ingest (no total while
    unknown)."""
    if snapshot.kind == "ingest":
        return snapshot.image_total or None, snapshot.images
    if snapshot.kind == "export":
        position = EXPORT_PHASES.index(snapshot.phase) if snapshot.phase in EXPORT_PHASES else 0
        done = len(EXPORT_PHASES) - 1 if snapshot.status == "completed" else position
        return len(EXPORT_PHASES) - 1, done
    return snapshot.epochs or None, snapshot.epoch


def bar_title(snapshot: Snapshot) -> str:
    if snapshot.kind == "ingest":
        return f"Ingest: {snapshot.phase or snapshot.status}"
    if snapshot.kind == "export":
        what = f"Export {snapshot.export_format}" if snapshot.export_format else "Export"
        return f"{what}: {snapshot.phase or snapshot.status}"
    if snapshot.epochs and snapshot.status not in ("queued", "starting"):
        return f"Epoch {snapshot.epoch}/{snapshot.epochs}"
    return f"Training {snapshot.status}…"


class Api:
    """The reads watch makes, with the caller's key; HTTP failures become WatchError or Unreachable."""

    def __init__(self, http: httpx.Client, sleep: Sleep) -> None:
        self.http, self.sleep = http, sleep

    def get(self, path: str, **params: int) -> dict[str, Any]:
        while True:
            try:
                response = self.http.get(path, params=params)
            except httpx.TransportError as error:
                raise Unreachable(f"cannot reach {self.http.base_url}: {error}") from error
            if response.status_code == 429:  # rate limited: wait as told, it is not an error
                self.sleep(_retry_after(response))
                continue
            if response.status_code >= 500:
                raise Unreachable(f"the server answered HTTP {response.status_code}")
            if response.status_code >= 400:
                raise WatchError(_error_message(response))
            body = response.json()
            if not isinstance(body, dict):
                raise WatchError(f"unexpected answer from {path}")
            return body


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(max(float(response.headers.get("retry-after", "1")), 0.5), 60.0)
    except ValueError:
        return 1.0


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else None
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else f"HTTP {response.status_code} from {response.request.url.path}"


class Follower:
    """The polling loop: status, then logs, until the job ends."""

    def __init__(self, api: Api, view: View, *, interval: float, logs: bool, notes: TextIO) -> None:
        self.api, self.view, self.interval, self.notes = api, view, interval, notes
        self.logs_after: int | None = 0 if logs else None
        self.current: Snapshot | None = None

    def fetch(self, target: Target) -> Snapshot:
        job = self.api.get(target.path).get("job")
        if not isinstance(job, dict):
            raise WatchError(f"model '{target.label}' has no training run")
        snapshot = snapshot_of(job)
        if self.current is not None and snapshot.job_id != self.current.job_id:
            print(f"a newer run {snapshot.job_id} replaced {self.current.job_id}; following it", file=self.notes)
            self.logs_after = None if self.logs_after is None else 0
        self.current = snapshot
        if snapshot.kind == "ingest":
            self.logs_after = None  # an ingest has no console output
        return snapshot

    def fetch_patiently(self, target: Target) -> Snapshot:
        """Another poll; a server that stops answering is retried for a while (it may be restarting)."""
        waited = 0.0
        while True:
            try:
                return self.fetch(target)
            except Unreachable as error:
                if waited >= PATIENCE_S:
                    raise WatchError(f"{error}; gave up after {int(waited)}s") from error
                if not waited:
                    print(f"{error}; retrying", file=self.notes)
                pause = max(self.interval, 1.0)
                self.api.sleep(pause)
                waited += pause

    def stream_logs(self, job_id: str) -> None:
        """Print the console lines written since the last call."""
        while self.logs_after is not None:
            try:
                page = self.api.get(f"/api/jobs/{job_id}/logs", after=self.logs_after, limit=LOG_PAGE)
            except (WatchError, Unreachable) as error:
                print(f"logs unavailable: {getattr(error, 'message', error)}", file=self.notes)
                self.logs_after = None
                return
            entries = page.get("entries") or []
            for entry in entries:
                self.view.log(str(entry.get("content") or "").rstrip())
            self.logs_after = _int(page.get("nextAfter")) or self.logs_after
            if len(entries) < LOG_PAGE:
                return

    def run(self, target: Target) -> int:
        snapshot = self.fetch(target)
        while True:
            self.view.show(snapshot)
            self.stream_logs(snapshot.job_id)
            if snapshot.is_done:
                break
            self.api.sleep(self.interval)
            snapshot = self.fetch_patiently(target)
        self.view.close(snapshot)
        if snapshot.status == "failed":
            print(f"error: {snapshot.error or 'the job failed'}", file=self.notes)
        return EXIT_CODES.get(snapshot.status, STOPPED)


def follow(
    text: str, http: httpx.Client, view: View, *, interval: float, logs: bool, notes: TextIO, sleep: Sleep
) -> int:
    """Watch ``text`` to the end and return the exit code; Ctrl-C leaves the job running."""
    follower = Follower(Api(http, sleep), view, interval=interval, logs=logs, notes=notes)
    try:
        return follower.run(parse_target(text))
    except WatchError as error:
        view.close(None)
        print(f"error: {error.message}", file=notes)
        return error.code
    except Unreachable as error:
        view.close(None)
        print(f"error: {error}", file=notes)
        return STOPPED
    except KeyboardInterrupt:
        view.close(None)
        job = follower.current
        where = f"; {job.job_id} keeps running on the server (yolostack watch {job.job_id} to resume)" if job else ""
        print(f"stopped watching{where}", file=notes)
        return INTERRUPTED


def watch(target: str, *, url: str, key: str, interval: float, logs: bool) -> int:
    """The ``yolostack watch`` command: a progress bar in a terminal, plain lines elsewhere."""
    console = Console()
    is_terminal = console.is_terminal and not console.is_dumb_terminal
    view: View = RichView(console) if is_terminal else PlainView(sys.stdout)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=httpx.Timeout(30.0, connect=10.0)) as http:
        return follow(target, http, view, interval=interval, logs=logs, notes=sys.stderr, sleep=time.sleep)
