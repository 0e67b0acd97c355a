"""``yolostack watch``: target parsing and lines without a server, the polling loop over a scripted
transport, and the console script against live servers (queued runs, a real tiny run, a failing one)."""

from __future__ import annotations

import io
import re
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from tests.fixtures.server import YOLOSTACK, LiveServer, run_cli, start_server, yolostack_env
from tests.jobs.helpers import api, create_model, ok, queue_ingest, training_job, upload_dataset, wait_training
from yolostack.watch import (
    INTERRUPTED,
    PlainView,
    RichView,
    Snapshot,
    WatchError,
    duration,
    follow,
    format_line,
    parse_target,
    snapshot_of,
)

TINY_RUN = {"model": "yolo11n.yaml", "epochs": 2, "imgsz": 64, "batch": 4, "workers": 0, "plots": False}
METRICS = {"metrics/mAP50-95(B)": 0.01234, "metrics/mAP50(B)": 0.05, "train/box_loss": 3.21, "val/box_loss": 3.5}


# -- without a server ------------------------------------------------------------------------------


class TestParseTarget:
    @pytest.mark.parametrize(
        ("text", "path"),
        [
            ("alice/proj/m1", "/api/models/alice/proj/m1/training"),
            ("ul://alice/proj/m1", "/api/models/alice/proj/m1/training"),
            ("model_abc123", "/api/models/model_abc123/training"),
            ("job_abc123", "/api/jobs/job_abc123"),
            ("export_abc123", "/api/jobs/export_abc123"),
        ],
    )
    def test_each_form_reads_its_endpoint(self, text: str, path: str) -> None:
        assert parse_target(text).path == path

    @pytest.mark.parametrize("text", ["", "alice/proj", "a/b/c/d", "dataset_abc", "alice/../m1", "alice/p q/m1"])
    def test_anything_else_is_refused(self, text: str) -> None:
        with pytest.raises(WatchError) as caught:
            parse_target(text)
        assert caught.value.code == 2
        assert "owner/project/model" in caught.value.message


def training(status: str, epoch: int = 0, epochs: int = 2, **fields: Any) -> dict[str, Any]:
    """A ``job`` object as ``GET …/training`` answers it."""
    return {
        "id": "job_1",
        "status": status,
        "progress": {"currentEpoch": epoch, "totalEpochs": epochs, "percentage": 50.0},
        "timing": {"elapsedMs": 1000, "timePerEpochMs": 500, "etaMs": fields.pop("eta_ms", 0)},
        "epochMetrics": fields.pop("metrics", None),
        "error": fields.pop("error", None),
        **fields,
    }


def export(status: str, phase: str | None = None, error: str | None = None) -> dict[str, Any]:
    message = {"message": error, "code": "RUNNER_ERROR", "timestamp": "2026-01-01T00:00:00Z"} if error else None
    return {"id": "export_1", "kind": "export", "status": status, "format": "onnx", "phase": phase, "error": message}


class TestFormatLine:
    def test_running_epoch_shows_metrics_and_eta(self) -> None:
        line = format_line(snapshot_of(training("running", 1, 10, metrics=METRICS, eta_ms=125_000)))
        assert line == "training job_1 running  epoch 1/10  mAP50-95 0.012  box_loss 3.210  eta 2m 05s"

    def test_an_ended_run_has_no_eta(self) -> None:
        assert (
            format_line(snapshot_of(training("completed", 2, 2, eta_ms=5000))) == "training job_1 completed  epoch 2/2"
        )

    def test_before_the_epochs_are_known(self) -> None:
        assert format_line(snapshot_of(training("queued", 0, 0))) == "training job_1 queued"

    def test_export_shows_format_and_phase(self) -> None:
        assert (
            format_line(snapshot_of(export("running", "exporting")))
            == "export export_1 (onnx) running  phase exporting"
        )

    def test_other_tasks_metrics(self) -> None:
        snapshot = snapshot_of(training("running", 1, 2, metrics={"metrics/accuracy_top1": 0.5, "train/loss": 1.0}))
        assert snapshot.metrics == (("top1", 0.5), ("loss", 1.0))

    @pytest.mark.parametrize(("ms", "text"), [(0, "0s"), (59_999, "59s"), (61_000, "1m 01s"), (3_720_000, "1h 02m")])
    def test_duration(self, ms: int, text: str) -> None:
        assert duration(ms) == text


