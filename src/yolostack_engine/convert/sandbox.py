"""Child-side confinement for checkpoint conversion: resource limits, a private temp dir, an offline environment."""

from __future__ import annotations

import os
import resource
import tempfile
from dataclasses import dataclass
from pathlib import Path

from yolostack_engine.processes import private_environment

GIB = 1 << 30


@dataclass(frozen=True)
class Limits:
    """Resource limits a conversion child applies to itself before importing torch."""

    memory_bytes: int = 6 * GIB
    cpu_seconds: int = 900
    file_bytes: int = 2 * GIB
    open_files: int = 512


def apply_limits(limits: Limits) -> None:
    """Lower this process's rlimits (soft and hard, so the child cannot raise them again)."""
    # RLIMIT_AS counts the address space torch's CUDA build reserves without touching it (measured: ~3.5 GiB
    # virtual after `import torch`, ~1 GiB resident during a yolo11n export), so it must stay generous;
    # RLIMIT_DATA bounds the heap as well, which is where a pickle bomb or huge tensor would go.
    for name, value in (
        (resource.RLIMIT_AS, limits.memory_bytes),
        (resource.RLIMIT_DATA, limits.memory_bytes),
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_FSIZE, limits.file_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
    ):
        _lower(name, value)


def _lower(name: int, value: int) -> None:
    """Set a limit to `value` unless the current hard limit is already lower."""
    _, hard = resource.getrlimit(name)
    if hard != resource.RLIM_INFINITY and hard < value:
        value = hard
    resource.setrlimit(name, (value, value))


CHILD_ENV = {
    "YOLO_VERBOSE": "False",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def enter_private_dir() -> Path:
    """Create a private temp dir (inside the parent's work dir: TMPDIR), point HOME/TMPDIR/caches and
    ultralytics' settings and folders at it, and chdir into it."""
    private = Path(tempfile.mkdtemp(prefix="yolostack-convert-"))
    env = private_environment(private) | CHILD_ENV
    env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count() or 1)
    os.environ.update(env)
    tempfile.tempdir = env["TMPDIR"]
    os.chdir(private)
    return private
