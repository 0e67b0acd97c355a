"""Child-side conversion: load a checkpoint through the restricted unpickler, inspect it, export ONNX.

Only imported inside the `python -m yolostack_engine.convert` child; it imports torch and ultralytics lazily.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

from yolostack_engine.convert import safe_pickle

META_FORMAT_VERSION = 1
MIN_IMGSZ, MAX_IMGSZ = 16, 4096
MAX_CLASSES = 100_000
# Model structure only (weights live in separate records): yolo11x's is well under 2 MB.
MAX_PICKLE_BYTES = 256 << 20


class ChildError(Exception):
    """A conversion failure with a stable code the parent turns into a user-facing message."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}" if detail else code)


def copy_with_digest(source: Path, target: Path, max_bytes: int) -> str:
    """Copy the upload into the output folder and return its sha256."""
    digest = hashlib.sha256()
    with source.open("rb") as src, target.open("wb") as dst:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            dst.write(chunk)
            if dst.tell() > max_bytes:
                raise ChildError("too_large")
    return digest.hexdigest()


def check_archive(path: Path) -> bytes:
    """Refuse anything but a torch.save() zip (legacy pickles, TorchScript, garbage); return its data.pkl."""
    if path.stat().st_size == 0 or not zipfile.is_zipfile(path):
        raise ChildError("not_checkpoint")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = [i.filename for i in infos]
            if any(n.rpartition("/")[2] == "constants.pkl" or "/code/" in f"/{n}" for n in names):
                raise ChildError("torchscript")
            pickles = [i for i in infos if i.filename.count("/") == 1 and i.filename.endswith("/data.pkl")]
            if len(pickles) != 1 or pickles[0].file_size > MAX_PICKLE_BYTES:
                raise ChildError("not_checkpoint")
            return archive.read(pickles[0])
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise ChildError("not_checkpoint") from e


def check_pickle(data: bytes) -> None:
    """Refuse unknown globals by name, before torch is imported (fast, and nothing named gets imported)."""
    try:
        safe_pickle.check_globals(data)
    except (ValueError, pickle.UnpicklingError) as e:
        raise ChildError("not_checkpoint") from e


def install_restricted_load() -> None:
    """Route every torch.load in this process (ultralytics' included) through the restricted unpickler."""
    import torch

    original = torch.load

    def restricted_load(f: Any, *_args: Any, **_kwargs: Any) -> Any:
        # Callers' pickle_module/weights_only/mmap are ignored on purpose: nothing may bypass the allowlist.
        if not isinstance(f, str | Path):
            raise ChildError("not_checkpoint")
        check_archive(Path(f))
        return original(f, map_location="cpu", pickle_module=safe_pickle, weights_only=False)

    torch.load = restricted_load
    torch.serialization.load = restricted_load


def find_unsafe(error: BaseException) -> safe_pickle.UnsafeCheckpoint | ChildError | None:
    """The refusal at the root of a (possibly wrapped) loading error, if any."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, safe_pickle.UnsafeCheckpoint | ChildError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Unpickle the checkpoint dict and check it holds an ultralytics model."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu")
    except MemoryError:
        raise
    except Exception as e:
        root = find_unsafe(e)
        if root is not None:
            raise root from None
        raise ChildError("not_checkpoint") from e
    if not isinstance(ckpt, dict):
        raise ChildError("not_ultralytics")
    model = ckpt.get("ema") or ckpt.get("model")
    from ultralytics.nn.tasks import BaseModel

    if not isinstance(model, BaseModel):
        raise ChildError("not_ultralytics")
    return ckpt


def load_yolo(path: Path) -> Any:
    """Load the checkpoint the way ultralytics does (YOLO(path)), mapping its errors to codes."""
    from ultralytics.models.yolo.model import YOLO

    try:
        return YOLO(str(path))
    except MemoryError:
        raise
    except Exception as e:
        root = find_unsafe(e)
        if root is not None:
            raise root from None
        raise ChildError("unsupported") from e


def _imgsz(value: Any) -> list[int]:
    """[h, w] from a train imgsz (int or pair), bounded so a forged value cannot blow up the export."""
    pair = [value, value] if isinstance(value, int) else list(value) if isinstance(value, list | tuple) else []
    if len(pair) != 2 or not all(isinstance(v, int) and MIN_IMGSZ <= v <= MAX_IMGSZ for v in pair):
        raise ChildError("bad_imgsz")
    return [int(pair[0]), int(pair[1])]


def _names(value: Any) -> dict[str, str]:
    """Class names as {"0": "person"}, refusing anything but int -> str maps."""
    if isinstance(value, list | tuple):
        value = dict(enumerate(value))
    if not isinstance(value, dict) or not 0 < len(value) <= MAX_CLASSES:
        raise ChildError("bad_names")
    if not all(isinstance(k, int) and isinstance(v, str) for k, v in value.items()):
        raise ChildError("bad_names")
    return {str(k): v for k, v in sorted(value.items())}


def _json_safe(value: Any, depth: int = 0) -> Any:
    """Keep only JSON-representable scalars and containers of them."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return _json_safe(value.item(), depth)
    if depth < 3 and isinstance(value, list | tuple):
        return [_json_safe(v, depth + 1) for v in value]
    if depth < 3 and isinstance(value, dict):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    return str(value)


