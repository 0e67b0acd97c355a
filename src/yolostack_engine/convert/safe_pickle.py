"""A restricted pickle module for `torch.load(pickle_module=...)` that rebuilds only ultralytics checkpoints.

Only the globals real checkpoints reference resolve (checked against yolo11n/seg/pose/obb/cls/yolo26n saves and
trainer checkpoints). Classes may be *allocated* (NEWOBJ) and filled (BUILD) but never *called* with arguments:
only a short list of data constructors and tensor rebuilders may run under REDUCE, so an allowed model class cannot
be abused to run its `__init__` (which reads files or downloads) with attacker-chosen arguments.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import enum
import importlib
import io
import pickle
import pickletools
import types
from collections.abc import Callable
from typing import Any, BinaryIO

# torch.load also reads these from the pickle module it is given.
HIGHEST_PROTOCOL = pickle.HIGHEST_PROTOCOL
UnpicklingError = pickle.UnpicklingError
Pickler = pickle.Pickler
dump = pickle.dump
dumps = pickle.dumps


class UnsafeCheckpoint(Exception):
    """A checkpoint references a global or call outside the allowlist."""

    def __init__(self, global_name: str, reason: str = "forbidden global") -> None:
        self.global_name = global_name
        self.reason = reason
        super().__init__(f"the checkpoint references a {reason} '{global_name}'")


# Old module paths ultralytics itself maps when loading (see ultralytics.nn.tasks.torch_safe_load).
_MODULE_ALIASES = {
    "ultralytics.yolo.utils": "ultralytics.utils",
    "ultralytics.yolo.v8": "ultralytics.models.yolo",
    "ultralytics.yolo.data": "ultralytics.data",
    "pathlib._local": "pathlib",
}
_NAME_ALIASES = {
    "ultralytics.nn.modules.block.Silence": "torch.nn.modules.linear.Identity",
    "ultralytics.nn.tasks.YOLOv10DetectionModel": "ultralytics.nn.tasks.DetectionModel",
    "ultralytics.utils.loss.v10DetectLoss": "ultralytics.utils.loss.E2EDetectLoss",
    "pathlib.WindowsPath": "pathlib.PosixPath",
}

# Globals that may also be *called* while unpickling: data constructors and tensor rebuilders with no side effects.
_CALLABLE_GLOBALS = frozenset(
    {
        "builtins.set",
        "builtins.frozenset",
        "builtins.slice",
        "builtins.complex",
        "builtins.bytearray",
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "collections.OrderedDict",
        "pathlib.PosixPath",
        "torch.Size",
        "torch.device",
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "ultralytics.utils.IterableSimpleNamespace",
        "types.SimpleNamespace",
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.core.numeric._frombuffer",
        "numpy._core.numeric._frombuffer",
        "torchvision.transforms.functional.InterpolationMode",
    }
)

# Plain (non-nn.Module) classes that may be allocated and filled, never called: old classify transforms, losses.
_DATA_CLASSES = frozenset(
    {
        "torchvision.transforms.transforms.Compose",
        "torchvision.transforms.transforms.Normalize",
        "torchvision.transforms.transforms.Resize",
        "torchvision.transforms.transforms.CenterCrop",
        "torchvision.transforms.transforms.ToTensor",
        "ultralytics.data.augment.CenterCrop",
        "ultralytics.data.augment.ToTensor",
        "ultralytics.data.augment.ClassifyLetterBox",
    }
)
_DATA_CLASS_MODULES = ("ultralytics.utils.loss", "ultralytics.utils.tal")
# Modules whose torch.nn.Module subclasses (layers and ultralytics model classes) a checkpoint may hold.
_MODULE_CLASS_PREFIXES = ("torch.nn.modules.", "ultralytics.nn.modules.")
_MODULE_CLASS_MODULES = frozenset({"torch.nn.modules", "ultralytics.nn.modules", "ultralytics.nn.tasks"})
# Checkpoints pickle bound head methods (Segment.detect = Detect.forward) and enum members through getattr.
_GETATTR_PREFIX = "forward"
# BUILD targets must be instances: updating a class or function would patch code the loader runs later.
_NOT_INSTANCES = (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType)


def _guarded_getattr(obj: Any, name: str) -> Any:
    """Stand-in for builtins.getattr: only enum members and `forward*` methods of torch modules."""
    import torch

    if isinstance(obj, type) and issubclass(obj, enum.Enum) and name in obj.__members__:
        return obj.__members__[name]
    is_module = isinstance(obj, torch.nn.Module) or (isinstance(obj, type) and issubclass(obj, torch.nn.Module))
    if is_module and isinstance(name, str) and name.startswith(_GETATTR_PREFIX) and "__" not in name:
        return getattr(obj, name)
    raise UnsafeCheckpoint(f"getattr({type(obj).__name__}, {name!r})", "forbidden attribute access")


def _guarded_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for _codecs.encode, which protocol-2 pickles use for bytes: text codecs only."""
    if codecs.lookup(encoding).name not in {"latin-1", "iso8859-1", "utf-8", "ascii"}:
        raise UnsafeCheckpoint(f"_codecs.encode(..., {encoding!r})", "forbidden codec")
    return codecs.encode(text, encoding, errors)


