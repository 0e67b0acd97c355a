"""Prediction as users run it against a live server: ``ul cloud predict`` (uploads a local .pt, then
predicts), ``YOLO("ul://…")`` downloading our .pt, and the seed documents' curl and requests snippets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import ultralytics

from tests.fixtures.detector import TrainedDetector
from tests.fixtures.server import LiveServer

# The clients against the engine: the database only finds the model, as every other test shows on both.
pytestmark = [pytest.mark.conformance, pytest.mark.slow, pytest.mark.sqlite_only]

ASSETS = Path(ultralytics.__file__).parent / "assets"

BIN = Path(sys.executable).parent
PREDICT_LOCALLY = """
import json, sys
from ultralytics import YOLO
from ultralytics.utils import SETTINGS

SETTINGS.update(weights_dir="{work}/weights", runs_dir="{work}/runs", sync=False)
model = YOLO("{uri}")
result = model.predict("{image}", imgsz=128, conf=0.01, verbose=False)[0]
print("RESULTS", json.dumps(result.summary()))
"""
REQUESTS_SNIPPET = """
import requests

url = "{url}"
headers = {{"x-api-key": "{key}"}}
data = {{"model": "{model_url}", "imgsz": 640, "conf": 0.25, "iou": 0.45}}
with open("{image}", "rb") as image_file:
    files = {{"file": image_file}}
    response = requests.post(url, headers=headers, files=files, data=data)
