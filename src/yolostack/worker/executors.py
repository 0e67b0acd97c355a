"""Where jobs run. One interface, two executors: ``local`` (a child process of this server per job)
and ``ray`` (a Ray job on a cluster, ``worker/ray.py``). Both start the same runner entrypoint,
``python -m yolostack.worker.runner``, which talks to the server only over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from yolostack.core.processes import child_environment, owner_is_gone, owner_tag, spawn, terminate
from yolostack.tables import Executor

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0
LOG_NAME = "runner.log"
# An ended run's log (``<job>-<attempt>.log``) is kept this long for the operator, then removed.
LOG_KEPT_SECONDS = 30 * 24 * 3600.0
OWNER_FILE = ".owner"  # the server process whose runner works here (core.processes.owner_tag)
# An ended run's state waits this long for the dispatcher to read it (a job that completed over HTTP is
# not polled again).
ENDED_KEPT_SECONDS = 3600.0


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


@dataclass
class _Run:
    process: asyncio.subprocess.Process
    work: Path
    watcher: asyncio.Task[None] | None = None
    ended: RunState | None = None
    ended_at: float = 0.0


class LocalExecutor:
    """Each job in its own child process and working directory; a crash or OOM there leaves the server up.

    The child is reaped as soon as it ends (whether or not anyone polls it again), its working directory
    (runs, datasets, weights, ultralytics' config, its HOME and TMPDIR) is removed, and it dies with the server.
    """

    kind = Executor.local

    def __init__(self, work_root: Path) -> None:
        self.work_root = work_root
        # Handles name this server instance: after a restart, an old handle is not ours to poll.
        self.instance = secrets.token_hex(4)
        self._runs: dict[str, _Run] = {}
        self.sweep()

    def sweep(self) -> list[Path]:
        """Clear the working directories of runners whose server is gone (killed: they died with it), and
        the logs of runs that ended more than ``LOG_KEPT_SECONDS`` ago."""
        removed = _purge_logs(self.work_root)
        for work in self.work_root.glob("*/"):
            try:
                owner = (work / OWNER_FILE).read_text().strip()
            except OSError:
                continue
            if owner_is_gone(owner):
                _clear(work)
                removed.append(work)
        return removed

    async def launch(self, job_id: str, attempt: int, spec: dict[str, Any]) -> str:
        work = self.work_root / f"{job_id}-{attempt}"
        work.mkdir(parents=True, exist_ok=True)
        (work / OWNER_FILE).write_text(owner_tag())
        spec = {**spec, "workDir": str(work)}
        # The runner points HOME, TMPDIR and ultralytics' folders into ``work`` itself (it does on Ray too).
        env = child_environment(runner_environment(spec))
        with (work / LOG_NAME).open("ab") as log:
            process = await spawn(
                [sys.executable, "-m", "yolostack.worker.runner"], cwd=work, env=env, stdout=log, stderr=log
            )
        handle = f"{self.instance}:{process.pid}"
        run = self._runs[handle] = _Run(process, work)
        run.watcher = asyncio.create_task(self._watch(run), name=f"runner {handle}")
        self._forget_old()
        await asyncio.to_thread(_purge_logs, self.work_root)
        return handle

    async def _watch(self, run: _Run) -> None:
        """Reap the runner when it ends, keep how it ended for ``poll``, and remove its working directory
        (its log stays beside it, as ``<job>-<attempt>.log``, for the operator)."""
        code = await run.process.wait()
        detail = exit_detail(code, run.work / LOG_NAME)
        await asyncio.to_thread(_clear, run.work)
        run.ended, run.ended_at = RunState(running=False, exit_code=code, detail=detail), time.monotonic()

    def _forget_old(self) -> None:
        now = time.monotonic()
        for handle, run in list(self._runs.items()):
            if run.ended is not None and now - run.ended_at > ENDED_KEPT_SECONDS:
                del self._runs[handle]

    async def poll(self, handle: str) -> RunState | None:
        run = self._runs.get(handle)
        if run is None:
            return None
        if run.ended is None:
            return RunState(running=True)
        del self._runs[handle]
        return run.ended

    def handles(self) -> list[str]:
        return [handle for handle, run in self._runs.items() if run.ended is None]

    async def stop(self, handle: str) -> None:
        run = self._runs.get(handle)
        if run is None or run.ended is not None:
            return
        await terminate(run.process, grace=STOP_TIMEOUT)
        if run.watcher is not None:
            await run.watcher

    async def close(self) -> None:
        for handle in list(self._runs):
            await self.stop(handle)
        self._runs.clear()


def _purge_logs(root: Path) -> list[Path]:
    cutoff = time.time() - LOG_KEPT_SECONDS
    removed = []
    for log in root.glob("*.log"):
        with contextlib.suppress(OSError):
            if log.stat().st_mtime < cutoff:
                log.unlink()
                removed.append(log)
    return removed


def _clear(work: Path) -> None:
    with contextlib.suppress(OSError):
        (work / LOG_NAME).replace(work.with_name(f"{work.name}.log"))
    shutil.rmtree(work, ignore_errors=True)


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
