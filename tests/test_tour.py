"""The README's short tour, run top to bottom against a fresh server as a new user runs it.

Every ``console``, ``bash`` and ``python`` block between the "A short tour" heading and the next ``## ``
heading is a step, in order. The console block is the server's start: we start ``yolostack serve`` the way
``scripts/serve`` does and check the banner it shows against what the server prints. The other blocks run
as written, in one empty folder, with two substitutions (the example key becomes the key the server
printed, ``http://127.0.0.1:8000`` its URL); what a bash block sets (``KEY``, ``MODEL``, a function) is
there for the blocks after it, as in one terminal. The tour makes its own files (shapes.zip, image.jpg,
base.pt); the official clients (``yolo``, ``ul``, the SDK) run offline with a private config folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import matplotlib
import pytest

from tests.fixtures.server import LiveServer, start_server

pytestmark = [pytest.mark.conformance, pytest.mark.slow]

README = Path(__file__).parents[1] / "README.md"
HEADING = "## A short tour\n"
LANGUAGES = {"console", "bash", "python"}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
EXAMPLE_KEY = re.compile(r"ul_5f5d[0-9a-f]*…?")
EXAMPLE_URL = "http://127.0.0.1:8000"
# An id the reader would have to copy by hand from an earlier reply: the tour sets variables instead.
PLACEHOLDER_ID = re.compile(r"\b(?:project|model|dataset|deployment|job|export|key|upload)_…")
BIN = Path(sys.executable).parent
STEP_TIMEOUT = 300.0
# Every command of a bash step must succeed; the tour's `curl -s` would go on after an HTTP error, so
# here it fails on one (printing the body). `set -a` exports what a step sets, `env -0` hands it on.
SHELL_PRELUDE = 'set -eo pipefail\ncurl() { command curl --fail-with-body "$@"; }\nset -ax\n'
SHELL_EPILOGUE = '\nset +x\nenv -0 > "$TOUR_STATE"\n'


@dataclass(frozen=True)
class Step:
    number: int
    language: str
    source: str

    def __str__(self) -> str:
        return f"step {self.number} ({self.language}):\n{self.source}"


def tour_steps(readme: str) -> list[Step]:
    """The tour's code blocks, in order."""
    start = readme.index(HEADING)
    end = readme.find("\n## ", start + len(HEADING))
    section = readme[start : end if end != -1 else None]
    blocks = [(language, body) for language, body in FENCE.findall(section) if language in LANGUAGES]
    return [Step(number, language, body) for number, (language, body) in enumerate(blocks, 1)]


def substituted(source: str, server: LiveServer, key: str) -> str:
    return EXAMPLE_KEY.sub(key, source).replace(EXAMPLE_URL, server.base_url)


def banner_line(example: str) -> re.Pattern[str]:
    """A line of the console block as a pattern: the key, the URL and any ``…`` stand for what really prints."""
    parts = re.split(r"(ul_5f5d[0-9a-f]*…?|http://127\.0\.0\.1:8000|…)", example.rstrip())
    pattern = "".join(
        r"ul_[0-9a-f]{40}"
        if part.startswith("ul_5f5d")
        else r"http://127\.0\.0\.1:\d+"
        if part == EXAMPLE_URL
        else ".*"
        if part == "…"
        else re.escape(part)
        for part in parts
    )
    return re.compile(pattern)


def check_banner(step: Step, server: LiveServer) -> None:
    commands = [line for line in step.source.splitlines() if line.startswith("$ ")]
    assert commands == ["$ scripts/serve --port 8000"], f"the tour's console block should start the server\n{step}"
    printed = [line.rstrip() for line in server.lines]
    for line in step.source.splitlines():
        if line.startswith("$ ") or not line.strip():
            continue
        pattern = banner_line(line)
        assert any(pattern.fullmatch(real) for real in printed), (
            f"the server prints no line like {line!r} ({step});\nit printed:\n{server.output}"
        )


def client_env(root: Path) -> dict[str, str]:
    """A new user's terminal: the venv first on PATH, ultralytics offline, its settings and outputs under root."""
    config = root / "config"
    (config / "Ultralytics").mkdir(parents=True)
    # The font ultralytics draws plots with; it would download it.
    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    shutil.copy(font, config / "Ultralytics" / "Arial.ttf")
    prefixes = ("ULTRALYTICS_", "YOLO", "PYTEST", "YOLOSTACK_")
    clean = {name: value for name, value in os.environ.items() if not name.startswith(prefixes)}
    return {
        **clean,
        "PATH": f"{BIN}{os.pathsep}{clean.get('PATH', '')}",
        "VIRTUAL_ENV": str(BIN.parent),
        "YOLO_CONFIG_DIR": str(config),
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "False",
    }


