"""Convert uploaded `.pt` checkpoints to ONNX + meta.json in a confined child process (never unpickled here)."""

from yolostack_engine.convert.runner import (
    ConversionError,
    ConversionResult,
    convert_checkpoint,
    convert_checkpoint_async,
)
from yolostack_engine.convert.safe_pickle import UnsafeCheckpoint

__all__ = ["ConversionError", "ConversionResult", "UnsafeCheckpoint", "convert_checkpoint", "convert_checkpoint_async"]