print(response.json())
"""


def run(command: list[str], env: dict[str, str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    clean = {
        name: value for name, value in os.environ.items() if not name.startswith(("ULTRALYTICS_", "YOLO", "PYTEST"))
    }
    return subprocess.run(
        command, env={**clean, **env}, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def model_by_slug(server: LiveServer, key: str, ref: str) -> dict[str, Any]:
    response = httpx.get(f"{server.base_url}/api/models/{ref}", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    model: dict[str, Any] = response.json()["model"]
    return model


@pytest.fixture(scope="module")
def uploaded(
    live_server: LiveServer, trained_detector: TrainedDetector, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """``ul cloud predict`` with a local .pt: creates the model, uploads it and predicts (returns the ul:// URI)."""
    work = tmp_path_factory.mktemp("ul-predict")
    weights = shutil.copy(trained_detector.weights, work / "shapes.pt")
    image = trained_detector.images[0]
    env = {
        "ULTRALYTICS_PLATFORM_URL": live_server.base_url,
        "ULTRALYTICS_API_KEY": str(live_server.key),
        "YOLO_CONFIG_DIR": str(work / "config"),
        "YOLO_OFFLINE": "1",
    }
    command = [str(BIN / "ul"), "cloud", "predict", f"model={weights}", f"source={image}", "project=admin/demo"]
    result = run([*command, "conf=0.01", "imgsz=128", f"save_dir={work / 'out'}"], env, work)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    uri = next(line.split("Model: ", 1)[1].strip() for line in output.splitlines() if "Model: ul://" in line)
    # The CLI's own per-image line: "<path>: 128x128 1 circle, 12.3ms" (YOLO's verbose() of our results).
    assert image.name in output, output
    assert "circle" in output or "square" in output, output
    return uri


class TestUlCloudPredict:
    def test_local_checkpoint_is_uploaded_and_predicted(self, uploaded: str, live_server: LiveServer) -> None:
        model = model_by_slug(live_server, str(live_server.key), uploaded.removeprefix("ul://"))
        assert model["task"] == "detect"
        assert model["serving"]["status"] == "ready"
        assert model["classNames"] == {"0": "square", "1": "circle"}

    def test_hosted_model_predicts_and_saves(
        self, uploaded: str, live_server: LiveServer, trained_detector: TrainedDetector, tmp_path: Path
    ) -> None:
        env = {
            "ULTRALYTICS_PLATFORM_URL": live_server.base_url,
            "ULTRALYTICS_API_KEY": str(live_server.key),
            "YOLO_CONFIG_DIR": str(tmp_path / "config"),
        }
        image = trained_detector.images[1]
        command = [str(BIN / "ul"), "cloud", "predict", f"model={uploaded}", f"source={image}", "conf=0.01"]
        result = run([*command, "imgsz=128", "save_txt=True", f"save_dir={tmp_path / 'out'}"], env, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        labels = (tmp_path / "out" / "labels" / f"{image.stem}.txt").read_text().split()
        assert labels
        assert labels[0] in ("0", "1")


class TestYoloFromPlatform:
    def test_downloads_our_pt_and_matches_the_server(
        self, uploaded: str, live_server: LiveServer, trained_detector: TrainedDetector, tmp_path: Path
    ) -> None:
        image = trained_detector.images[2]
        script = PREDICT_LOCALLY.format(work=tmp_path, uri=uploaded, image=image)
        env = {"ULTRALYTICS_PLATFORM_URL": live_server.base_url, "ULTRALYTICS_API_KEY": str(live_server.key)}
        env["YOLO_CONFIG_DIR"] = str(tmp_path / "config")
        result = run([sys.executable, "-c", script], env, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        local = json.loads(result.stdout.split("RESULTS", 1)[1])
        owner, project, slug = uploaded.removeprefix("ul://").split("/")
        assert list((tmp_path / "weights" / owner / project / slug).glob("*.pt"))
        with image.open("rb") as handle:
            served = httpx.post(
                f"{live_server.base_url}/api/models/{owner}/{project}/{slug}/predict",
                headers={"Authorization": f"Bearer {live_server.key}"},
                files={"file": (image.name, handle, "image/jpeg")},
                data={"imgsz": "128", "conf": "0.01"},
                timeout=120,
            ).json()
        remote = served["images"][0]["results"]
        assert [row["class"] for row in remote] == [row["class"] for row in local]
        for ours, theirs in zip(remote, local, strict=True):
            assert abs(ours["confidence"] - theirs["confidence"]) < 1e-3
            assert all(abs(ours["box"][k] - theirs["box"][k]) <= 1 for k in ("x1", "y1", "x2", "y2"))


class TestSeedSnippets:
    @pytest.fixture
    def model_id(self, uploaded: str, live_server: LiveServer) -> str:
        return str(model_by_slug(live_server, str(live_server.key), uploaded.removeprefix("ul://"))["id"])

    def test_hub_curl(self, live_server: LiveServer, model_id: str, tmp_path: Path) -> None:
        image = ASSETS / "bus.jpg"
        command = ["curl", "-s", "-X", "POST", f"{live_server.base_url}/", "-H", f"x-api-key: {live_server.key}"]
        command += ["-F", f"model={live_server.base_url}/models/{model_id}", "-F", f"file=@{image}"]
        command += ["-F", "imgsz=640", "-F", "conf=0.25", "-F", "iou=0.45"]
        result = run(command, {}, tmp_path)
        body = json.loads(result.stdout)
        assert body["success"] is True
        assert body["images"][0]["shape"] == [1080, 810]
        assert set(body["images"][0]["speed"]) == {"preprocess", "inference", "postprocess"}
        assert body["metadata"]["task"] == "detect"
        assert body["metadata"]["imageCount"] == 1

    def test_seed_quick_start_curl(self, live_server: LiveServer, model_id: str, tmp_path: Path) -> None:
        image = ASSETS / "zidane.jpg"
        command = ["curl", "-s", "-X", "POST", "-H", f"Authorization: Bearer {live_server.key}"]
        command += ["-F", f"file=@{image}", f"{live_server.base_url}/api/models/{model_id}/predict"]
        body = json.loads(run(command, {}, tmp_path).stdout)
        assert body["success"] is True
        assert isinstance(body["predictions"], list)
        assert body["data"]["images"][0]["shape"] == [720, 1280]

    def test_hub_requests(
        self, live_server: LiveServer, model_id: str, trained_detector: TrainedDetector, tmp_path: Path
    ) -> None:
        script = REQUESTS_SNIPPET.format(
            url=f"{live_server.base_url}/",
            key=live_server.key,
            model_url=f"https://hub.ultralytics.com/models/{model_id}",
            image=trained_detector.images[0],
        )
        result = run([sys.executable, "-c", script], {}, tmp_path)
        assert result.returncode == 0, result.stderr
        assert "'success': True" in result.stdout
        assert "'images': [{" in result.stdout