_SUBSTITUTES: dict[str, Callable[..., Any]] = {
    "builtins.getattr": _guarded_getattr,
    "_codecs.encode": _guarded_encode,
}


def _normalize(module: str, name: str) -> str:
    """Map protocol-2 and legacy names onto the current dotted name."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    module = _MODULE_ALIASES.get(module, module)
    dotted = f"{module}.{name}"
    return _NAME_ALIASES.get(dotted, dotted)


def _import(dotted: str) -> Any:
    """Import `module.attr` (attr without dots) or refuse it."""
    module, _, attr = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise UnsafeCheckpoint(dotted, "missing global") from e


def _is_module_class_path(module: str) -> bool:
    """Whether `module` is a place nn.Module classes of a checkpoint may come from."""
    return module in _MODULE_CLASS_MODULES or module.startswith(_MODULE_CLASS_PREFIXES)


def is_allowed_name(module: str, name: str) -> bool:
    """Whether a global may be referenced at all, judged by name only (nothing imported)."""
    dotted = _normalize(module, name)
    if dotted in _SUBSTITUTES:
        return True
    if "__" in dotted or not name.isidentifier():
        return False
    mod = dotted.rpartition(".")[0]
    return (
        dotted in _CALLABLE_GLOBALS
        or dotted in _DATA_CLASSES
        or mod in ("torch", *_DATA_CLASS_MODULES)
        or _is_module_class_path(mod)
    )


def resolve_global(module: str, name: str) -> tuple[Any, bool]:
    """Resolve an allowed global; returns (object, may_be_called) or raises UnsafeCheckpoint."""
    dotted = _normalize(module, name)
    if not is_allowed_name(module, name):
        raise UnsafeCheckpoint(dotted)
    if dotted in _SUBSTITUTES:
        return _SUBSTITUTES[dotted], True
    if dotted in _CALLABLE_GLOBALS:
        return _import(dotted), True
    mod = dotted.rpartition(".")[0]
    if mod == "torch":
        return _resolve_torch_value(dotted), False
    obj = _import(dotted)
    if dotted in _DATA_CLASSES or mod in _DATA_CLASS_MODULES:
        if isinstance(obj, type) and (dotted in _DATA_CLASSES or obj.__module__ == mod):
            return obj, False
    elif isinstance(obj, type) and _is_torch_module_class(obj):
        return obj, False
    raise UnsafeCheckpoint(dotted)


def _is_torch_module_class(obj: type) -> bool:
    """Whether a class is a torch.nn.Module subclass (imports torch, so only called in the child)."""
    import torch

    return issubclass(obj, torch.nn.Module)


# Opcodes that push a string, and those that push nothing, for following STACK_GLOBAL's operands.
_STRING_OPS = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
)
_NO_PUSH_OPS = frozenset({"MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "FRAME", "PROTO"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})


def referenced_globals(data: bytes) -> list[tuple[str, str]]:
    """Every (module, name) a pickle would look up, found by walking its opcodes without executing them."""
    memo: dict[Any, Any] = {}
    pushed: list[Any] = [None, None]
    found: list[tuple[str, str]] = []
    for opcode, arg, _ in pickletools.genops(data):
        op = opcode.name
        if op == "GLOBAL" or op == "INST":
            module, _, name = str(arg).partition(" ")
            found.append((module, name))
        elif op == "STACK_GLOBAL":
            module, name = pushed[-2], pushed[-1]
            if not (isinstance(module, str) and isinstance(name, str)):
                raise UnsafeCheckpoint("STACK_GLOBAL", "forbidden pickle opcode")
            found.append((module, name))
        if op in _NO_PUSH_OPS:
            if op != "FRAME" and op != "PROTO":
                memo[len(memo) if op == "MEMOIZE" else arg] = pushed[-1]
            continue
        pushed.append(arg if op in _STRING_OPS else memo.get(arg) if op in _GET_OPS else None)
        del pushed[0]
    return found


def check_globals(data: bytes) -> None:
    """Refuse a pickle naming any global outside the allowlist, before torch is even imported."""
    for module, name in referenced_globals(data):
        if not is_allowed_name(module, name):
            raise UnsafeCheckpoint(_normalize(module, name))


def _resolve_torch_value(dotted: str) -> Any:
    """Top-level torch globals: only dtypes and layouts (values, never functions)."""
    import torch

    obj = _import(dotted)
    if isinstance(obj, torch.dtype | torch.layout | torch.memory_format):
        return obj
    raise UnsafeCheckpoint(dotted)


# Typeshed describes pickle._Unpickler as the C class; the pure-Python one is what this module extends.
_PurePythonUnpickler: Any = pickle._Unpickler


class Unpickler(_PurePythonUnpickler):  # type: ignore[misc]
    """Pure-Python unpickler whose globals come from the allowlist and whose calls are checked.

    The C unpickler cannot be used: its REDUCE/NEWOBJ handlers cannot be intercepted.
    """

    dispatch = dict(_PurePythonUnpickler.dispatch)

    def __init__(self, file: BinaryIO, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._callable_ids: set[int] = set()

    def find_class(self, module: str, name: str) -> Any:
        """Return an allowlisted global or raise UnsafeCheckpoint."""
        obj, may_call = resolve_global(module, name)
        if may_call:
            self._callable_ids.add(id(obj))
        return obj

    def _check_call(self, func: Any) -> None:
        """Refuse calling anything but the allowlisted constructors and rebuilders."""
        if id(func) not in self._callable_ids:
            raise UnsafeCheckpoint(_describe(func), "forbidden call to")

    def _check_new(self, cls: Any) -> None:
        """NEWOBJ only allocates: the target must be a class that came through find_class."""
        if not isinstance(cls, type):
            raise UnsafeCheckpoint(_describe(cls), "forbidden call to")

    def load_reduce(self) -> None:
        """REDUCE: func(*args), only for allowlisted callables."""
        self._check_call(self.stack[-2])
        super().load_reduce()

    def load_newobj(self) -> None:
        """NEWOBJ: cls.__new__(cls, *args)."""
        self._check_new(self.stack[-2])
        super().load_newobj()

    def load_newobj_ex(self) -> None:
        """NEWOBJ_EX: cls.__new__(cls, *args, **kwargs)."""
        self._check_new(self.stack[-3])
        super().load_newobj_ex()

    def load_build(self) -> None:
        """BUILD fills an instance; refusing classes and functions keeps a pickle from patching them."""
        target = self.stack[-2]
        if isinstance(target, _NOT_INSTANCES) or id(target) in self._callable_ids:
            raise UnsafeCheckpoint(_describe(target), "forbidden state update of")
        super().load_build()

    def load_inst(self) -> None:
        """INST calls a class with arguments: protocol 0, never written by torch."""
        raise UnsafeCheckpoint("INST", "forbidden pickle opcode")

    def load_obj(self) -> None:
        """OBJ calls a class with arguments: protocol 1, never written by torch."""
        raise UnsafeCheckpoint("OBJ", "forbidden pickle opcode")

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex
    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.INST[0]] = load_inst
    dispatch[pickle.OBJ[0]] = load_obj


def _describe(obj: Any) -> str:
    """A dotted name for an object in an error message."""
    module = getattr(obj, "__module__", None) or type(obj).__module__
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}.{name}"


def load(file: BinaryIO, **kwargs: Any) -> Any:
    """Unpickle one object from a file with the restricted unpickler."""
    return Unpickler(file, **kwargs).load()


def loads(data: bytes, **kwargs: Any) -> Any:
    """Unpickle one object from bytes with the restricted unpickler."""
    return load(io.BytesIO(data), **kwargs)
