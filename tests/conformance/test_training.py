"""Training as users run it against a live server: ``ul cloud train … watch`` (uploads the weights and
the dataset, trains on our worker, downloads best.pt) and a user's own ``model.train(project=…)``
reporting its epochs and weights through the trainer's telemetry."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import matplotlib
import pytest

from tests.fixtures.database import BACKENDS
from tests.fixtures.server import LiveServer
from tests.fixtures.synthetic import make_yolo

pytestmark = [pytest.mark.conformance, pytest.mark.slow]

BIN = Path(sys.executable).parent
BASE_MODEL = """
from ultralytics import YOLO
YOLO("yolo11n.yaml").save("{target}")
"""
USER_TRAINING = """
from ultralytics import YOLO
from ultralytics.utils import SETTINGS

SETTINGS.update(runs_dir="{work}/runs", datasets_dir="{work}/datasets", weights_dir="{work}/weights", sync=False)
YOLO("yolo11n.yaml").train(
    data="{data}", project="admin/mine", name="exp", epochs=2, imgsz=64, batch=4, workers=0, plots=False
)
"""


def client_env(server: LiveServer, key: str, work: Path) -> dict[str, str]:
    config = work / "config"
    (config / "Ultralytics").mkdir(parents=True, exist_ok=True)
    shutil.copy(
        Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", config / "Ultralytics" / "Arial.ttf"
    )
    clean = {
        name: value for name, value in os.environ.items() if not name.startswith(("ULTRALYTICS_", "YOLO", "PYTEST"))
    }
    return {
        **clean,
        "ULTRALYTICS_PLATFORM_URL": server.base_url,
        "ULTRALYTICS_API_KEY": key,
        "YOLO_CONFIG_DIR": str(config),
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "False",
    }


def shapes(root: Path, images: int) -> Path:
    """A local YOLO dataset whose data.yaml names its own absolute path (as users' usually do)."""
    make_yolo(root, images=images)
    data = root / "data.yaml"
    data.write_text(data.read_text().replace("path: .", f"path: {root}"))
    return root


def only_on(request: pytest.FixtureRequest, backend: str) -> None:
    """Slow end-to-end runs whose database side tests/training covers on both backends run on one."""
    wanted = backend if backend in BACKENDS else BACKENDS[0]
    if request.node.callspec.params.get("live_server") != wanted:
        pytest.skip(f"runs once, on {wanted}: the database side is covered on both in tests/training")


def run(command: list[str], env: dict[str, str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def get(server: LiveServer, key: str, path: str) -> dict[str, Any]:
    response = httpx.get(f"{server.base_url}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, dict)
    return body


class TestUlCloudTrain:
    def test_train_watch_downloads_best_pt(
        self, request: pytest.FixtureRequest, live_server: LiveServer, admin_key: str, tmp_path: Path
    ) -> None:
        only_on(request, "postgres")
        env = client_env(live_server, admin_key, tmp_path)
        shapes(tmp_path / "shapes", images=16)
        base = tmp_path / "base.pt"
        made = run([sys.executable, "-c", BASE_MODEL.format(target=base)], env, tmp_path)
        assert made.returncode == 0, made.stderr[-3000:]
        command = [
            str(BIN / "ul"), "cloud", "train", f"model={base}", f"data={tmp_path / 'shapes'}", "project=admin/demo",
            "name=shapes-run", "epochs=2", "imgsz=64", "batch=4", "workers=0", "plots=False", "watch",
        ]  # fmt: skip
        settings = run([str(BIN / "yolo"), "settings", f"runs_dir={tmp_path / 'runs'}"], env, tmp_path, timeout=120)
        assert settings.returncode == 0, settings.stderr[-2000:]
        result = run(command, env, tmp_path)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-6000:]
        assert "Model: ul://admin/demo/shapes-run" in output
        assert re.search(r"Training: 100% .* 2/2", output), output[-3000:]  # the CLI's epoch bar, from our progress
        (saved,) = re.findall(r"Saved: (\S+best\.pt)", output)
        checkpoint = Path(saved) if Path(saved).is_absolute() else tmp_path / saved
        assert checkpoint.stat().st_size > 1_000_000
        assert (checkpoint.parent.parent / "args.yaml").exists()
        job = get(live_server, admin_key, "/api/models/admin/demo/shapes-run/training")["job"]
        assert job["status"] == "completed"
        assert job["trainArgs"]["model"] == "ul://admin/demo/base"

    def test_yaml_architecture_is_refused_by_the_cli_itself(
        self, request: pytest.FixtureRequest, live_server: LiveServer, admin_key: str, tmp_path: Path
    ) -> None:
        """``model=yolo11n.yaml``: ul 0.1.99 only uploads .pt files, before any request to the training API."""
        only_on(request, "sqlite")
        env = client_env(live_server, admin_key, tmp_path)
        shapes(tmp_path / "shapes", images=8)
        command = [str(BIN / "ul"), "cloud", "train", "model=yolo11n.yaml", f"data={tmp_path / 'shapes'}", "epochs=1"]
        result = run(command, env, tmp_path, timeout=120)
        assert result.returncode != 0
        assert "must be a local .pt file" in result.stdout + result.stderr


class TestUserSideTraining:
    def test_own_run_shows_epochs_and_final_weights(
        self, request: pytest.FixtureRequest, live_server: LiveServer, admin_key: str, tmp_path: Path
    ) -> None:
        only_on(request, "sqlite")
        env = client_env(live_server, admin_key, tmp_path)
        data = shapes(tmp_path / "local", images=16) / "data.yaml"
        work = tmp_path / "work"
        work.mkdir()
        script = USER_TRAINING.format(work=work, data=data)
        result = run([sys.executable, "-c", script], env, work)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-6000:]
        # The link the trainer prints is the model's page in the web app: it opens once signed in.
        page_url = f"{live_server.base_url}/admin/mine/exp"
        assert f"View model at {page_url}" in output
        with httpx.Client(base_url=live_server.base_url, timeout=30) as browser:
            form = browser.get("/login")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert csrf is not None
            signed_in = browser.post(
                "/login", data={"csrf_token": csrf.group(1), "api_key": admin_key, "next": "/admin/mine/exp"}
            )
            assert signed_in.headers["location"] == "/admin/mine/exp"
            page = browser.get(page_url)
            assert page.status_code == 200
            assert 'YOLO("ul://admin/mine/exp")' in page.text
        model = get(live_server, admin_key, "/api/models/admin/mine/exp")["model"]
        assert model["status"] == "completed"
        assert [row["epoch"] for row in model["trainResults"]] == [0, 1]
        assert "metrics/mAP50-95(B)" in model["trainResults"][-1]["metrics"]
        job = get(live_server, admin_key, "/api/models/admin/mine/exp/training")["job"]
        assert job["status"] == "completed"
        assert job["executor"] == "remote"
        assert job["progress"]["currentEpoch"] == 2
        files = get(live_server, admin_key, "/api/models/admin/mine/exp/files")["files"]
        assert files[0]["name"] == "best.pt"
        assert files[0]["size"] > 1_000_000