Reply = dict[str, Any] | httpx.Response


@dataclass
class Scripted:
    """A fake server: each path answers its replies in turn (the last one again once they run out)."""

    replies: dict[str, list[Reply]]
    seen: list[str]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.url.raw_path.decode())
        queue = self.replies.get(request.url.path)
        if not queue:
            return httpx.Response(404, json={"success": False, "error": {"code": "NOT_FOUND", "message": "nope"}})
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        return reply if isinstance(reply, httpx.Response) else httpx.Response(200, json=reply)


def run_script(
    target: str, replies: dict[str, list[Reply]], *, logs: bool = False, sleep: Callable[[float], None] | None = None
) -> tuple[int, str, str, list[str]]:
    script = Scripted(replies, [])
    out, notes = io.StringIO(), io.StringIO()
    with httpx.Client(transport=httpx.MockTransport(script.handle), base_url="http://test") as http:
        view = PlainView(out)
        code = follow(target, http, view, interval=1, logs=logs, notes=notes, sleep=sleep or (lambda _: None))
    return code, out.getvalue(), notes.getvalue(), script.seen


MODEL_PATH = "/api/models/a/p/m/training"


def polls(*jobs: dict[str, Any] | None) -> dict[str, list[Reply]]:
    return {MODEL_PATH: [{"job": job} for job in jobs]}


