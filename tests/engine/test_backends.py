"""Backend selection, loading errors, thread safety and closing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from yolostack_engine import EngineError, ModelInfo, PredictOptions, available_backends, load_model
from yolostack_engine.backends import resolve_backend
from yolostack_engine.models import DetectModel, SegmentModel


class TestSelection:
    def test_all_installed_here(self) -> None:
        assert available_backends() == ["onnxruntime", "openvino", "torch"]

    def test_auto_prefers_openvino_on_cpu(self) -> None:
        assert resolve_backend("auto", "cpu") == "openvino"

    def test_explicit_backend_is_kept(self) -> None:
        assert resolve_backend("onnxruntime", "cpu") == "onnxruntime"

    def test_unknown_backend(self) -> None:
        with pytest.raises(EngineError, match="unknown backend"):
            resolve_backend("tensorflow", "cpu")

    def test_import_does_not_load_heavy_runtimes(self) -> None:
        code = "import sys, yolostack_engine; print(sorted({'torch', 'onnxruntime', 'openvino', 'ultralytics'} & set(sys.modules)))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert out.strip() == "[]"


class TestLoadErrors:
    def test_missing_directory(self, tmp_path: Path) -> None:
        with pytest.raises(EngineError, match="not found"):
            load_model(tmp_path / "nope", "onnxruntime")

    def test_empty_directory(self, tmp_path: Path) -> None:
        with pytest.raises(EngineError, match=r"no meta.json, model.onnx or model.pt"):
            load_model(tmp_path, "onnxruntime")

    def test_missing_onnx(self, tmp_path: Path) -> None:
        (tmp_path / "meta.json").write_text(json.dumps({"task": "detect", "names": {"0": "a"}}))
        with pytest.raises(EngineError, match=r"model.onnx not found"):
            load_model(tmp_path, "onnxruntime")

    def test_unknown_task(self, tmp_path: Path) -> None:
        (tmp_path / "meta.json").write_text(json.dumps({"task": "depth", "names": {"0": "a"}}))
        with pytest.raises(EngineError, match="unsupported task"):
            load_model(tmp_path, "onnxruntime")


class TestModelInfo:
    def test_meta_json(self, tmp_path: Path) -> None:
        meta = {"task": "pose", "names": {"0": "person"}, "imgsz": [480, 640], "stride": 32, "kpt_shape": [17, 3]}
        (tmp_path / "meta.json").write_text(json.dumps(meta))
        info = ModelInfo.from_dir(tmp_path)
        assert info == ModelInfo("pose", {0: "person"}, (480, 640), 32, (17, 3), False, 3)

    @pytest.mark.slow
    def test_onnx_metadata(self, model_dir: Callable[[str], Path]) -> None:
        info = ModelInfo.from_dir(model_dir("segment"))
        assert (info.task, len(info.names), info.stride, info.kpt_shape, info.end2end) == (
            "segment",
            80,
            32,
            None,
            False,
        )

    @pytest.mark.slow
    def test_pt_fallback(self, model_dir: Callable[[str], Path], tmp_path: Path) -> None:
        shutil.copy(model_dir("pose") / "model.pt", tmp_path / "model.pt")
        info = ModelInfo.from_dir(tmp_path)
        assert (info.task, info.kpt_shape) == ("pose", (17, 3))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "torch"])
class TestRunning:
    def test_dispatches_on_task(self, backend: str, model_dir: Callable[[str], Path]) -> None:
        with load_model(model_dir("segment"), backend) as model:
            assert isinstance(model, SegmentModel)
            assert model.backend.name == backend
            assert model.backend.max_concurrency >= 1
            assert model.memory_bytes() > 1_000_000

    def test_concurrent_forward_matches_sequential(self, backend: str, model_dir: Callable[[str], Path]) -> None:
        with load_model(model_dir("detect"), backend) as model:
            assert isinstance(model, DetectModel)
            rng = np.random.default_rng(0)
            batches = [rng.uniform(0, 1, (1, 3, 160, 224)).astype(np.float32) for _ in range(6)]
            sequential = [model.forward(b)[0] for b in batches]
            with ThreadPoolExecutor(4) as pool:
                concurrent = list(pool.map(lambda b: model.forward(b)[0], batches))
            for a, b in zip(sequential, concurrent, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

    def test_close(self, backend: str, model_dir: Callable[[str], Path], bus: np.ndarray) -> None:
        model = load_model(model_dir("detect"), backend)
        model.predict([bus], PredictOptions(imgsz=320))
        model.close()
        with pytest.raises(EngineError, match="closed"):
            model.predict([bus], PredictOptions(imgsz=320))


FIRST_REQUESTS_AT_ONCE = """
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from yolostack_engine import PredictOptions, load_model

model = load_model(sys.argv[1], "openvino")
image = np.full((480, 640, 3), 114, np.uint8)
with ThreadPoolExecutor(6) as pool:
    list(pool.map(lambda _: model.predict([image], PredictOptions(imgsz=640)), range(12)))
print("done")
"""


@pytest.mark.slow
class TestFirstRequests:
    def test_a_fresh_process_survives_concurrent_first_requests(self, model_dir: Callable[[str], Path]) -> None:
        """OpenVINO's binding deadlocks when the very first ``infer`` runs on two threads at once (a
        static initialised under the GIL; 2 of 14 fresh processes hung here without the warm-up in
        ``load_model``). Each run is a new process, since only a process's first calls can race."""
        directory = model_dir("detect")
        for _ in range(4):
            result = subprocess.run(
                [sys.executable, "-c", FIRST_REQUESTS_AT_ONCE, str(directory)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert result.returncode == 0, result.stderr[-2000:]
            assert "done" in result.stdout


@pytest.mark.slow
class TestTorchLoadsThroughTheAllowlist:
    def test_hostile_model_pt_is_refused_in_process(self, model_dir: Callable[[str], Path], tmp_path: Path) -> None:
        from tests.fixtures.checkpoints import malicious_checkpoint
        from yolostack_engine.convert import UnsafeCheckpoint

        directory = tmp_path / "served"
        shutil.copytree(model_dir("detect"), directory)
        marker = tmp_path / "pwned"
        malicious_checkpoint(directory / "model.pt", marker)
        with pytest.raises((UnsafeCheckpoint, EngineError)):
            load_model(directory, "torch")
        assert not marker.exists()
