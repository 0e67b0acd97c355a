"""Real exports end to end: a live ``yolostack serve`` whose dispatcher runs ``YOLO.export`` in a runner that
calls back over HTTP (weights download, phases, artifact upload), then the artifact is downloaded through its
signed URL and loaded by its own runtime.

One backend (SQLite) on purpose: the runner's path is HTTP only, the database work is the same as in
``test_endpoints.py`` (which runs on SQLite and PostgreSQL), and each export costs a runner start (torch +
ultralytics import) on the two shared cores.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.fixtures.checkpoints import build_checkpoints, malicious_checkpoint
from tests.fixtures.server import LiveServer, start_server
from tests.jobs.helpers import api, ok, wait_for
from yolostack_engine import export_formats as formats

pytestmark = pytest.mark.slow

IMGSZ = 64
# yolo11n detect at 64 px: 84 channels (4 box + 80 classes) over 8² + 4² + 2² anchors.
DETECT_OUTPUT = (1, 84, 84)
ACTIVE = ("queued", "starting", "running")


def loads_onnx(path: Path) -> tuple[int, ...]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outputs = session.run(None, {name: np.zeros((1, 3, IMGSZ, IMGSZ), dtype=np.float32)})
    return tuple(outputs[0].shape)


def loads_torchscript(path: Path) -> tuple[int, ...]:
    import torch

    module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
    with torch.no_grad():
        output = module(torch.zeros(1, 3, IMGSZ, IMGSZ))
    return tuple((output[0] if isinstance(output, tuple | list) else output).shape)


def loads_openvino(path: Path) -> tuple[int, ...]:
    import openvino as ov

    folder = unzip(path)
    model = ov.Core().compile_model(str(next(folder.rglob("*.xml"))), "CPU")
    result = model(np.zeros((1, 3, IMGSZ, IMGSZ), dtype=np.float32))
    return tuple(result[model.output(0)].shape)


def loads_ncnn(path: Path) -> tuple[int, ...]:
    import ncnn  # type: ignore[import-untyped]

    folder = unzip(path)
    net = ncnn.Net()
    assert net.load_param(str(next(folder.rglob("*.param")))) == 0
    assert net.load_model(str(next(folder.rglob("*.bin")))) == 0
    extractor = net.create_extractor()
    extractor.input(net.input_names()[0], ncnn.Mat(np.zeros((3, IMGSZ, IMGSZ), dtype=np.float32)))
    status, output = extractor.extract(net.output_names()[0])
    assert status == 0
    return (1, *np.array(output).shape)


def unzip(path: Path) -> Path:
    """Directory formats arrive as one zip holding the directory."""
    target = path.with_suffix("")
    with zipfile.ZipFile(path) as bundle:
        bundle.extractall(target)
    return target


LOADERS = {"onnx": loads_onnx, "torchscript": loads_torchscript, "openvino": loads_openvino, "ncnn": loads_ncnn}
# Every format this machine can produce on its CPU (INT8-only formats need a calibration dataset).
CPU_FORMATS = [
    name
    for name, spec in formats.FORMATS.items()
    if not formats.missing(spec, gpus=0) and name not in formats.INT8_ONLY
]
UNAVAILABLE = [name for name, spec in formats.FORMATS.items() if formats.missing(spec, gpus=0)]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server({"YOLOSTACK_DATA_DIR": str(tmp_path_factory.mktemp("exports-live") / "data")})
    try:
        assert server.key is not None, server.output
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def http(live: LiveServer) -> Iterator[httpx.Client]:
    assert live.key is not None
    with api(live.base_url, live.key) as client:
        yield client


@pytest.fixture(scope="module")
def project(http: httpx.Client) -> str:
    project_id: str = ok(http.post("/api/projects", json={"project": "exports", "name": "exports"}), 201)["id"]
    return project_id


def upload(http: httpx.Client, project: str, checkpoint: Path, name: str) -> dict[str, Any]:
    """The seed's multipart ``POST /api/models``."""
    with checkpoint.open("rb") as handle:
        response = http.post(
            "/api/models",
            data={"projectId": project, "name": name},
            files={"file": (checkpoint.name, handle, "application/octet-stream")},
        )
    return dict(ok(response, 201)["data"])


