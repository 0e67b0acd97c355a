"""Checkpoint conversion in a confined child: real checkpoints convert, hostile or broken ones are refused."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.synthetic import make_yolo_detect
from yolostack_engine.convert import (
    ConversionError,
    UnsafeCheckpoint,
    convert_checkpoint,
    convert_checkpoint_async,
    safe_pickle,
)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """yolo11n detect and cls checkpoints saved by ultralytics from the package yaml files."""
    from ultralytics.models.yolo.model import YOLO

    root = tmp_path_factory.mktemp("checkpoints")
    paths = {}
    for kind, yaml in (("detect", "yolo11n.yaml"), ("classify", "yolo11n-cls.yaml")):
        paths[kind] = root / f"{kind}.pt"
        YOLO(yaml).save(paths[kind])
    return paths


def num_params(pt: Path) -> int:
    """Parameter count as ultralytics reports it for the loaded checkpoint."""
    from ultralytics.models.yolo.model import YOLO
    from ultralytics.utils.torch_utils import get_num_params

    return int(get_num_params(YOLO(pt).model))  # type: ignore[no-untyped-call]


def torch_save(obj: Any, path: Path) -> Path:
    """torch.save an object (the tests' only way of writing real torch-zip archives)."""
    import torch

    torch.save(obj, path)
    return path


class Evil:
    """Pickles as a call to `target(*args)`, the classic pickle code-execution payload."""

    def __init__(self, target: Any, *args: Any) -> None:
        self.target = target
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.target, self.args


def assert_refused(pt: Path, out_dir: Path, message: str, **kwargs: Any) -> ConversionError:
    """Conversion raises a ConversionError containing `message` and leaves out_dir untouched."""
    with pytest.raises(ConversionError) as caught:
        convert_checkpoint(pt, out_dir, **kwargs)
    assert message in caught.value.message
    assert str(pt.parent) not in caught.value.message
    assert not out_dir.exists()
    return caught.value


@pytest.mark.slow
class TestConvertRealCheckpoints:
    def test_detect_meta_and_onnx(self, checkpoints: dict[str, Path], tmp_path: Path) -> None:
        import numpy as np
        import onnxruntime as ort

        pt = checkpoints["detect"]
        result = convert_checkpoint(pt, tmp_path / "out")
        meta = result.meta
        assert set(result.files) == {"model.pt", "model.onnx", "meta.json"}
        assert json.loads(result.files["meta.json"].read_text()) == meta
        assert result.files["model.pt"].read_bytes() == pt.read_bytes()
        assert meta["format_version"] == 1
        assert meta["task"] == "detect"
        assert meta["names"]["0"] == "0"
        assert len(meta["names"]) == 80
        assert meta["imgsz"] == [640, 640]
        assert meta["stride"] == 32
        assert meta["kpt_shape"] is None
        assert meta["end2end"] is False
        assert meta["channels"] == 3
        assert meta["parameters"] == num_params(pt)
        assert len(meta["sourceSha256"]) == 64

        session = ort.InferenceSession(str(result.files["model.onnx"]), providers=["CPUExecutionProvider"])
        shape = session.get_inputs()[0].shape
        assert isinstance(shape[2], str)
        assert isinstance(shape[3], str)
        (output,) = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 256, 320), np.float32)})
        assert output.shape == (1, 84, (32 * 40 + 16 * 20 + 8 * 10))

    def test_classify_meta(self, checkpoints: dict[str, Path], tmp_path: Path) -> None:
        pt = checkpoints["classify"]
        meta = convert_checkpoint(pt, tmp_path / "out").meta
        assert meta["task"] == "classify"
        assert len(meta["names"]) == 1000
        assert meta["parameters"] == num_params(pt)
        assert (tmp_path / "out" / "model.onnx").is_file()

    def test_trainer_checkpoint(self, tmp_path: Path) -> None:
        from ultralytics.models.yolo.model import YOLO

        root = make_yolo_detect(tmp_path / "data", images=8, size=64)
        data_yaml = root / "data.yaml"
        data_yaml.write_text(data_yaml.read_text().replace("path: .", f"path: {root}"))
        YOLO("yolo11n.yaml").train(
            data=str(root / "data.yaml"),
            epochs=1,
            imgsz=64,
            batch=4,
            workers=0,
            device="cpu",
            plots=False,
            amp=False,
            verbose=False,
            project=str(tmp_path / "runs"),
            name="t",
        )
        pt = tmp_path / "runs" / "t" / "weights" / "last.pt"
        meta = convert_checkpoint(pt, tmp_path / "out").meta
        assert meta["names"] == {"0": "square", "1": "circle"}
        assert meta["imgsz"] == [64, 64]
        assert meta["epochs"] == 1
        assert meta["train_args"]["imgsz"] == 64
        assert "metrics/mAP50(B)" in meta["metrics"]
        assert meta["parameters"] == num_params(pt)


