"""``ul cloud export`` (ultralytics-platform) as a user runs it, against a live server that really exports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.fixtures.checkpoints import build_checkpoints
from tests.fixtures.server import LiveServer

pytestmark = [pytest.mark.conformance, pytest.mark.slow]

BIN = Path(sys.executable).parent


def upload_checkpoint(live_server: LiveServer, key: str, work: Path, project: str) -> str:
    """A real yolo11n checkpoint as the model ``admin/<project>/tiny`` (seed multipart upload); returns its slug."""
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = build_checkpoints(work).detect
    with httpx.Client(base_url=live_server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        created = http.post("/api/projects", json={"project": project, "name": project})
        assert created.status_code == 201, created.text
        with checkpoint.open("rb") as handle:
            response = http.post(
                "/api/models",
                data={"projectId": created.json()["id"], "name": "tiny"},
                files={"file": (checkpoint.name, handle, "application/octet-stream")},
            )
        assert response.status_code == 201, response.text
        slug: str = response.json()["data"]["slug"]
    return slug


class TestUlCloudExport:
    def test_onnx_export_is_downloaded(
        self, live_server: LiveServer, client_env: dict[str, str], admin_key: str, tmp_path: Path
    ) -> None:
        slug = upload_checkpoint(live_server, admin_key, tmp_path / "checkpoints", "cli-export")
        out = tmp_path / "out"
        out.mkdir()
        clean = {name: value for name, value in os.environ.items() if not name.startswith(("ULTRALYTICS_", "YOLO"))}
        command = [str(BIN / "ul"), "cloud", "export", f"model=ul://admin/cli-export/{slug}", "format=onnx", "imgsz=64"]
        result = subprocess.run(
            command,
            env={**clean, **client_env, "ULTRALYTICS_API_KEY": admin_key},
            cwd=out,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output + live_server.output[-3000:]
        assert "Export: export_" in output
        saved = out / "yolo11n.onnx"
        assert f"Saved: {saved.name}" in output or f"Saved: {saved}" in output, output
        import onnxruntime as ort

        session = ort.InferenceSession(str(saved), providers=["CPUExecutionProvider"])
        outputs = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 64, 64), dtype=np.float32)})
        assert outputs[0].shape == (1, 84, 84)