class TestFollow:
    def test_one_line_per_change_then_exit_0(self) -> None:
        script = polls(
            training("queued"),
            training("queued"),
            training("running", 0),
            training("running", 1, metrics=METRICS),
            training("running", 1, metrics=METRICS),
            training("completed", 2),
        )
        code, out, notes, _ = run_script("a/p/m", script)
        assert code == 0, notes
        assert out.splitlines() == [
            "training job_1 queued  epoch 0/2",
            "training job_1 running  epoch 0/2",
            "training job_1 running  epoch 1/2  mAP50-95 0.012  box_loss 3.210",
            "training job_1 completed  epoch 2/2",
        ]

    def test_failed_exits_1_with_the_error(self) -> None:
        failure = {"message": "NotImplementedError: no such optimizer", "code": "RUNNER_ERROR", "timestamp": "t"}
        code, out, notes, _ = run_script("a/p/m", polls(training("running"), training("failed", error=failure)))
        assert code == 1
        assert out.splitlines()[-1] == "training job_1 failed  epoch 0/2"
        assert "error: NotImplementedError: no such optimizer" in notes

    def test_cancelled_exits_2(self) -> None:
        code, out, _, _ = run_script("a/p/m", polls(training("running"), training("cancelled")))
        assert code == 2
        assert out.splitlines()[-1] == "training job_1 cancelled  epoch 0/2"

    def test_unknown_model_exits_2_with_the_servers_message(self) -> None:
        missing = httpx.Response(404, json={"error": {"code": "NOT_FOUND", "message": "model 'a/p/m' not found"}})
        code, out, notes, _ = run_script("a/p/m", {MODEL_PATH: [missing]})
        assert (code, out) == (2, "")
        assert notes.strip() == "error: model 'a/p/m' not found"

    def test_never_trained_model_exits_2(self) -> None:
        code, _, notes, _ = run_script("a/p/m", polls(None))
        assert code == 2
        assert "has no training run" in notes

    def test_bad_target_exits_2_without_a_request(self) -> None:
        code, _, notes, seen = run_script("not a target", {})
        assert (code, seen) == (2, [])
        assert "expected owner/project/model" in notes

    def test_rate_limited_poll_waits_as_told(self) -> None:
        waits: list[float] = []
        limited = httpx.Response(429, headers={"Retry-After": "7"}, json={"error": {"message": "slow down"}})
        code, out, _, _ = run_script(
            "a/p/m", {MODEL_PATH: [limited, {"job": training("completed", 2)}]}, sleep=waits.append
        )
        assert code == 0
        assert waits == [7.0]
        assert out.splitlines() == ["training job_1 completed  epoch 2/2"]

    def test_a_server_hiccup_is_retried(self) -> None:
        hiccup = httpx.Response(503, text="restarting")
        code, _, notes, _ = run_script(
            "a/p/m", {MODEL_PATH: [{"job": training("running")}, hiccup, {"job": training("completed", 2)}]}
        )
        assert code == 0
        assert "HTTP 503; retrying" in notes

    def test_a_server_gone_for_good_gives_up(self) -> None:
        gone = httpx.Response(502, text="bad gateway")
        code, _, notes, _ = run_script("a/p/m", {MODEL_PATH: [{"job": training("running")}, gone]})
        assert code == 2
        assert "gave up after" in notes

    def test_logs_follow_the_cursor(self) -> None:
        script: dict[str, list[Reply]] = {
            **polls(training("running", 1), training("completed", 2)),
            "/api/jobs/job_1/logs": [
                {"entries": [{"id": 1, "content": "first\n"}, {"id": 2, "content": "second"}], "nextAfter": 2},
                {"entries": [{"id": 3, "content": "third"}], "nextAfter": 3},
                {"entries": [], "nextAfter": 3},
            ],
        }
        code, out, _, seen = run_script("a/p/m", script, logs=True)
        assert code == 0
        assert out.splitlines() == [
            "training job_1 running  epoch 1/2",
            "first",
            "second",
            "training job_1 completed  epoch 2/2",
            "third",
        ]
        after = [int(match.group(1)) for path in seen if (match := re.search(r"after=(\d+)", path))]
        assert after == [0, 2]

    def test_logs_out_of_reach_are_skipped_with_a_note(self) -> None:
        code, out, notes, _ = run_script("a/p/m", polls(training("completed", 2)), logs=True)
        assert code == 0
        assert out.splitlines() == ["training job_1 completed  epoch 2/2"]
        assert "logs unavailable: nope" in notes

    def test_export_phases(self) -> None:
        path = "/api/jobs/export_1"
        script: dict[str, list[Reply]] = {
            path: [
                {"job": export(status, phase)}
                for status, phase in [
                    ("queued", None),
                    ("running", "downloading"),
                    ("running", "exporting"),
                    ("completed", "completed"),
                ]
            ]
        }
        code, out, _, _ = run_script("export_1", script)
        assert code == 0
        assert out.splitlines() == [
            "export export_1 (onnx) queued",
            "export export_1 (onnx) running  phase downloading",
            "export export_1 (onnx) running  phase exporting",
            "export export_1 (onnx) completed  phase completed",
        ]

    def test_ctrl_c_says_the_job_keeps_running(self) -> None:
        def interrupt(_: float) -> None:
            raise KeyboardInterrupt

        code, _, notes, _ = run_script("a/p/m", polls(training("running")), sleep=interrupt)
        assert code == INTERRUPTED
        assert "job_1 keeps running on the server" in notes


class TestRichView:
    def render(self, *jobs: dict[str, Any]) -> str:
        out = io.StringIO()
        view = RichView(Console(file=out, force_terminal=True, width=120, color_system=None))
        snapshot: Snapshot | None = None
        for job in jobs:
            snapshot = snapshot_of(job)
            view.show(snapshot)
            view.progress.refresh()
        view.close(snapshot)
        return out.getvalue()

    def test_a_bar_per_epoch_with_metrics_and_eta(self) -> None:
        shown = self.render(training("running", 3, 10, metrics=METRICS, eta_ms=70_000))
        assert "Epoch 3/10" in shown
        assert "mAP50-95 0.012" in shown
        assert "box_loss 3.210" in shown
        assert "eta 1m 10s" in shown

    def test_the_final_line_is_printed(self) -> None:
        shown = self.render(training("running", 1), training("completed", 2))
        assert "Epoch 2/2" in shown
        assert shown.rstrip().endswith("training job_1 completed  epoch 2/2")

    def test_export_phase(self) -> None:
        assert "Export onnx: exporting" in self.render(export("running", "exporting"))


# -- against live servers --------------------------------------------------------------------------