PAYLOADS = {
    "os.system": lambda marker: Evil(os.system, f"touch {marker}"),
    "subprocess.Popen": lambda marker: Evil(subprocess.Popen, ["touch", str(marker)]),
    "builtins.eval": lambda marker: Evil(eval, f"open({str(marker)!r}, 'w')"),
    "builtins.exec": lambda marker: Evil(exec, f"open({str(marker)!r}, 'w')"),
}


class TestSafePickle:
    @pytest.mark.parametrize("name", sorted(PAYLOADS))
    def test_raw_pickle_payload_refused(self, name: str, tmp_path: Path) -> None:
        marker = tmp_path / "pwned"
        data = pickle.dumps({"model": PAYLOADS[name](marker)}, protocol=2)
        with pytest.raises(UnsafeCheckpoint):
            safe_pickle.loads(data)
        assert not marker.exists()

    def test_posix_system_is_named(self) -> None:
        with pytest.raises(UnsafeCheckpoint, match=r"forbidden global 'posix\.system'"):
            safe_pickle.loads(pickle.dumps(Evil(os.system, "true")))

    @pytest.mark.parametrize(
        ("module", "name"),
        [
            ("builtins", "getattr"),
            ("torch", "load"),
            ("torch.hub", "load"),
            ("ultralytics.nn.autobackend", "AutoBackend"),
            ("ultralytics.utils.checks", "check_requirements"),
            ("importlib", "import_module"),
            ("builtins", "__import__"),
            ("builtins", "open"),
            ("runpy", "run_path"),
        ],
    )
    def test_dangerous_globals_refused(self, module: str, name: str) -> None:
        if (module, name) == ("builtins", "getattr"):
            obj, _ = safe_pickle.resolve_global(module, name)
            with pytest.raises(UnsafeCheckpoint, match="attribute access"):
                obj(os, "system")
            return
        with pytest.raises(UnsafeCheckpoint):
            safe_pickle.resolve_global(module, name)

    def test_allowed_model_class_cannot_be_called(self) -> None:
        from ultralytics.nn.tasks import DetectionModel

        with pytest.raises(UnsafeCheckpoint, match="forbidden call to 'ultralytics.nn.tasks.DetectionModel'"):
            safe_pickle.loads(pickle.dumps(Evil(DetectionModel, "/etc/passwd"), protocol=2))

    @pytest.mark.slow
    def test_real_checkpoint_loads(self, checkpoints: dict[str, Path]) -> None:
        import torch

        ckpt = torch.load(checkpoints["detect"], weights_only=False, pickle_module=safe_pickle)
        assert type(ckpt["model"]).__name__ == "DetectionModel"


