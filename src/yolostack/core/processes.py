"""Child processes and scratch files of a server process: started in their own group, dying with the server,
reaped when they end, and their folders removed; what a killed server left behind is swept by the next one.

Every child (job runners, deployment replicas, the conversion child) starts through ``spawn`` (or the engine's
``child_preexec`` for the conversion child, which lives in the engine) and stops through ``terminate``.
Scratch folders are named after the process that owns them (``owner_tag``: host, pid and start time), so a
later process can tell a folder of a live process from one whose process is gone (``sweep``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import IO, Any

import psutil

from yolostack_engine.processes import child_preexec, kill_group, private_environment, write_ultralytics_settings

__all__ = [
    "SCRUBBED_PREFIXES",
    "child_environment",
    "child_preexec",
    "claim_temp_dir",
    "kill_group",
    "owner_is_gone",
    "owner_tag",
    "private_environment",
    "spawn",
    "sweep",
    "terminate",
    "write_ultralytics_settings",
]

logger = logging.getLogger(__name__)

# Variables that would change how ultralytics behaves in a child (pytest's own make it think it is under
# test and switch the Platform callback off; GitHub's do the same), and the server's own settings.
SCRUBBED_PREFIXES = ("PYTEST_", "GITHUB_", "ULTRALYTICS_", "YOLOSTACK_")
_UNSAFE = re.compile(r"[^A-Za-z0-9.]+")
_OWNER_NAME = re.compile(r"(?P<host>[A-Za-z0-9._-]+)-(?P<pid>\d+)-(?P<started>\d+)")


def _host() -> str:
    return _UNSAFE.sub("_", socket.gethostname()) or "localhost"


def _started(process: psutil.Process) -> int:
    """The process's start time in hundredths of a second: with the pid, it names one process for good."""
    started: float = process.create_time()
    return round(started * 100)


@cache
def _tag(pid: int) -> str:
    return f"{_host()}-{pid}-{_started(psutil.Process(pid))}"


def owner_tag(pid: int | None = None) -> str:
    """This process's (or ``pid``'s) name for the files it owns: ``<host>-<pid>-<start time>`` (a pid
    alone gets reused)."""
    return _tag(os.getpid() if pid is None else pid)


def owner_is_gone(tag: str) -> bool:
    """True when ``tag`` names a process of this host that no longer runs; other hosts' are never judged."""
    match = _OWNER_NAME.fullmatch(tag)
    if match is None or match["host"] != _host():
        return False
    try:
        process = psutil.Process(int(match["pid"]))
        return _started(process) != int(match["started"]) or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False


def sweep(root: Path, *, stale_after: float | None = None) -> list[Path]:
    """Remove the entries of ``root`` owned by gone processes (named ``owner_tag()``), and return them.

    With ``stale_after``, entries not named after an owner are removed too once untouched that many seconds
    (left by an older version that did not name its files).
    """
    removed: list[Path] = []
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        return removed
    now = time.time()
    for entry in entries:
        gone = owner_is_gone(entry.name)
        if not gone and stale_after is not None and _OWNER_NAME.fullmatch(entry.name) is None:
            try:
                gone = now - entry.lstat().st_mtime > stale_after
            except FileNotFoundError:
                continue
        if gone:
            _remove(entry)
            removed.append(entry)
    if removed:
        logger.info("removed %d leftover(s) of stopped processes under %s", len(removed), root)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def claim_temp_dir(root: Path) -> Path:
    """Make ``root/<owner_tag>`` this process's temp dir (``tempfile`` and children's TMPDIR), after
    sweeping the ones of gone processes; the caller removes it at exit (``shutil.rmtree``)."""
    sweep(root)
    own = root / owner_tag()
    own.mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = str(own)
    os.environ["TMPDIR"] = str(own)
    return own


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without the variables a child must not see, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(SCRUBBED_PREFIXES)}
    return env | dict(extra or {})


async def spawn(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdin: int | IO[Any] | None = asyncio.subprocess.DEVNULL,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
) -> asyncio.subprocess.Process:
    """Start a child in its own process group that dies with this process; asyncio reaps it when it ends.

    Call from the event loop's thread: the death signal follows the thread that forked the child.
    """
    return await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        preexec_fn=child_preexec(),
    )


async def terminate(process: asyncio.subprocess.Process, *, grace: float) -> int:
    """SIGTERM to the child's group, SIGKILL after ``grace`` seconds; returns its exit status once reaped.

    Whatever the child left running in its group is killed too, and its pipes are closed.
    """
    try:
        if process.returncode is None:
            kill_group(process.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(grace):
                    await process.wait()
            except TimeoutError:
                kill_group(process.pid)
        code = await process.wait()
        kill_group(process.pid)  # stray grandchildren must not outlive their parent
        return code
    finally:
        # Close the pipes now: a transport collected after the event loop closed warns at exit.
        transport = getattr(process, "_transport", None)
        if transport is not None:
            transport.close()
