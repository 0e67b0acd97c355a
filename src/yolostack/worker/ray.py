"""The ``ray`` executor: each job is a Ray job, submitted over the Jobs REST API of a cluster's dashboard.

The server never imports ``ray``; it speaks HTTP to ``settings.ray_address`` (e.g. http://head:8265).
The Ray job runs the same ``python -m yolostack.worker.runner`` as the local executor, in a fresh
temporary directory on whichever node Ray places it, with only environment variables as its
runtime environment (the node must have yolostack installed at the same Python path). The handle is
Ray's ``submission_id`` (``<job id>-<attempt>``), so any server can poll or stop any job, and a
restarted server adopts the runs it had submitted.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any

import httpx

from yolostack.config import Settings
from yolostack.tables import Executor
from yolostack.worker.executors import ExecutorUnavailable, RunState, runner_environment

TIMEOUT = httpx.Timeout(30.0, connect=5.0)
RAY_TOKEN_FILE = Path.home() / ".ray" / "auth_token"
RUNNING_STATES = {"PENDING", "RUNNING"}
RUNNER_FAILED = "RUNNER FAILED: "
# A share of the node's accelerator_type resource (every GPU node has 1 of it) only pins the job to
# nodes of that type; the GPU itself is asked for with entrypoint_num_gpus.
ACCELERATOR_SHARE = 0.001
# Ray's spelling of the accelerator types it labels nodes with (ray.util.accelerators).
RAY_ACCELERATORS = {
    label.upper(): label
    for label in ("V100", "P100", "T4", "P4", "K80", "A10G", "L4", "L40S", "A100", "A100-40G", "A100-80G")
    + ("H100", "H200", "H20", "B200", "B300", "GB200", "GB300", "RTX-PRO-6000")
}
GENERIC_GPU_TYPES = {"", "cpu", "gpu", "any", "auto"}


class RayAuthError(ExecutorUnavailable):
    """The cluster refused our token: jobs wait until the operator fixes YOLOSTACK_RAY_TOKEN."""


def accelerator_type(gpu_type: str | None) -> str | None:
    """The Ray ``accelerator_type`` label for a job's ``gpuType``, or None when any GPU will do.

    Known data-centre names are matched case-insensitively and without a vendor prefix or memory
    suffix ("nvidia-h100-80gb" → "H100", "a100 80gb" → "A100-80G"); "rtx-4090" → "GeForce-RTX-4090"
    (Ray's label for consumer cards); anything else is used as given, so an exact Ray label works.
    """
    if gpu_type is None or gpu_type.strip().lower() in GENERIC_GPU_TYPES:
        return None
    name = re.sub(r"[\s_]+", "-", gpu_type.strip().upper()).removeprefix("NVIDIA-")
    if name in RAY_ACCELERATORS:
        return RAY_ACCELERATORS[name]
    if a100 := re.fullmatch(r"A100-(40|80)G?B?", name):
        return f"A100-{a100.group(1)}G"
    if (sized := re.fullmatch(r"(.+?)-\d+G?B?", name)) and sized.group(1) in RAY_ACCELERATORS:
        return RAY_ACCELERATORS[sized.group(1)]
    if rtx := re.fullmatch(r"(?:GEFORCE-)?RTX-?(\d{4})(-TI)?", name):
        return f"GeForce-RTX-{rtx.group(1)}" + ("-Ti" if rtx.group(2) else "")
    return gpu_type.strip()


def entrypoint(python: str) -> str:
    """The shell command Ray runs: the runner in a temporary directory of its own, removed afterwards.

    Ray stops a job with SIGTERM to the shell and its children; the TERM trap makes the shell exit so
    that its EXIT trap still removes the directory (datasets and checkpoints can be large).
    """
    return (
        'work="$(mktemp -d "${TMPDIR:-/tmp}/yolostack-job-XXXXXX")" || exit 1; '
        "trap 'cd / && rm -rf \"$work\"' EXIT; trap 'exit 143' TERM INT; "
        f'cd "$work" && {shlex.quote(python)} -m yolostack.worker.runner'
    )


def failure_detail(message: str | None, logs: str | None) -> str:
    """Why a Ray job failed, in words: the runner's own last ``RUNNER FAILED:`` line when it printed one."""
    for text in (logs, message):
        for line in reversed((text or "").splitlines()):
            if line.strip().startswith(RUNNER_FAILED):
                return line.strip().removeprefix(RUNNER_FAILED)[:1000]
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    if not lines:
        return "the Ray job failed"
    errors = [line for line in lines[1:] if "Error" in line or "Exception" in line]
    return (f"{lines[0]}: {errors[-1]}" if errors else lines[0])[:1000]


class RayExecutor:
    """Jobs as Ray jobs on the cluster whose dashboard answers at ``address``."""

    kind = Executor.ray

    def __init__(
        self, address: str, *, token: str | None = None, cpus_per_job: float = 1, python: str = sys.executable
    ) -> None:
        self.address = address.rstrip("/")
        self.cpus_per_job = cpus_per_job
        self.python = python
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=self.address, headers=headers, timeout=TIMEOUT)

    @classmethod
    def from_settings(cls, settings: Settings) -> RayExecutor:
        if not settings.ray_address:
            raise ValueError("the ray executor needs YOLOSTACK_RAY_ADDRESS (a Ray dashboard, e.g. http://head:8265)")
        token = settings.ray_token or _token_from_file(RAY_TOKEN_FILE)
        return cls(settings.ray_address, token=token, cpus_per_job=settings.jobs.cpus_per_job)

    def submission(self, job_id: str, attempt: int, spec: dict[str, Any]) -> dict[str, Any]:
        """The body of ``POST /api/jobs/`` for one attempt of a job."""
        body: dict[str, Any] = {
            "entrypoint": entrypoint(self.python),
            "submission_id": f"{job_id}-{attempt}",
            "entrypoint_num_cpus": self.cpus_per_job,
            "entrypoint_num_gpus": int(spec.get("gpus") or 0),
            "runtime_env": {"env_vars": runner_environment(spec)},
            "metadata": {"yolostack_job_id": job_id, "attempt": str(attempt), "kind": str(spec.get("kind", ""))},
        }
        accelerator = accelerator_type(spec.get("gpuType")) if body["entrypoint_num_gpus"] else None
        if accelerator:
            body["entrypoint_resources"] = {f"accelerator_type:{accelerator}": ACCELERATOR_SHARE}
        return body

    async def launch(self, job_id: str, attempt: int, spec: dict[str, Any]) -> str:
        body = self.submission(job_id, attempt, spec)
        handle: str = body["submission_id"]
        response = await self._request("POST", "/api/jobs/", json=body)
        if response.status_code == 200:
            return handle
        if "already exists" in response.text:
            return handle  # an earlier try of this very submission reached Ray (resubmitting is idempotent)
        if response.status_code >= 500:
            raise ExecutorUnavailable(f"Ray at {self.address} could not take the job: {_summary(response)}")
        raise RuntimeError(f"Ray at {self.address} refused the job: {_summary(response)}")

    async def poll(self, handle: str) -> RunState | None:
        response = await self._request("GET", f"/api/jobs/{handle}")
        if response.status_code == 404:
            # Ray keeps job records in its GCS: a cluster restarted without GCS fault tolerance forgets them.
            return RunState(running=False, detail=f"the Ray cluster has no job {handle} (was it restarted?)")
        if response.status_code != 200:
            raise ExecutorUnavailable(f"Ray at {self.address}: {_summary(response)}")
        info = response.json()
        status = info.get("status")
        if status in RUNNING_STATES:
            return RunState(running=True)
        if status == "SUCCEEDED":
            return RunState(running=False, exit_code=0)
        if status == "STOPPED":
            return RunState(running=False, detail="the Ray job was stopped")
        code = info.get("driver_exit_code")
        message = info.get("message")
        logs = await self.logs(handle) if RUNNER_FAILED not in (message or "") else None
        return RunState(
            running=False, exit_code=code if isinstance(code, int) and code else 1, detail=failure_detail(message, logs)
        )

    async def logs(self, handle: str) -> str | None:
        """Everything the job printed (Ray keeps it on the node that ran it), or None when unavailable."""
        try:
            response = await self._request("GET", f"/api/jobs/{handle}/logs")
        except ExecutorUnavailable:
            return None
        if response.status_code != 200:
            return None
        logs = response.json().get("logs")
        return logs if isinstance(logs, str) else None

    async def stop(self, handle: str) -> None:
        response = await self._request("POST", f"/api/jobs/{handle}/stop")
        if response.status_code not in (200, 404):  # 404: nothing to stop
            raise ExecutorUnavailable(f"Ray at {self.address} could not stop {handle}: {_summary(response)}")

    async def close(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, json: dict[str, Any] | None = None) -> httpx.Response:
        try:
            response = await self._http.request(method, path, json=json)
        except httpx.TransportError as error:
            raise ExecutorUnavailable(f"Ray at {self.address} does not answer: {error!r}") from error
        if response.status_code in (401, 403):
            hint = "check YOLOSTACK_RAY_TOKEN" if self.token else "set YOLOSTACK_RAY_TOKEN"
            raise RayAuthError(f"Ray at {self.address} refused our token ({_summary(response)}); {hint}")
        return response


def _token_from_file(path: Path) -> str | None:
    """Ray's own token (written by ``ray start`` with token authentication), when this host has one."""
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _summary(response: httpx.Response) -> str:
    """Status and the last line of Ray's answer (its errors are Python tracebacks; the last line says why)."""
    lines = [line.strip() for line in response.text.splitlines() if line.strip()]
    last = lines[-1][:500] if lines else ""
    return f"HTTP {response.status_code}" + (f" {last}" if last else "")
