"""Training through the local executor against a live ``yolostack serve``: the runner is a real child
process running the real ``ultralytics`` trainer, which reports back over HTTP with its job key."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from tests.fixtures.checkpoints import malicious_checkpoint
from tests.fixtures.database import BACKENDS
from tests.jobs.helpers import LiveStack, create_model, ok, upload_dataset, wait_for, wait_training
from tests.webhooks.receiver import Receiver

pytestmark = [pytest.mark.slow]


def runner_pids(work_root: Path, job_id: str) -> list[int]:
    """Processes whose working directory is this job's (the runner and anything it started)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if Path(cwd).name.startswith(job_id) and Path(cwd).parent == work_root:
            pids.append(int(entry.name))
    return pids


class Stack(LiveStack):
    def __init__(self, tmp: Path, **env: str) -> None:
        super().__init__(
            tmp,
            {
                # The webhook receiver below listens on loopback, and is down for its first attempts.
                "YOLOSTACK_WEBHOOKS__ALLOW_PRIVATE_URLS": "true",
                "YOLOSTACK_WEBHOOKS__RETRY_SCHEDULE": "[0.5, 0.5, 0.5, 0.5, 0.5, 0.5]",
                "YOLOSTACK_WEBHOOKS__POLL_INTERVAL_SECONDS": "0.2",
                **env,
            },
        )


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if request.param == "postgres":
        pytest.skip("the live-server training path is the same on both databases; tests/training covers PostgreSQL")
    tmp = tmp_path_factory.mktemp("local-jobs")
    stack = Stack(tmp)
    try:
        upload_dataset(stack.http, tmp, "shapes")
        yield stack
    finally:
        stack.server.stop()


