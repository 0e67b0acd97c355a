"""Replica processes of the local backend: started ahead of need, handed their spec, stopped.

A spare interpreter (``python -m yolostack.deployments.replica`` with no spec yet) imports everything slow
to import and waits on stdin; starting a replica hands a spare its spec as one JSON line, so a cold start
only loads the model. Replicas run in their own process group and die with the server (``PR_SET_PDEATHSIG``),
with their working directory, HOME, caches and ultralytics' settings in the backend's folder under the data
dir, and their temporary files in the server's (removed with it, or swept after a crash).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from pathlib import Path

from yolostack.core import processes
from yolostack.deployments.replica import ReplicaSpec

REPLICA_ENVIRONMENT = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "False", "ORT_DISABLE_TELEMETRY": "1"}


class ReplicaProcesses:
    def __init__(self, work_dir: Path, spares: int) -> None:
        self.work_dir = work_dir.resolve()
        self.spares = spares
        self._pool: list[asyncio.subprocess.Process] = []
        self._env: dict[str, str] | None = None

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
        if self._env is None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            private = processes.private_environment(self.work_dir / "replicas")
            self._env = processes.child_environment(private | REPLICA_ENVIRONMENT)
        # Read at each start: the server's temp dir, so that a killed replica's files go with the server's.
        env = self._env | {"TMPDIR": tempfile.gettempdir()}
        # Replicas' own output (uvicorn's warnings, tracebacks) goes to one file; requests and lifecycle
        # events are in the deployment's logs.
        with (self.work_dir / "replicas.log").open("ab") as log:
            return await processes.spawn(
                [sys.executable, "-m", "yolostack.deployments.replica"],
                cwd=self.work_dir,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )


async def terminate(process: asyncio.subprocess.Process, *, grace: float) -> None:
    """SIGTERM to the replica's group, SIGKILL after ``grace`` (at least half a second); reaped either way."""
    await processes.terminate(process, grace=max(grace, 0.5))


async def drain(stream: asyncio.StreamReader) -> None:
    """Read a replica's stdout to the end so that it never blocks on a full pipe."""
    with contextlib.suppress(Exception):
        while await stream.read(65536):
            pass
