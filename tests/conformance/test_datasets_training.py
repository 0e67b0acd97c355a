"""The dataset path as users run it: the SDK uploads and ingests, then the real ``ultralytics`` trains
from ``ul://owner/datasets/slug`` against a live server, downloading the NDJSON and every image."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import matplotlib
import pytest
from ultralytics_platform import Platform

from tests.fixtures.server import LiveServer
from tests.fixtures.synthetic import make_yolo, zip_dir

pytestmark = [pytest.mark.conformance, pytest.mark.slow]

TRAIN = """
from ultralytics import YOLO
from ultralytics.utils import SETTINGS

# Keep runs, converted datasets and weights in the test's folder, not beside the checkout.
SETTINGS.update(runs_dir="{work}/runs", datasets_dir="{work}/datasets", weights_dir="{work}/weights", sync=False)
results = YOLO("{model}").train(
    data="ul://admin/datasets/{slug}", epochs=1, imgsz=64, batch=4, workers=0, device="cpu", plots=False, val=True
)
print("TRAINED", results.save_dir if results is not None else "")
"""


def loose(response: object) -> dict[str, Any]:
    assert isinstance(response, dict)
    return response


def sdk_upload_and_ingest(platform: Platform, archive: Path, slug: str) -> dict[str, Any]:
    created = loose(platform.datasets.create(dataset=slug, name=slug))
    data = archive.read_bytes()
    signed = loose(
        platform.upload.signed_url(
            body={
                "assetType": "datasets",
                "assetId": created["id"],
                "filename": archive.name,
                "contentType": "application/octet-stream",
                "totalBytes": len(data),
            }
        )
    )
    # The CLI PUTs with requests-style raw bytes and no key; httpx does the same here.
    put = httpx.put(signed["uploadUrl"], content=data, headers={"Content-Type": "application/octet-stream"}, timeout=60)
    assert put.status_code == 200, put.text
    platform.upload.complete(session_id=signed["sessionId"], checksum=hashlib.sha256(data).hexdigest())
    queued = loose(platform.datasets.ingest("admin", slug, body={"sessionId": signed["sessionId"]}))
    assert queued["status"] == "queued"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        dataset = loose(platform.datasets.retrieve("admin", slug))["dataset"]
        if dataset["status"] != "processing":
            return dict(dataset)
        time.sleep(0.5)
    raise AssertionError("ingest did not finish")


class TestTrainFromPlatformDataset:
    @pytest.mark.parametrize(("task", "model"), [("detect", "yolo11n.yaml"), ("segment", "yolo11n-seg.yaml")])
    def test_yolo_trains_on_ul_dataset(
        self, live_server: LiveServer, admin_key: str, tmp_path: Path, task: str, model: str
    ) -> None:
        platform = Platform(base_url=live_server.base_url, api_key=admin_key, max_retries=0)
        slug = f"shapes-{task}"
        archive = zip_dir(make_yolo(tmp_path / "src", images=16, task=task), tmp_path / f"{slug}.zip")
        dataset = sdk_upload_and_ingest(platform, archive, slug)
        assert dataset["status"] == "ready", dataset
        assert dataset["imageCount"] == 16
        assert dataset["task"] == task

        config = tmp_path / "yolo-config"
        (config / "Ultralytics").mkdir(parents=True)
        font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        shutil.copy(font, config / "Ultralytics" / "Arial.ttf")
        env = {
            # No PYTEST_* either: ultralytics moves its runs into its own test folder when it sees them.
            **{
                name: value
                for name, value in os.environ.items()
                if not name.startswith(("ULTRALYTICS_", "YOLO", "PYTEST"))
            },
            "ULTRALYTICS_PLATFORM_URL": live_server.base_url,
            "ULTRALYTICS_API_KEY": admin_key,
            "YOLO_CONFIG_DIR": str(config),
            "YOLO_OFFLINE": "1",
            "YOLO_AUTOINSTALL": "False",
        }
        work = tmp_path / "work"
        work.mkdir()
        result = subprocess.run(
            [sys.executable, "-c", TRAIN.format(slug=slug, work=work, model=model)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-6000:]
        (save_dir,) = re.findall(r"^TRAINED (.+)$", result.stdout, re.MULTILINE)
        assert Path(save_dir).is_relative_to(work), save_dir
        assert (Path(save_dir) / "weights" / "last.pt").stat().st_size > 1_000_000
        # Validation ran on the 4 val images, which it could only have downloaded from our signed URLs.
        assert re.search(r"^\s+all\s+4\s+\d+", output, re.MULTILINE), output[-3000:]
        assert re.search(r"^\s+square\s+\d+", output, re.MULTILINE), output[-3000:]