class TestLocalTraining:
    def test_trains_to_completion_with_weights_metrics_and_logs(self, stack: Stack) -> None:
        receiver = Receiver(fail_first=3).start()
        events = ["training.started", "training.epoch", "training.completed", "training.failed"]
        hook = ok(stack.http.post("/api/webhooks", json={"url": receiver.url, "events": events}), 201)
        try:
            self._train_and_check(stack)
            delivered = wait_for(receiver.delivered, lambda got: len(got) >= 4, 60, what="4 webhook deliveries")
        finally:
            receiver.stop()
        verifier = Webhook(hook["data"]["secret"])
        verified = [verifier.verify(request.body, request.headers) for request in delivered]
        payloads = sorted(verified, key=lambda payload: str(payload["timestamp"]))
        assert [payload["type"] for payload in payloads] == [
            "training.started",
            "training.epoch",
            "training.epoch",
            "training.completed",
        ]
        assert [payload["data"]["epoch"] for payload in payloads[1:3]] == [1, 2]
        # Each event was refused three times first, and kept its webhook-id across the retries.
        for request in delivered:
            assert len(receiver.of(request.message_id)) == 4

    def _train_and_check(self, stack: Stack) -> None:
        started = stack.start("full", epochs=2, plots=False)
        assert started["status"] == "starting"
        job = wait_training(stack.http, "admin", "demo", "full")
        assert job["status"] == "completed", job
        assert job["progress"]["currentEpoch"] == 2
        assert job["progress"]["totalEpochs"] == 2
        assert job["epochMetrics"]["metrics/mAP50-95(B)"] is not None
        assert job["executor"] == "local"
        model = ok(stack.http.get("/api/models/admin/demo/full"))["model"]
        assert model["status"] == "completed"
        assert [row["epoch"] for row in model["trainResults"]] == [0, 1]
        files = ok(stack.http.get("/api/models/admin/demo/full/files"))["files"]
        assert files[0]["name"] == "best.pt"
        weights = httpx.get(files[0]["downloadUrl"], timeout=60)
        assert weights.status_code == 200
        assert len(weights.content) == files[0]["size"] > 1_000_000
        logs = ok(stack.http.get(f"/api/jobs/{job['id']}/logs", params={"limit": 1000}))["entries"]
        text = "\n".join(entry["content"] for entry in logs)
        assert "started on local" in text
        assert "2 epochs completed" in text
        actions = [event["action"] for event in ok(stack.http.get("/api/activity", params={"limit": 100}))["data"]]
        assert "training.started" in actions
        assert "training.completed" in actions
        # The runner's key is gone from the key list and stops working soon after the run.
        keys = ok(stack.http.get("/api/api-keys"))["keys"]
        assert all(not key["name"].startswith("job ") for key in keys)

    def test_cancel_mid_run_stops_the_trainer(self, stack: Stack) -> None:
        stack.start("cancel-me", epochs=60, plots=False, val=False)
        wait_for(lambda: stack.job("cancel-me"), lambda job: job["progress"]["currentEpoch"] >= 1, 180, what="epoch 1")
        cancelled = ok(stack.http.delete("/api/models/admin/demo/cancel-me/training"))
        assert cancelled["status"] == "cancelled"
        at_cancel = stack.job("cancel-me")["progress"]["currentEpoch"]
        work_root = stack.data.resolve() / "jobs"
        job_id = stack.job("cancel-me")["id"]
        wait_for(lambda: runner_pids(work_root, job_id), lambda pids: not pids, 120, what="the runner to exit")
        job = stack.job("cancel-me")
        assert job["status"] == "cancelled"
        # The trainer reads the cancel from its next epoch_end reply (sent in the background, so it may
        # take effect an epoch or two later with sub-second epochs like these).
        assert job["progress"]["currentEpoch"] <= at_cancel + 3
        assert job["progress"]["currentEpoch"] < 60

    def test_a_killed_runner_fails_the_job_with_the_reason(self, stack: Stack) -> None:
        stack.start("killed", epochs=60, plots=False, val=False)
        job = wait_for(lambda: stack.job("killed"), lambda job: job["status"] == "running", 180, what="running")
        work_root = stack.data.resolve() / "jobs"
        pids = wait_for(lambda: runner_pids(work_root, job["id"]), bool, 30, what="the runner")
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        job = wait_training(stack.http, "admin", "demo", "killed", timeout=60)
        assert job["status"] == "failed"
        assert job["error"]["code"] == "RUNNER_FAILED"
        assert "killed by SIGKILL" in job["error"]["message"]
        model = ok(stack.http.get("/api/models/admin/demo/killed"))["model"]
        assert model["status"] == "failed"

    def test_a_failing_run_reports_ultralytics_error(self, stack: Stack) -> None:
        stack.start("bad-args", epochs=1, optimizer="NoSuchOptimizer")
        job = wait_training(stack.http, "admin", "demo", "bad-args", timeout=180)
        assert job["status"] == "failed"
        assert "NoSuchOptimizer" in job["error"]["message"]

    def test_a_hostile_base_checkpoint_is_refused_without_running(self, stack: Stack, tmp_path: Path) -> None:
        marker = tmp_path / "pwned"
        evil = malicious_checkpoint(tmp_path / "evil.pt", marker)
        project = create_model(stack.http, "demo", "placeholder")["project"]
        project_id = ok(stack.http.get(f"/api/projects/admin/{project}"))["project"]["id"]
        with evil.open("rb") as handle:
            files = {"file": ("evil.pt", handle, "application/octet-stream")}
            uploaded = ok(
                stack.http.post("/api/models", data={"projectId": project_id, "name": "evil"}, files=files), 201
            )
        stack.start("from-evil", epochs=1, model=f"ul://admin/demo/{uploaded['model']}")
        job = wait_training(stack.http, "admin", "demo", "from-evil", timeout=180)
        assert job["status"] == "failed"
        assert "system" in job["error"]["message"]
        assert not marker.exists()


class TestServerLoss:
    def test_a_killed_server_takes_its_runner_along_and_the_restart_fails_the_job(self, tmp_path: Path) -> None:
        stack = Stack(tmp_path, YOLOSTACK_JOBS__HEARTBEAT_TIMEOUT_SECONDS="3")
        try:
            upload_dataset(stack.http, tmp_path, "shapes")
            stack.start("orphan", epochs=60, plots=False, val=False)
            job = wait_for(lambda: stack.job("orphan"), lambda job: job["status"] == "running", 180, what="running")
            work_root = stack.data.resolve() / "jobs"
            assert runner_pids(work_root, job["id"])
            stack.server.process.send_signal(signal.SIGKILL)
            stack.server.process.wait(timeout=10)
            wait_for(lambda: runner_pids(work_root, job["id"]), lambda pids: not pids, 30, what="the runner to die")
            time.sleep(1)
            stack.restart()
            job = wait_training(stack.http, "admin", "demo", "orphan", timeout=60)
            assert job["status"] == "failed"
            assert job["error"]["code"] == "WORKER_LOST"
        finally:
            stack.server.stop()