class TestRefusedCheckpoints:
    @pytest.mark.parametrize("name", ["os.system", "subprocess.Popen", "builtins.eval"])
    def test_torch_zip_payload_refused_in_child(self, name: str, tmp_path: Path) -> None:
        marker = tmp_path / "pwned"
        pt = torch_save({"model": PAYLOADS[name](marker)}, tmp_path / "evil.pt")
        error = assert_refused(pt, tmp_path / "out", "the checkpoint references a forbidden")
        assert error.code == "unsafe"
        assert not marker.exists()

    def test_raw_pickle_file_refused(self, tmp_path: Path) -> None:
        marker = tmp_path / "pwned"
        pt = tmp_path / "legacy.pt"
        pt.write_bytes(pickle.dumps({"model": Evil(os.system, f"touch {marker}")}))
        assert_refused(pt, tmp_path / "out", "not a PyTorch checkpoint")
        assert not marker.exists()

    @pytest.mark.parametrize(
        "content",
        [b"", b"\x89PNG\r\n\x1a\n" + os.urandom(2048), b"PK\x03\x04" + os.urandom(100)],
        ids=["empty", "png", "zip-head"],
    )
    def test_not_a_checkpoint(self, content: bytes, tmp_path: Path) -> None:
        pt = tmp_path / "x.pt"
        pt.write_bytes(content)
        assert_refused(pt, tmp_path / "out", "not a PyTorch checkpoint")

    def test_truncated_checkpoint(self, tmp_path: Path) -> None:
        import torch

        whole = torch_save({"model": torch.zeros(1 << 20)}, tmp_path / "whole.pt").read_bytes()
        pt = tmp_path / "truncated.pt"
        pt.write_bytes(whole[: len(whole) // 2])
        assert_refused(pt, tmp_path / "out", "not a PyTorch checkpoint")

    @pytest.mark.slow
    def test_state_dict_is_not_an_ultralytics_model(self, tmp_path: Path) -> None:
        import torch

        pt = torch_save(torch.nn.Conv2d(3, 8, 3).state_dict(), tmp_path / "sd.pt")
        assert_refused(pt, tmp_path / "out", "checkpoint is not an ultralytics model")

    @pytest.mark.filterwarnings("ignore::FutureWarning")
    def test_torchscript_archive(self, tmp_path: Path) -> None:
        import torch

        pt = tmp_path / "scripted.pt"
        torch.jit.save(torch.jit.script(torch.nn.ReLU()), str(pt))
        assert_refused(pt, tmp_path / "out", "TorchScript archive")

    @pytest.mark.slow
    def test_allocation_bomb_runs_out_of_memory(self, tmp_path: Path) -> None:
        pt = torch_save({"model": Evil(bytearray, 1 << 36)}, tmp_path / "bomb.pt")
        assert_refused(pt, tmp_path / "out", "conversion ran out of memory")

    def test_timeout_kills_the_child(self, tmp_path: Path) -> None:
        import torch

        # Any real checkpoint outlives a 1 s limit: the child alone needs seconds to import torch.
        pt = torch_save(torch.nn.Conv2d(3, 8, 3).state_dict(), tmp_path / "slow-unique-name.pt")
        assert_refused(pt, tmp_path / "out", "conversion timed out after 1 s", timeout_s=1)
        assert not any(str(pt) in cmdline for cmdline in _cmdlines())

    async def test_async_timeout_and_cancel_kill_the_child(self, tmp_path: Path) -> None:
        import torch

        pt = torch_save(torch.nn.Conv2d(3, 8, 3).state_dict(), tmp_path / "async-unique-name.pt")
        with pytest.raises(ConversionError, match="timed out after 0.5 s"):
            await convert_checkpoint_async(pt, tmp_path / "out", timeout_s=0.5)
        task = asyncio.create_task(convert_checkpoint_async(pt, tmp_path / "out"))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not any(str(pt) in cmdline for cmdline in _cmdlines())
        assert not (tmp_path / "out").exists()

    async def test_async_variant(self, tmp_path: Path) -> None:
        pt = tmp_path / "garbage.pt"
        pt.write_bytes(b"garbage" * 100)
        with pytest.raises(ConversionError, match="not a PyTorch checkpoint"):
            await convert_checkpoint_async(pt, tmp_path / "out")


def _cmdlines() -> list[str]:
    """Command lines of every running process."""
    lines = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                lines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return lines


def test_import_does_not_load_torch() -> None:
    code = "import sys, yolostack_engine.convert; print('torch' in sys.modules, 'ultralytics' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_zip_without_pickle_is_not_a_checkpoint(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/readme.txt", "hello")
    pt = tmp_path / "x.pt"
    pt.write_bytes(buffer.getvalue())
    assert_refused(pt, tmp_path / "out", "not a PyTorch checkpoint")


def test_cli_prints_one_json_line_and_fails(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"junk")
    command = [sys.executable, "-m", "yolostack_engine.convert", "junk.pt", "out"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert json.loads(done.stdout) == {"ok": False, "code": "not_checkpoint", "detail": "", "message": "not_checkpoint"}