def keep_ultralytics_under(root: Path, env: Mapping[str, str]) -> None:
    """Runs, converted datasets and downloaded weights in the test's folder: with the venv inside a git
    checkout ultralytics would put them beside the checkout (and its datasets in the checkout's parent)."""
    dirs = {name: root / "ultralytics" / name for name in ("runs", "datasets", "weights")}
    args = [f"{name}_dir={path}" for name, path in dirs.items()]
    result = subprocess.run(
        [str(BIN / "yolo"), "settings", *args, "sync=False"],
        env=dict(env),
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def read_env(path: Path) -> dict[str, str]:
    """What ``env -0`` wrote: the environment a bash step leaves for the next one."""
    pairs = (entry.partition("=") for entry in path.read_bytes().decode().split("\0") if "=" in entry)
    return {name: value for name, _, value in pairs}


def run_step(step: Step, source: str, env: dict[str, str], work: Path, scratch: Path) -> dict[str, str]:
    """Run one step in ``work``; returns the environment for the next one. Fails with the step and its output."""
    state = scratch / f"step{step.number}.env"
    if step.language == "bash":
        command = ["bash", "-c", SHELL_PRELUDE + source + SHELL_EPILOGUE]
        run_env = {**env, "TOUR_STATE": str(state)}
    else:
        script = scratch / f"step{step.number}.py"
        script.write_text(source)
        command, run_env = [str(BIN / "python"), str(script)], env
    try:
        result = subprocess.run(
            command,
            env=run_env,
            cwd=work,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # interleaved, so a bash step's `+ command` trace precedes its output
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = _text(exc.stdout)
        pytest.fail(f"tour {step}\ndid not finish in {STEP_TIMEOUT:.0f} s; its output:\n{output[-8000:]}")
    (scratch / f"step{step.number}.out").write_text(result.stdout)  # for a look at what a step printed
    if result.returncode != 0:
        pytest.fail(f"tour {step}\nfailed (exit code {result.returncode}); its output:\n{result.stdout[-8000:]}")
    if step.language != "bash":
        return env
    after = read_env(state)
    after.pop("TOUR_STATE", None)
    return after


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


@contextlib.contextmanager
def live_server(root: Path) -> Iterator[LiveServer]:
    """``scripts/serve``: ``yolostack serve`` on a fresh data dir, started from a folder of its own."""
    (root / "server").mkdir()
    with contextlib.chdir(root / "server"):
        server = start_server({"YOLOSTACK_DATA_DIR": str(root / "data")})
    try:
        yield server
    finally:
        server.stop()


class TestReadmeTour:
    def test_the_tour_finds_its_steps(self) -> None:
        steps = tour_steps(README.read_text())
        assert steps[0].language == "console", steps[0]
        assert {step.language for step in steps} == LANGUAGES, steps
        for step in steps:
            assert not PLACEHOLDER_ID.search(step.source), f"the tour asks the reader to paste an id by hand\n{step}"

    def test_runs_top_to_bottom_on_a_fresh_server(self, tmp_path: Path) -> None:
        steps = tour_steps(README.read_text())
        work, scratch = tmp_path / "tour", tmp_path / "steps"
        work.mkdir()
        scratch.mkdir()
        env = client_env(tmp_path)
        keep_ultralytics_under(tmp_path, env)
        with live_server(tmp_path) as server:
            key = server.key
            assert key is not None, server.output
            for step in steps:
                if step.language == "console":
                    check_banner(step, server)
                    continue
                env = run_step(step, substituted(step.source, server, key), env, work, scratch)
            # What the tour's comments promise is there.
            headers = {"x-api-key": key}
            models = httpx.get(f"{server.base_url}/api/models/admin/demo", headers=headers, timeout=30).json()
            assert {"base", "laptop", "shapes", "best"} <= {model["model"] for model in models["models"]}, models
            edge = httpx.get(f"{server.base_url}/api/deployments/admin/edge", headers=headers, timeout=30).json()
            assert edge["deployment"]["model"] == "best", edge
