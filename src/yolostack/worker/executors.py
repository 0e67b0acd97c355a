"""Where jobs run. One interface, two executors: ``local`` (a child process of this server per job)
and ``ray`` (a Ray job on a cluster, ``worker/ray.py``). Both start the same runner entrypoint,
``python -m yolostack.worker.runner``, which talks to the server only over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from yolostack.tables import Executor

logger = logging.getLogger(__name__)

# Variables that would change how ultralytics behaves inside the runner (pytest's own make it think
# it is under test and switch the Platform callback off; GitHub's do the same).
SCRUBBED_PREFIXES = ("PYTEST_", "GITHUB_", "ULTRALYTICS_", "YOLOSTACK_")
STOP_TIMEOUT = 10.0
LOG_NAME = "runner.log"


class ExecutorUnavailable(Exception):
    """The executor cannot take work right now (e.g. the Ray cluster does not answer); the job waits."""


@dataclass(frozen=True)
class RunState:
    running: bool
    exit_code: int | None = None
    detail: str | None = None  # why it ended, in words (the runner's last error line, a signal)


class JobExecutor(Protocol):
    kind: Executor

    async def launch(self, job_id: str, attempt: int, spec: dict[str, Any]) -> str:
        """Start the runner for ``spec``; returns a handle that ``poll`` and ``stop`` understand."""

    async def poll(self, handle: str) -> RunState | None:
        """The run's state; None when this executor does not know the handle (another server's child)."""

    async def stop(self, handle: str) -> None: ...

    async def close(self) -> None: ...


def runner_environment(spec: dict[str, Any]) -> dict[str, str]:
    """The runner's variables: the job spec, and ultralytics kept offline and out of the user's config."""
    return {
        "YOLOSTACK_JOB_SPEC": json.dumps(spec),
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "False",
        "ORT_DISABLE_TELEMETRY": "1",
        "PYTHONUNBUFFERED": "1",
    }


def die_with_parent() -> None:
    """In the child before exec: its own process group, and SIGKILL when the server dies (Linux)."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class LocalExecutor:
    """Each job in its own child process and working directory; a crash or OOM there leaves the server up."""

    kind = Executor.local

    def __init__(self, work_root: Path) -> None:
        self.work_root = work_root
        # Handles name this server instance: after a restart, an old handle is not ours to poll.
        self.instance = secrets.token_hex(4)
        self._children: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    async def launch(self, job_id: str, attempt: int, spec: dict[str, Any]) -> str:
        work = self.work_root / f"{job_id}-{attempt}"
        work.mkdir(parents=True, exist_ok=True)
        spec = {**spec, "workDir": str(work)}
        env = {key: value for key, value in os.environ.items() if not key.startswith(SCRUBBED_PREFIXES)}
        env |= runner_environment(spec)
        log = (work / LOG_NAME).open("ab")
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "yolostack.worker.runner"],
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        finally:
            log.close()
        handle = f"{self.instance}:{child.pid}"
        self._children[handle] = (child, work)
        return handle

    async def poll(self, handle: str) -> RunState | None:
        found = self._children.get(handle)
        if found is None:
            return None
        child, work = found
        code = child.poll()
        if code is None:
            return RunState(running=True)
        self._children.pop(handle, None)
        return RunState(running=False, exit_code=code, detail=exit_detail(code, work / LOG_NAME))

    def handles(self) -> list[str]:
        return list(self._children)

    async def stop(self, handle: str) -> None:
        found = self._children.get(handle)
        if found is None:
            return
        child = found[0]
        if child.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(child.wait), timeout=STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            await asyncio.to_thread(child.wait)

    async def close(self) -> None:
        for handle in list(self._children):
            await self.stop(handle)
        self._children.clear()


def exit_detail(code: int, log: Path) -> str:
    """Words for how a runner ended: the signal that killed it, or the last error line it printed."""
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        suffix = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"killed by {name}{suffix}"
    if code == 0:
        return "the runner exited without reporting a result"
    return last_error_line(log) or f"the runner exited with status {code}"


def last_error_line(log: Path, tail_bytes: int = 64 * 1024) -> str | None:
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - tail_bytes))
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        text = line.strip()
        if text and ("Error" in text or "Exception" in text or text.startswith("RUNNER FAILED")):
            return text.removeprefix("RUNNER FAILED: ")[:1000]
    return next((line.strip()[:1000] for line in reversed(lines) if line.strip()), None)