@pytest.fixture(scope="module")
def hosted(http: httpx.Client, project: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real untrained yolo11n checkpoint as a model."""
    return upload(http, project, build_checkpoints(tmp_path_factory.mktemp("export-checkpoints")).detect, "tiny")


def exports_path(model: dict[str, Any]) -> str:
    return f"/api/models/{model['owner']}/{model['project']}/{model['slug']}/exports"


def run_export(http: httpx.Client, model: dict[str, Any], fmt: str, **args: Any) -> dict[str, Any]:
    created = ok(http.post(exports_path(model), json={"format": fmt, "args": {"imgsz": IMGSZ, **args}}), 201)
    assert created["status"] == "queued"
    export = wait_for(
        lambda: ok(http.get(f"{exports_path(model)}/{created['id']}"))["export"],
        lambda export: export["status"] not in ACTIVE,
        300,
        what=f"the {fmt} export to end",
    )
    return dict(export)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", CPU_FORMATS)
def test_export_runs_and_the_artifact_loads(
    http: httpx.Client, live: LiveServer, hosted: dict[str, Any], tmp_path: Path, fmt: str
) -> None:
    export = run_export(http, hosted, fmt)
    logs = ok(http.get(f"/api/jobs/{export['id']}/logs"))["entries"]
    assert export["status"] == "completed", (export, logs, live.output[-3000:])
    assert export["phase"] == "completed"
    assert [entry["content"] for entry in logs if entry["source"] == "runner"][:3] == [
        "downloading",
        "exporting",
        "uploading",
    ]
    file = export["file"]
    spec = formats.FORMATS[fmt]
    assert file["downloadFilename"] == f"yolo11n{spec.output}" + (".zip" if spec.is_directory else "")
    fetched = httpx.get(file["downloadUrl"], headers={"Accept-Encoding": "identity"}, timeout=60)
    assert fetched.status_code == 200
    assert len(fetched.content) == file["size"] > 100_000
    artifact = tmp_path / file["downloadFilename"]
    artifact.write_bytes(fetched.content)
    loader = LOADERS.get(fmt)
    if loader is None:
        pytest.skip(f"{fmt} exported ({file['size']} bytes); no loader for it in this test")
    assert loader(artifact) == DETECT_OUTPUT


def test_exports_count_in_storage(http: httpx.Client, hosted: dict[str, Any]) -> None:
    done = [item for item in ok(http.get(exports_path(hosted)))["exports"] if item["status"] == "completed"]
    if not done:
        run_export(http, hosted, "torchscript")
        done = [item for item in ok(http.get(exports_path(hosted)))["exports"] if item["status"] == "completed"]
    exports = ok(http.get("/api/storage"))["breakdown"]["byCategory"]["exports"]
    assert exports == {"bytes": sum(item["file"]["size"] for item in done), "count": len(done)}


def test_an_export_that_ultralytics_refuses_fails_with_its_reason(http: httpx.Client, hosted: dict[str, Any]) -> None:
    export = run_export(http, hosted, "onnx", opset=5)
    assert export["status"] == "failed"
    assert export["file"] is None
    assert "opset" in export["error"]["message"]


@pytest.mark.skipif(not UNAVAILABLE, reason="every export toolchain is installed here")
def test_a_missing_toolchain_fails_at_creation(http: httpx.Client, hosted: dict[str, Any]) -> None:
    name = UNAVAILABLE[0]
    response = http.post(exports_path(hosted), json={"format": name})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "EXPORT_FORMAT_UNAVAILABLE"
    assert error["message"].startswith(f"format '{name}' ")
    assert error["details"]["missing"]


def test_a_hostile_checkpoint_is_refused_without_running(http: httpx.Client, project: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = upload(http, project, malicious_checkpoint(tmp_path / "evil.pt", marker), "evil")
    export = run_export(http, hostile, "torchscript")
    assert export["status"] == "failed"
    assert "posix.system" in export["error"]["message"] or "os.system" in export["error"]["message"]
    assert not marker.exists()
