"""Parent side of checkpoint conversion: spawn the confined child, enforce the timeout, validate its answer.

Never imports torch and never unpickles: the child does both, under resource limits, in its own process
group, and dies with its parent. Its work folder is made in the parent's temp dir (the server points that
under its data dir) and removed whatever happens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yolostack_engine.convert.sandbox import GIB, Limits
from yolostack_engine.processes import child_preexec, kill_group

logger = logging.getLogger(__name__)

DEFAULT_MEMORY_BYTES = 8 * GIB
OUTPUT_FILES = ("model.pt", "model.onnx", "meta.json")
# Variables the child may inherit; everything else (credentials, database URLs) stays in the server.
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
_GLOBAL_NAME = re.compile(r"[\w.,()' -]{1,200}")

UNSAFE_REASONS = frozenset(
    {
        "forbidden global",
        "missing global",
        "forbidden call to",
        "forbidden attribute access",
        "forbidden codec",
        "forbidden pickle opcode",
        "forbidden state update of",
    }
)
MESSAGES = {
    "not_checkpoint": "not a PyTorch checkpoint",
    "torchscript": "the file is a TorchScript archive, not a PyTorch checkpoint",
    "not_ultralytics": "checkpoint is not an ultralytics model",
    "unsupported": "checkpoint could not be loaded by this version of ultralytics",
    "bad_imgsz": "checkpoint has an unsupported image size",
    "bad_names": "checkpoint has invalid class names",
    "export_failed": "the model could not be exported to ONNX",
    "too_large": "checkpoint is too large",
    "oom": "conversion ran out of memory",
}


class ConversionError(Exception):
    """A checkpoint could not be converted; the message is safe to show to the uploader."""

    def __init__(self, message: str, *, code: str = "failed") -> None:
        self.message = message
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class ConversionResult:
    """What a successful conversion produced: meta.json's content and the files in out_dir."""

    meta: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


def convert_checkpoint(
    pt_path: Path,
    out_dir: Path,
    *,
    timeout_s: float = 300,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    python: str = sys.executable,
) -> ConversionResult:
    """Convert an uploaded checkpoint into out_dir (model.pt, model.onnx, meta.json) in a confined child.

    Call it from a thread that outlives the conversion (the child dies with the thread that started it).
    """
    work, command = _prepare(pt_path, timeout_s, memory_bytes, python)
    try:
        return _publish(_parse(*_run(command, work, timeout_s)), work / "out", out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def convert_checkpoint_async(
    pt_path: Path,
    out_dir: Path,
    *,
    timeout_s: float = 300,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    python: str = sys.executable,
) -> ConversionResult:
    """`convert_checkpoint` for the event loop; cancelling it kills the child and publishes nothing."""
    work, command = _prepare(pt_path, timeout_s, memory_bytes, python)
    try:
        return _publish(_parse(*await _run_async(command, work, timeout_s)), work / "out", out_dir)
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)


def _prepare(pt_path: Path, timeout_s: float, memory_bytes: int, python: str) -> tuple[Path, list[str]]:
    """A private work folder (the child stages its files in ``work/out``) and the child's command line."""
    if not pt_path.is_file():
        raise ConversionError("checkpoint file is missing", code="missing")
    work = Path(tempfile.mkdtemp(prefix="yolostack-convert-"))
    return work, _command(python, pt_path, work / "out", timeout_s, memory_bytes)


async def _run_async(command: list[str], work: Path, timeout_s: float) -> tuple[str, int]:
    """`_run` on asyncio: the child's process group is killed on timeout and on cancellation."""
    with (work / "stderr.log").open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=work,
            env=_child_env(work),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            preexec_fn=child_preexec(),
        )
        try:
            async with asyncio.timeout(timeout_s):
                stdout, _ = await process.communicate()
        except TimeoutError:
            raise ConversionError(f"conversion timed out after {timeout_s:g} s", code="timeout") from None
        finally:
            kill_group(process.pid)
            await asyncio.shield(process.wait())
    returncode = process.returncode if process.returncode is not None else -signal.SIGKILL
    if returncode != 0:
        logger.info("checkpoint conversion child exited %s: %s", returncode, _tail(work / "stderr.log"))
    return stdout.decode("utf-8", "replace"), returncode


def _command(python: str, pt_path: Path, staging: Path, timeout_s: float, memory_bytes: int) -> list[str]:
    """The child's command line; -I keeps PYTHONPATH, user site and the cwd off its import path."""
    # CPU time accrues on every core, so the CPU limit is only a backstop behind the wall-clock timeout.
    cpu_seconds = int(timeout_s * max(os.cpu_count() or 1, 1)) + 30
    return [
        python,
        "-I",
        "-m",
        "yolostack_engine.convert",
        str(pt_path.resolve()),
        str(staging),
        f"--memory-bytes={memory_bytes}",
        f"--cpu-seconds={cpu_seconds}",
        f"--max-file-bytes={Limits.file_bytes}",
    ]


