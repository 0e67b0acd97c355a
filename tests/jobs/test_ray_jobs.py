"""Training through the Ray executor: a live ``yolostack serve`` submits the runner as a Ray job to the
head that ``scripts/services`` runs on loopback; the runner trains with the real ``ultralytics`` trainer
and reports back over HTTP, exactly as under the local executor."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.jobs.helpers import LiveStack, ok, upload_dataset, wait_for, wait_training
from tests.worker.ray_cluster import RayCluster, ray_cluster

pytestmark = [pytest.mark.slow, pytest.mark.ray]

RAY_ENDED = ("SUCCEEDED", "FAILED", "STOPPED")


class RayStack(LiveStack):
    def __init__(self, tmp: Path, cluster: RayCluster) -> None:
        env = {
            "YOLOSTACK_JOBS__EXECUTOR": "ray",
            "YOLOSTACK_RAY_ADDRESS": cluster.address,
            "YOLOSTACK_JOBS__CPUS_PER_JOB": "1",
            # Stop a cancelled run's Ray job at once instead of waiting for the trainer to notice.
            "YOLOSTACK_JOBS__CANCEL_GRACE_SECONDS": "0",
        }
        if cluster.token:
            env["YOLOSTACK_RAY_TOKEN"] = cluster.token
        self.cluster = cluster
        super().__init__(tmp, env)

    def ray_job(self, job: dict[str, Any]) -> dict[str, Any]:
        """The Ray job of the job's first attempt (its submission id is ``<job id>-<attempt>``)."""
        return dict(self.cluster.job(f"{job['id']}-1"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayStack]:
    cluster = ray_cluster()
    tmp = tmp_path_factory.mktemp("ray-jobs")
    stack = RayStack(tmp, cluster)
    try:
        upload_dataset(stack.http, tmp, "shapes")
        yield stack
    finally:
        stack.server.stop()


class TestRayTraining:
    def test_trains_to_completion_on_the_cluster_with_weights(self, stack: RayStack) -> None:
        assert stack.start("on-ray", epochs=2, plots=False)["status"] == "starting"
        job = wait_training(stack.http, "admin", "demo", "on-ray", timeout=600)
        assert job["status"] == "completed", (job, stack.log_text(job))
        assert job["executor"] == "ray"
        assert job["progress"]["currentEpoch"] == 2
        files = ok(stack.http.get("/api/models/admin/demo/on-ray/files"))["files"]
        assert files, "no weights attached"
        assert files[0]["name"] == "best.pt"
        assert f"started on ray ({job['id']}-1)" in stack.log_text(job)
        ray_job = wait_for(lambda: stack.ray_job(job), lambda ray: ray["status"] in RAY_ENDED, 60, what="Ray's end")
        assert ray_job["status"] == "SUCCEEDED", ray_job

    def test_cancel_mid_run_stops_the_ray_job(self, stack: RayStack) -> None:
        stack.start("cancel-on-ray", epochs=60, plots=False, val=False)
        running = wait_for(
            lambda: stack.job("cancel-on-ray"), lambda job: job["progress"]["currentEpoch"] >= 1, 600, what="epoch 1"
        )
        assert stack.ray_job(running)["status"] == "RUNNING"
        assert ok(stack.http.delete("/api/models/admin/demo/cancel-on-ray/training"))["status"] == "cancelled"
        ray_job = wait_for(
            lambda: stack.ray_job(running), lambda ray: ray["status"] in RAY_ENDED, 120, what="the Ray job to end"
        )
        assert ray_job["status"] == "STOPPED", ray_job
        job = stack.job("cancel-on-ray")
        assert job["status"] == "cancelled"
        assert job["progress"]["currentEpoch"] < 60
        assert "stopped after cancellation" in stack.log_text(job)

    def test_a_restarted_server_adopts_the_run_it_had_submitted(self, stack: RayStack) -> None:
        stack.start("adopted", epochs=8, plots=False, val=False)
        running = wait_for(
            lambda: stack.job("adopted"), lambda job: job["progress"]["currentEpoch"] >= 1, 600, what="epoch 1"
        )
        stack.server.process.send_signal(signal.SIGKILL)
        stack.server.process.wait(timeout=10)
        time.sleep(2)
        assert stack.ray_job(running)["status"] == "RUNNING"  # the run does not depend on the server process
        stack.restart()
        job = wait_training(stack.http, "admin", "demo", "adopted", timeout=600)
        assert job["status"] == "completed", (job, stack.log_text(job))
        assert job["progress"]["currentEpoch"] == 8

        # The trainer uploads best.pt while it reports the end: the weights may land a moment after "completed".
        def weights() -> list[dict[str, Any]]:
            files: list[dict[str, Any]] = ok(stack.http.get("/api/models/admin/demo/adopted/files"))["files"]
            return files

        assert wait_for(weights, bool, 60, what="the weights")
