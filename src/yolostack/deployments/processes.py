"""Replica processes of the local backend: started ahead of need, handed their spec, stopped.

A spare interpreter (``python -m yolostack.deployments.replica`` with no spec yet) imports everything slow
to import and waits on stdin; starting a replica hands a spare its spec as one JSON line, so a cold start
only loads the model. Replicas run in their own process group and die with the server (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from yolostack.deployments.replica import ReplicaSpec
from yolostack.worker.executors import SCRUBBED_PREFIXES, die_with_parent

REPLICA_ENVIRONMENT = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "False", "ORT_DISABLE_TELEMETRY": "1"}


class ReplicaProcesses:
    def __init__(self, work_dir: Path, spares: int) -> None:
        self.work_dir = work_dir
        self.spares = spares
        self._pool: list[asyncio.subprocess.Process] = []

    async def start(self, spec: ReplicaSpec) -> asyncio.subprocess.Process:
        """A replica for ``spec``: a spare when one waits, else a new interpreter."""
        process = await self._take_spare() or await self._spawn()
        assert process.stdin is not None
        process.stdin.write((spec.model_dump_json() + "\n").encode())
        with contextlib.suppress(ConnectionError):
            await process.stdin.drain()
        process.stdin.close()
        return process

    async def keep_spares(self) -> None:
        self._pool = [process for process in self._pool if process.returncode is None]
        while len(self._pool) < self.spares:
            self._pool.append(await self._spawn())

    async def drop_spares(self) -> None:
        pool, self._pool = self._pool, []
        for process in pool:
            await terminate(process, grace=0.0)

    async def _take_spare(self) -> asyncio.subprocess.Process | None:
        while self._pool:
            process = self._pool.pop(0)
            if process.returncode is None:
                return process
        return None

    async def _spawn(self) -> asyncio.subprocess.Process:
        env = {key: value for key, value in os.environ.items() if not key.startswith(SCRUBBED_PREFIXES)}
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # Replicas' own output (uvicorn's warnings, tracebacks) goes to one file; requests and lifecycle
        # events are in the deployment's logs.
        with (self.work_dir / "replicas.log").open("ab") as log:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "yolostack.deployments.replica",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=env | REPLICA_ENVIRONMENT,
                preexec_fn=die_with_parent,
            )


async def terminate(process: asyncio.subprocess.Process, *, grace: float) -> None:
    """SIGTERM to the replica's group, SIGKILL after ``grace`` (at least half a second)."""
    try:
        await _kill(process, grace=grace)
    finally:
        # Close the pipes now: a transport collected after the event loop closed warns at exit.
        transport = getattr(process, "_transport", None)
        if transport is not None:
            transport.close()


async def _kill(process: asyncio.subprocess.Process, *, grace: float) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout=max(grace, 0.5))
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


async def drain(stream: asyncio.StreamReader) -> None:
    """Read a replica's stdout to the end so that it never blocks on a full pipe."""
    with contextlib.suppress(Exception):
        while await stream.read(65536):
            pass