def watch_env(server: LiveServer, key: str) -> dict[str, str]:
    return {"ULTRALYTICS_PLATFORM_URL": server.base_url, "ULTRALYTICS_API_KEY": key}


def admin_key(server: LiveServer) -> str:
    assert server.key is not None, server.output
    return server.key


@dataclass(frozen=True)
class Parked:
    """A server that queues jobs but never runs them: runs stay ``queued`` for as long as a test needs."""

    server: LiveServer
    http: httpx.Client
    bob_key: str

    @property
    def env(self) -> dict[str, str]:
        return watch_env(self.server, admin_key(self.server))

    def queued_run(self, project: str, model: str) -> dict[str, Any]:
        created = create_model(self.http, project, model)
        started = ok(
            self.http.post(
                "/api/training/start",
                json={"modelId": created["id"], "trainArgs": {**TINY_RUN, "data": "ul://admin/datasets/parked"}},
            )
        )
        return {"modelId": created["id"], "jobId": started["jobId"]}


@pytest.fixture(scope="module")
def parked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Parked]:
    work = tmp_path_factory.mktemp("watch-parked")
    env = {"YOLOSTACK_DATA_DIR": str(work / "data"), "YOLOSTACK_JOBS__RUN_JOBS": "false"}
    server = start_server(env)
    try:
        http = api(server.base_url, admin_key(server))
        upload_dataset(http, work, "parked", images=4)
        created = run_cli("users", "create", "bob", env=env)
        assert created.returncode == 0, created.stderr
        (bob_key,) = re.findall(r"ul_[0-9a-f]{40}", created.stdout)
        yield Parked(server, http, bob_key)
    finally:
        server.stop()


def watch_process(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(YOLOSTACK), "watch", *args],
        env=yolostack_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def first_line(process: subprocess.Popen[str], timeout: float = 30) -> str:
    """The watcher's first line (it flushes each one), or the process killed after ``timeout``."""
    assert process.stdout is not None
    guard = threading.Timer(timeout, process.kill)
    guard.start()
    try:
        return process.stdout.readline()
    finally:
        guard.cancel()


NOWHERE = {"ULTRALYTICS_PLATFORM_URL": "http://127.0.0.1:9", "ULTRALYTICS_API_KEY": "ul_" + "0" * 40}


class TestWatchCommand:
    """The console script's own refusals: no server needed."""

    def test_bad_target_exits_2(self) -> None:
        result = run_cli("watch", "not-a-model", env=NOWHERE)
        assert result.returncode == 2
        assert "expected owner/project/model" in result.stderr

    def test_no_key_exits_2(self) -> None:
        result = run_cli("watch", "admin/a/b", env={**NOWHERE, "ULTRALYTICS_API_KEY": ""})
        assert result.returncode == 2
        assert "no API key" in result.stderr

    def test_unreachable_server_exits_2(self) -> None:
        result = run_cli("watch", "admin/a/b", env=NOWHERE)
        assert result.returncode == 2
        assert "cannot reach http://127.0.0.1:9" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.slow
