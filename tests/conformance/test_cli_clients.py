"""``yolo login`` (ultralytics) and ``ul cloud`` (ultralytics-platform) as a user runs them, against a live server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.conformance

BIN = Path(sys.executable).parent


def run(command: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith(("ULTRALYTICS_", "YOLO"))}
    return subprocess.run(command, env={**clean, **env}, capture_output=True, text=True, timeout=timeout, check=False)


def saved_api_key(config_dir: str) -> str | None:
    settings = Path(config_dir) / "Ultralytics" / "settings.json"
    if not settings.exists():
        return None
    value = json.loads(settings.read_text()).get("api_key")
    return str(value) if value is not None else None


class TestYoloLogin:
    def test_good_key_is_accepted_and_saved(self, client_env: dict[str, str], admin_key: str) -> None:
        result = run([str(BIN / "yolo"), "login", admin_key], client_env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "authentication successful" in (result.stdout + result.stderr).lower()
        assert saved_api_key(client_env["YOLO_CONFIG_DIR"]) == admin_key

    def test_bad_key_is_refused(self, client_env: dict[str, str]) -> None:
        bad = "ul_" + "f" * 40
        result = run([str(BIN / "yolo"), "login", bad], client_env)
        assert result.returncode != 0
        assert "Invalid API key" in result.stdout + result.stderr
        assert saved_api_key(client_env["YOLO_CONFIG_DIR"]) != bad


class TestUlCloud:
    def test_projects_round_trip(self, client_env: dict[str, str], admin_key: str) -> None:
        env = {**client_env, "ULTRALYTICS_API_KEY": admin_key}
        created = run([str(BIN / "ul"), "cloud", "projects", "create", "project=ul-cli", "name=UL CLI"], env)
        assert created.returncode == 0, created.stdout + created.stderr
        assert json.loads(created.stdout)["project"] == "ul-cli"
        # No owner given: the CLI infers it from GET /api/account/summary.
        listed = run([str(BIN / "ul"), "cloud", "projects", "list"], env)
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert "ul-cli" in [project["project"] for project in json.loads(listed.stdout)["projects"]]

    def test_wrong_key_fails(self, client_env: dict[str, str]) -> None:
        env = {**client_env, "ULTRALYTICS_API_KEY": "ul_" + "e" * 40}
        result = run([str(BIN / "ul"), "cloud", "account", "summary"], env)
        assert result.returncode == 1
        assert "401" in result.stdout + result.stderr
