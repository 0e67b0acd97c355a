"""The Ray executor against a real Ray head on loopback (``scripts/services``), over its Jobs REST API.

Where a test needs the runner to behave a certain way (succeed at once, run until stopped), the
executor's ``python`` is a small shell script standing in for the interpreter; the failure test runs
the real ``python -m yolostack.worker.runner``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import stat
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.server import free_port
from tests.worker.ray_cluster import RayCluster, ray_cluster
from yolostack.config import Settings
from yolostack.tables import Executor
from yolostack.worker import ray as ray_module
from yolostack.worker.executors import ExecutorUnavailable, RunState
from yolostack.worker.ray import RayAuthError, RayExecutor, accelerator_type, failure_detail

live = [pytest.mark.slow, pytest.mark.ray]


def fake_python(directory: Path, body: str) -> str:
    """An executable that stands in for ``python -m yolostack.worker.runner`` and runs ``body`` instead."""
    script = directory / f"fake-python-{secrets.token_hex(3)}"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def spec(**fields: Any) -> dict[str, Any]:
    base = {"jobId": "job", "kind": "export", "modelId": "model", "serverUrl": "http://127.0.0.1:9", "apiKey": "k"}
    return {**base, "gpus": 0, "export": {"format": "onnx", "args": {}}, **fields}


def new_job_id() -> str:
    # The head outlives the test run and remembers every submission id.
    return f"test-{secrets.token_hex(4)}"


async def until(executor: RayExecutor, handle: str, done: Any, timeout: float = 120) -> RunState:
    deadline = time.monotonic() + timeout
    while True:
        state = await executor.poll(handle)
        assert state is not None
        if done(state):
            return state
        assert time.monotonic() < deadline, f"{handle} still {state} after {timeout}s"
        await asyncio.sleep(0.5)


def ended(state: RunState) -> bool:
    return not state.running


@pytest.fixture(scope="module")
def cluster() -> RayCluster:
    return ray_cluster()


@pytest.fixture
async def make_executor(cluster: RayCluster) -> AsyncIterator[Any]:
    made: list[RayExecutor] = []

    def make(python: str = sys.executable, token: str | None = cluster.token) -> RayExecutor:
        executor = RayExecutor(cluster.address, token=token, cpus_per_job=1, python=python)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        await executor.close()


@pytest.mark.usefixtures("cluster")
class TestLaunch:
    pytestmark = live

    async def test_runs_the_runner_in_a_fresh_directory_with_the_spec_and_succeeds(
        self, make_executor: Any, tmp_path: Path
    ) -> None:
        seen = tmp_path / "seen"
        python = fake_python(
            tmp_path, f'pwd > {seen}.cwd; echo "$@" > {seen}.args; printf %s "$YOLOSTACK_JOB_SPEC" > {seen}.spec'
        )
        executor: RayExecutor = make_executor(python)
        job_id = new_job_id()
        handle = await executor.launch(job_id, 1, spec(jobId=job_id))
        assert handle == f"{job_id}-1"
        state = await until(executor, handle, ended)
        assert state == RunState(running=False, exit_code=0)
        assert json.loads(Path(f"{seen}.spec").read_text())["jobId"] == job_id
        assert Path(f"{seen}.args").read_text().split() == ["-m", "yolostack.worker.runner"]
        work = Path(Path(f"{seen}.cwd").read_text().strip())
        assert work.name.startswith("yolostack-job-")
        assert not work.exists()  # removed when the runner ended

    async def test_resubmitting_the_same_attempt_is_idempotent(
        self, make_executor: Any, cluster: RayCluster, tmp_path: Path
    ) -> None:
        runs = tmp_path / "runs"
        executor: RayExecutor = make_executor(fake_python(tmp_path, f"echo ran >> {runs}"))
        job_id = new_job_id()
        first = await executor.launch(job_id, 1, spec())
        again = await executor.launch(job_id, 1, spec())
        assert again == first
        await until(executor, first, ended)
        assert runs.read_text().splitlines() == ["ran"]
        assert cluster.job(first)["status"] == "SUCCEEDED"

    async def test_a_failing_runner_reports_its_own_error(self, make_executor: Any) -> None:
        executor: RayExecutor = make_executor()  # the real runner; its server does not answer
        job_id = new_job_id()
        handle = await executor.launch(job_id, 1, spec(jobId=job_id, serverUrl=f"http://127.0.0.1:{free_port()}"))
        state = await until(executor, handle, ended, timeout=180)
        assert state.exit_code == 1
        assert state.detail is not None
        assert state.detail.startswith("ConnectError"), state.detail
        assert "RUNNER FAILED" not in state.detail

    async def test_stop_ends_a_running_job_and_cleans_up(
        self, make_executor: Any, cluster: RayCluster, tmp_path: Path
    ) -> None:
        cwd = tmp_path / "cwd"
        executor: RayExecutor = make_executor(fake_python(tmp_path, f"pwd > {cwd}; exec sleep 600"))
        handle = await executor.launch(new_job_id(), 2, spec())
        await until(executor, handle, lambda state: state.running and cwd.exists())
        await executor.stop(handle)
        state = await until(executor, handle, ended, timeout=60)
        assert state == RunState(running=False, detail="the Ray job was stopped")
        assert cluster.job(handle)["status"] == "STOPPED"
        assert not Path(cwd.read_text().strip()).exists()
        await executor.stop(handle)  # stopping an ended job is harmless

    async def test_a_gpu_job_runs_only_on_a_node_with_its_gpu_type(
        self, make_executor: Any, cluster: RayCluster, tmp_path: Path
    ) -> None:
        if cluster.resources().get("accelerator_type:T4", 0) < 1:
            pytest.skip("this head has no (stand-in) T4 GPU; scripts/services gives a GPU-less head one")
        seen = tmp_path / "cuda"
        executor: RayExecutor = make_executor(fake_python(tmp_path, f'printf %s "$CUDA_VISIBLE_DEVICES" > {seen}'))
        placed = await executor.launch(new_job_id(), 1, spec(gpus=1, gpuType="t4"))
        assert await until(executor, placed, ended) == RunState(running=False, exit_code=0)
        assert seen.read_text() == "0"  # Ray gave it the GPU
        waiting = await executor.launch(new_job_id(), 1, spec(gpus=1, gpuType="h100"))
        try:
            await asyncio.sleep(3)
            # No H100 here: Ray keeps the job pending, which the executor reports as still running.
            assert await executor.poll(waiting) == RunState(running=True)
            assert cluster.job(waiting)["status"] == "PENDING"
        finally:
            # Ray queues the stop of a job it has not placed (it runs if the job ever gets placed); an
            # unplaced job fails after RAY_JOB_START_TIMEOUT_SECONDS (15 minutes) anyway.
            await executor.stop(waiting)


@pytest.mark.usefixtures("cluster")
class TestPoll:
    pytestmark = live

    async def test_an_unknown_submission_has_ended(self, make_executor: Any) -> None:
        executor: RayExecutor = make_executor()
        state = await executor.poll("never-submitted-1")
        assert state is not None
        assert not state.running
        assert state.detail == "the Ray cluster has no job never-submitted-1 (was it restarted?)"

    async def test_a_wrong_token_is_refused_with_a_clear_error(self, make_executor: Any) -> None:
        executor: RayExecutor = make_executor(token="not-the-token")
        with pytest.raises(RayAuthError, match="refused our token.*check YOLOSTACK_RAY_TOKEN"):
            await executor.launch(new_job_id(), 1, spec())
        with pytest.raises(ExecutorUnavailable, match="refused our token"):
            await executor.poll("anything-1")

    async def test_no_token_is_refused_with_a_hint(self, make_executor: Any, cluster: RayCluster) -> None:
        if cluster.token is None:
            pytest.skip("this head does not use token authentication")
        executor: RayExecutor = make_executor(token=None)
        with pytest.raises(RayAuthError, match="set YOLOSTACK_RAY_TOKEN"):
            await executor.poll("anything-1")


class TestUnreachable:
    async def test_a_cluster_that_does_not_answer_is_unavailable(self) -> None:
        executor = RayExecutor(f"http://127.0.0.1:{free_port()}", token="t")
        try:
            with pytest.raises(ExecutorUnavailable, match="does not answer"):
                await executor.launch("job", 1, spec())
            with pytest.raises(ExecutorUnavailable):
                await executor.poll("job-1")
            with pytest.raises(ExecutorUnavailable):
                await executor.stop("job-1")
        finally:
            await executor.close()


class TestSubmission:
    def test_body_carries_resources_and_the_runner_environment(self) -> None:
        executor = RayExecutor("http://head:8265/", cpus_per_job=3, python="/opt/venv/bin/python")
        body = executor.submission("job_1", 2, spec(jobId="job_1", gpus=1, gpuType="A100 80GB"))
        assert executor.kind == Executor.ray
        assert body["submission_id"] == "job_1-2"
        assert body["entrypoint_num_cpus"] == 3
        assert body["entrypoint_num_gpus"] == 1
        assert body["entrypoint_resources"] == {"accelerator_type:A100-80G": 0.001}
        assert body["entrypoint"].endswith("/opt/venv/bin/python -m yolostack.worker.runner")
        env = body["runtime_env"]["env_vars"]
        assert json.loads(env["YOLOSTACK_JOB_SPEC"])["jobId"] == "job_1"
        assert set(body["runtime_env"]) == {"env_vars"}  # nothing to upload

    def test_a_cpu_job_asks_for_no_gpu(self) -> None:
        body = RayExecutor("http://head:8265").submission("job_1", 1, spec(gpuType=None))
        assert body["entrypoint_num_gpus"] == 0
        assert "entrypoint_resources" not in body

    @pytest.mark.parametrize(
        ("gpu_type", "label"),
        [
            ("h100", "H100"),
            ("NVIDIA H100 80GB", "H100"),
            ("a100-40gb", "A100-40G"),
            ("rtx-4090", "GeForce-RTX-4090"),
            ("L40S", "L40S"),
            ("Custom-Label", "Custom-Label"),
            ("cpu", None),
            (None, None),
        ],
    )
    def test_gpu_type_maps_to_rays_accelerator_label(self, gpu_type: str | None, label: str | None) -> None:
        assert accelerator_type(gpu_type) == label


class TestFromSettings:
    def test_token_and_cpus_come_from_settings(self) -> None:
        settings = Settings(ray_address="http://head:8265", ray_token="secret", jobs={"cpus_per_job": 4})
        executor = RayExecutor.from_settings(settings)
        assert executor.address == "http://head:8265"
        assert executor.cpus_per_job == 4
        assert executor.token == "secret"
        assert executor.python == sys.executable

    def test_without_a_token_setting_rays_own_token_file_is_used(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        (tmp_path / "auth_token").write_text("from-file\n")
        monkeypatch.setattr(ray_module, "RAY_TOKEN_FILE", tmp_path / "auth_token")
        assert RayExecutor.from_settings(Settings(ray_address="http://head:8265")).token == "from-file"
        monkeypatch.setattr(ray_module, "RAY_TOKEN_FILE", tmp_path / "missing")
        assert RayExecutor.from_settings(Settings(ray_address="http://head:8265")).token is None

    def test_an_address_is_required(self) -> None:
        with pytest.raises(ValueError, match="YOLOSTACK_RAY_ADDRESS"):
            RayExecutor.from_settings(Settings(jobs={"executor": "ray"}))


class TestFailureDetail:
    def test_the_runners_line_wins(self) -> None:
        message = (
            "Job entrypoint command failed with exit code 1, last available logs:\nRUNNER FAILED: ValueError: bad\n"
        )
        assert failure_detail(message, None) == "ValueError: bad"

    def test_without_it_rays_reason_and_the_last_error(self) -> None:
        message = "Job entrypoint command failed with exit code 137\nTraceback\nMemoryError: out\nbye"
        assert failure_detail(message, "") == "Job entrypoint command failed with exit code 137: MemoryError: out"
        assert failure_detail(None, None) == "the Ray job failed"
