"""Child processes that die with their parent, and whose files stay in one folder.

The primitives every child of the server uses (job runners, deployment replicas, the conversion child): a
process group of its own with ``PR_SET_PDEATHSIG``, killing that group, and an environment that points
HOME, TMPDIR, caches and ultralytics' settings into a given folder. ``yolostack.core.processes`` builds on
these; the engine uses them directly for its conversion child (the engine never imports ``yolostack``).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import signal
import sys
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    """libc's prctl, resolved now: a child between fork and exec must not load libraries (loader locks)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _load_prctl()


def die_with_parent(parent: int) -> None:
    """In the child before exec: its own process group, and SIGKILL when ``parent`` dies (Linux).

    The death signal follows the thread that forked the child, so children are started from the event
    loop's thread, never from a worker thread that may end first.
    """
    os.setsid()
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        # The parent died between fork and prctl: no signal will ever come.
        os.kill(os.getpid(), signal.SIGKILL)


def child_preexec() -> Callable[[], None]:
    """The ``preexec_fn`` for ``subprocess``/``asyncio`` children of this process."""
    return partial(die_with_parent, os.getpid())


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process group led by ``pid`` (a child started with ``child_preexec``), if any."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


ULTRALYTICS_DIRS = ("datasets", "runs", "weights")
OFFLINE_ENV = {
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "False",
    "ORT_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
}


# ultralytics' settings schema (SettingsManager "0.0.8"): a file with exactly these keys and types loads
# without a warning; on another schema it warns once and keeps the values given here.
ULTRALYTICS_SETTINGS: dict[str, object] = {
    "settings_version": "0.0.8",
    "uuid": "",
    "sync": False,
    "api_key": "",
    "openai_api_key": "",
    "clearml": True,
    "comet": True,
    "dvc": True,
    "mlflow": True,
    "raytune": True,
    "tensorboard": False,
    "wandb": False,
    "vscode_msg": False,
    "openvino_msg": False,
}


def write_ultralytics_settings(config_dir: Path, root: Path) -> Path:
    """Pre-seed ultralytics' settings file so that its datasets, runs and weights dirs are under ``root``.

    ultralytics reads the file once, at import, and bakes ``datasets_dir`` into module constants
    (``DATASETS_DIR``); left alone it derives them from the cwd's git checkout, or from its parent folder.
    """
    folder = config_dir / "Ultralytics"
    folder.mkdir(parents=True, exist_ok=True)
    settings = folder / "settings.json"
    values = {**ULTRALYTICS_SETTINGS, "uuid": hashlib.sha256(str(uuid.getnode()).encode()).hexdigest()}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(settings.read_text())
        values.update(loaded if isinstance(loaded, dict) else {})
    values.update({f"{name}_dir": str(root / name) for name in ULTRALYTICS_DIRS})
    values["sync"] = False
    settings.write_text(json.dumps(values, indent=2))
    return settings


def private_environment(folder: Path) -> dict[str, str]:
    """Variables that keep a child's files in ``folder``: HOME, TMPDIR, caches, ultralytics' settings.

    Creates the folders, writes ultralytics' settings and OpenVINO's telemetry opt-out (read from HOME).
    """
    home, config, tmp = folder / "home", folder / "config", folder / "tmp"
    for path in (home / "intel", config, tmp):
        path.mkdir(parents=True, exist_ok=True)
    (home / "intel" / "openvino_telemetry").write_text("0")
    write_ultralytics_settings(config, folder)
    return {
        **OFFLINE_ENV,
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "YOLO_CONFIG_DIR": str(config),
        "XDG_CONFIG_HOME": str(config),
        "XDG_CACHE_HOME": str(folder / "cache"),
        "MPLCONFIGDIR": str(folder / "matplotlib"),
        "TORCH_HOME": str(folder / "torch"),
    }