def describe(yolo: Any, ckpt: dict[str, Any]) -> dict[str, Any]:
    """The meta.json fields read from the loaded model and its checkpoint."""
    model = yolo.model
    args = model.args if isinstance(getattr(model, "args", None), dict) else {}
    kpt_shape = model.model[-1].kpt_shape if yolo.task == "pose" else None
    meta: dict[str, Any] = {
        "format_version": META_FORMAT_VERSION,
        "task": str(yolo.task),
        "names": _names(model.names),
        "imgsz": _imgsz(args.get("imgsz", 640)),
        "stride": int(max(model.stride)),
        "kpt_shape": [int(v) for v in kpt_shape] if kpt_shape else None,
        "end2end": bool(getattr(model, "end2end", False)),
        "channels": int(model.yaml.get("channels", 3)),
        "parameters": sum(int(p.numel()) for p in model.parameters()),
        "ultralytics": str(ckpt.get("version") or ""),
    }
    train_args = ckpt.get("train_args")
    if isinstance(train_args, dict) and train_args:
        meta["train_args"] = _json_safe(train_args)
        if isinstance(train_args.get("epochs"), int):
            meta["epochs"] = train_args["epochs"]
    metrics = ckpt.get("train_metrics")
    if isinstance(metrics, dict) and metrics:
        meta["metrics"] = {str(k): _json_safe(v) for k, v in metrics.items() if isinstance(k, str)}
    return meta


def export_onnx(yolo: Any, imgsz: list[int], out_dir: Path) -> Path:
    """Export ONNX next to model.pt (ultralytics names it after the .pt) with dynamic axes."""
    try:
        produced = Path(yolo.export(format="onnx", dynamic=True, simplify=True, imgsz=imgsz, device="cpu"))
    except MemoryError:
        raise
    except Exception as e:
        raise ChildError("export_failed") from e
    target = out_dir / "model.onnx"
    if produced.resolve() != target.resolve():
        shutil.move(produced, target)
    return target


def onnx_metadata(path: Path) -> dict[str, str]:
    """The metadata ultralytics embedded in the exported graph (what the served file really does)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {prop.key: prop.value for prop in model.metadata_props}


def convert(source: Path, out_dir: Path, max_bytes: int) -> dict[str, Any]:
    """Copy, load, inspect and export one checkpoint into out_dir; returns the meta written to meta.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pt_path = out_dir / "model.pt"
    digest = copy_with_digest(source, pt_path, max_bytes)
    check_pickle(check_archive(pt_path))
    install_restricted_load()
    ckpt = load_checkpoint(pt_path)
    yolo = load_yolo(pt_path)
    meta = describe(yolo, ckpt)
    meta["sourceSha256"] = digest
    onnx_path = export_onnx(yolo, meta["imgsz"], out_dir)
    # ultralytics decides the end-to-end branch at export time (nms=False only), so the graph is the truth.
    meta["end2end"] = onnx_metadata(onnx_path).get("end2end") == "True"
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return meta
