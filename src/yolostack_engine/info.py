"""What a served model is: task, class names, input size, read from its directory."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yolostack_engine.errors import EngineError

TASKS = ("detect", "segment", "pose", "obb", "classify")


@dataclass(frozen=True)
class ModelInfo:
    """Model metadata the pre- and post-processing need."""

    task: str
    names: dict[int, str]
    imgsz: tuple[int, int]
    stride: int
    kpt_shape: tuple[int, int] | None
    end2end: bool
    channels: int = 3

    @classmethod
    def from_dir(cls, directory: Path) -> ModelInfo:
        """Read meta.json, else the ONNX metadata_props, else the .pt checkpoint."""
        directory = Path(directory)
        if not directory.is_dir():
            raise EngineError(f"model directory not found: {directory}")
        if (directory / "meta.json").is_file():
            return cls.from_mapping(json.loads((directory / "meta.json").read_text()))
        if (directory / "model.onnx").is_file():
            return cls.from_mapping(read_onnx_metadata(directory / "model.onnx"))
        if (directory / "model.pt").is_file():
            return cls.from_mapping(read_pt_metadata(directory / "model.pt"))
        raise EngineError(f"no meta.json, model.onnx or model.pt in {directory}")

    @classmethod
    def from_mapping(cls, meta: dict[str, Any]) -> ModelInfo:
        """Build from a metadata dict (values may be strings as ONNX stores them)."""
        meta = {k: _literal(k, v) for k, v in meta.items()}
        task = str(meta.get("task", "detect"))
        if task not in TASKS:
            raise EngineError(f"unsupported task {task!r}; supported: {', '.join(TASKS)}")
        imgsz = meta.get("imgsz", 640)
        size = (int(imgsz), int(imgsz)) if isinstance(imgsz, int | float) else (int(imgsz[0]), int(imgsz[-1]))
        kpt = meta.get("kpt_shape")
        args = meta.get("args") or {}
        return cls(
            task=task,
            names={int(k): str(v) for k, v in dict(meta.get("names") or {}).items()},
            imgsz=size,
            stride=int(meta.get("stride", 32)),
            kpt_shape=(int(kpt[0]), int(kpt[1])) if kpt else None,
            end2end=bool(meta.get("end2end", False) or (isinstance(args, dict) and args.get("nms", False))),
            channels=int(meta.get("channels", 3)),
        )


def _literal(key: str, value: Any) -> Any:
    """Decode a stringified metadata value the way ultralytics' AutoBackend does."""
    if isinstance(value, str) and key in {"imgsz", "names", "kpt_shape", "args", "end2end", "stride", "channels"}:
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def read_onnx_metadata(path: Path) -> dict[str, Any]:
    """Return the metadata_props of an ONNX file without loading its weights."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def read_pt_metadata(path: Path) -> dict[str, Any]:
    """Return task, names, stride and kpt_shape of an ultralytics checkpoint."""
    from ultralytics.nn.tasks import load_checkpoint

    model, _ = load_checkpoint(str(path), device="cpu")  # type: ignore[no-untyped-call]
    yaml = getattr(model, "yaml", {}) or {}
    return {
        "task": getattr(model, "task", "detect"),
        "names": dict(model.names),
        "stride": int(max(model.stride)) if hasattr(model, "stride") else 32,
        "kpt_shape": getattr(model, "kpt_shape", None) or yaml.get("kpt_shape"),
        "end2end": bool(getattr(model, "end2end", False)),
        "channels": int(yaml.get("channels", 3)),
        "imgsz": (model.args or {}).get("imgsz", 640) if isinstance(getattr(model, "args", None), dict) else 640,
    }