class TestWatchTargets:
    def test_unknown_model_exits_2(self, parked: Parked) -> None:
        result = run_cli("watch", "admin/nowhere/nothing", env=parked.env)
        assert result.returncode == 2
        assert result.stderr.strip() == "error: model 'admin/nowhere/nothing' not found"
        assert "Traceback" not in result.stderr

    def test_another_accounts_model_is_not_found(self, parked: Parked) -> None:
        run = parked.queued_run("private", "mine")
        bob = watch_env(parked.server, parked.bob_key)
        for target in ("admin/private/mine", run["modelId"], run["jobId"]):
            result = run_cli("watch", target, env=bob)
            assert result.returncode == 2, (target, result.stdout, result.stderr)
            assert "not found" in result.stderr
            assert result.stdout == ""

    def test_flags_override_the_environment(self, parked: Parked) -> None:
        flags = ("--url", parked.server.base_url, "--key", admin_key(parked.server))
        result = run_cli("watch", "admin/nowhere/nothing", *flags, env=NOWHERE)
        assert result.returncode == 2
        assert "model 'admin/nowhere/nothing' not found" in result.stderr

    def test_ctrl_c_leaves_the_job_running(self, parked: Parked) -> None:
        run = parked.queued_run("interrupted", "m")
        process = watch_process(run["jobId"], "--interval", "0.2", env=parked.env)
        assert first_line(process) == f"training {run['jobId']} queued  epoch 0/2\n"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 130, stderr
        assert f"{run['jobId']} keeps running on the server" in stderr
        assert training_job(parked.http, "admin", "interrupted", "m") is not None
        assert ok(parked.http.get(f"/api/jobs/{run['jobId']}"))["job"]["status"] == "queued"

    def test_an_ingest_job_is_followed_to_the_end(self, parked: Parked, tmp_path: Path) -> None:
        """The ``jobId`` a dataset ingest answers (ingests run on this server; only jobs are parked)."""
        _, job_id = queue_ingest(parked.http, tmp_path, "watched", images=4)
        result = run_cli("watch", job_id, "--interval", "0.2", env=parked.env)
        assert result.returncode == 0, result.stderr
        dataset = ok(parked.http.get("/api/datasets/admin/watched"))["dataset"]
        assert result.stdout.splitlines()[-1] == f"ingest {job_id} ({dataset['id']}) completed  images 4/4"

    def test_cancelled_run_exits_2(self, parked: Parked) -> None:
        run = parked.queued_run("cancelled", "m")
        process = watch_process("ul://admin/cancelled/m", "--interval", "0.2", env=parked.env)
        assert first_line(process).startswith(f"training {run['jobId']} queued")
        ok(parked.http.delete("/api/models/admin/cancelled/m/training"))
        stdout, stderr = process.communicate(timeout=30)
        assert process.returncode == 2, stderr
        assert stdout.splitlines()[-1] == f"training {run['jobId']} cancelled  epoch 0/2"


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, httpx.Client]]:
    """A server that runs jobs, with a dataset big enough that an epoch takes a few polls."""
    work = tmp_path_factory.mktemp("watch-train")
    server = start_server({"YOLOSTACK_DATA_DIR": str(work / "data")})
    try:
        http = api(server.base_url, admin_key(server))
        upload_dataset(http, work, "shapes", images=32)
        yield server, http
    finally:
        server.stop()


def start_run(http: httpx.Client, model: str, train_args: dict[str, Any]) -> dict[str, Any]:
    created = create_model(http, "watched", model)
    body = {"modelId": created["id"], "trainArgs": {**train_args, "data": "ul://admin/datasets/shapes"}}
    return {"modelId": created["id"], **ok(http.post("/api/training/start", json=body))}


@pytest.mark.slow
class TestWatchTraining:
    def test_follows_a_real_run_to_completion(self, trainer: tuple[LiveServer, httpx.Client]) -> None:
        server, http = trainer
        start_run(http, "ok", TINY_RUN)
        result = run_cli(
            "watch", "admin/watched/ok", "--interval", "0.2", env=watch_env(server, admin_key(server)), timeout=400
        )
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert any("running  epoch 1/2" in line for line in lines), result.stdout
        assert any("epoch 2/2" in line for line in lines), result.stdout
        assert re.fullmatch(r"training job_\w+ completed  epoch 2/2  mAP50-95 \S+  box_loss \S+", lines[-1]), lines
        assert all(line.startswith("training job_") for line in lines), result.stdout

    def test_a_failing_run_exits_1_with_its_error(self, trainer: tuple[LiveServer, httpx.Client]) -> None:
        server, http = trainer
        run = start_run(http, "broken", {**TINY_RUN, "epochs": 1, "optimizer": "NoSuchOptimizer"})
        env = watch_env(server, admin_key(server))
        result = run_cli("watch", run["modelId"], "--logs", "--interval", "0.5", env=env, timeout=400)
        job = wait_training(http, "admin", "watched", "broken", timeout=30)
        assert job["status"] == "failed", job
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"training {job['id']} failed" in result.stdout
        assert f"error: {job['error']['message']}" in result.stderr
        assert "NoSuchOptimizer" in result.stderr
        assert "NoSuchOptimizer" in result.stdout  # the runner's console lines, through --logs