def _child_env(work: Path) -> dict[str, str]:
    """A minimal environment: no secrets from the server, temp files inside the work dir."""
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env.update(TMPDIR=str(work), HOME=str(work), YOLO_OFFLINE="1", YOLO_AUTOINSTALL="False")
    return env


def _run(command: list[str], work: Path, timeout_s: float) -> tuple[str, int]:
    """Run the child in its own session; on timeout kill its whole process group."""
    with (work / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            command,
            cwd=work,
            env=_child_env(work),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            preexec_fn=child_preexec(),
        )
        try:
            stdout, _ = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise ConversionError(f"conversion timed out after {timeout_s:g} s", code="timeout") from None
        except BaseException:
            _kill_group(process)
            raise
        finally:
            _kill_group(process)  # stray grandchildren must not outlive the conversion
    if process.returncode != 0:
        logger.info("checkpoint conversion child exited %s: %s", process.returncode, _tail(work / "stderr.log"))
    return stdout.decode("utf-8", "replace"), process.returncode


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's process group and reap the child."""
    kill_group(process.pid)
    process.wait()


def _tail(path: Path, limit: int = 4000) -> str:
    """The end of the child's log, for operators only."""
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", "replace")


def _parse(stdout: str, returncode: int) -> dict[str, Any]:
    """Read the child's one JSON line; map a signal or failure to a user-facing ConversionError."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    result: Any = None
    if lines:
        try:
            result = json.loads(lines[-1])
        except json.JSONDecodeError:
            result = None
    if not isinstance(result, dict):
        raise _signal_error(returncode)
    if result.get("ok") is True and returncode == 0:
        return result
    raise _child_error(result)


def _signal_error(returncode: int) -> ConversionError:
    """A child that died without answering: out of CPU, killed for memory, or crashed."""
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        what = "CPU time" if returncode == -signal.SIGXCPU else "memory"
        return ConversionError(f"conversion ran out of {what}", code="oom" if what == "memory" else "cpu")
    return ConversionError("conversion failed unexpectedly", code="failed")


def _child_error(result: dict[str, Any]) -> ConversionError:
    """The ConversionError for a failure the child reported."""
    code = str(result.get("code", "failed"))
    if code == "unsafe":
        detail = str(result.get("detail", ""))
        name = detail if _GLOBAL_NAME.fullmatch(detail) else "unknown"
        reason = str(result.get("reason", ""))
        reason = reason if reason in UNSAFE_REASONS else "forbidden global"
        return ConversionError(f"the checkpoint references a {reason} '{name}'", code=code)
    if code in MESSAGES:
        return ConversionError(MESSAGES[code], code=code)
    logger.warning("checkpoint conversion failed: %s", str(result.get("message", ""))[:2000])
    return ConversionError("conversion failed unexpectedly", code="failed")


def _publish(result: dict[str, Any], staging: Path, out_dir: Path) -> ConversionResult:
    """Check the child's meta and files, then move them into out_dir."""
    meta = result.get("meta")
    if not isinstance(meta, dict) or not _valid_meta(meta):
        raise ConversionError("conversion failed unexpectedly", code="failed")
    for name in OUTPUT_FILES:
        if not (staging / name).is_file() or (staging / name).is_symlink():
            raise ConversionError("conversion failed unexpectedly", code="failed")
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in OUTPUT_FILES:
        files[name] = out_dir / name
        shutil.move(staging / name, files[name])
    return ConversionResult(meta=meta, files=files)


_META_TYPES: dict[str, type | tuple[type, ...]] = {
    "format_version": int,
    "task": str,
    "names": dict,
    "imgsz": list,
    "stride": int,
    "end2end": bool,
    "channels": int,
    "parameters": int,
    "ultralytics": str,
    "sourceSha256": str,
}


def _valid_meta(meta: dict[str, Any]) -> bool:
    """The child is not trusted blindly: meta must have the documented shape."""
    if not all(isinstance(meta.get(key), kind) for key, kind in _META_TYPES.items()):
        return False
    names = meta["names"]
    if not all(isinstance(k, str) and k.isdigit() and isinstance(v, str) for k, v in names.items()):
        return False
    kpt_shape = meta.get("kpt_shape")
    if kpt_shape is not None and not (isinstance(kpt_shape, list) and all(isinstance(v, int) for v in kpt_shape)):
        return False
    return len(meta["imgsz"]) == 2 and all(isinstance(v, int) for v in meta["imgsz"])
