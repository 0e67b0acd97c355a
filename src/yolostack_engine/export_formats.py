"""Export formats: the names the seed and the SDK send, what ``ultralytics`` calls each, the arguments each
takes, and what a worker needs installed to produce it.

Pure data and ``importlib.metadata`` look-ups: the server checks a request without importing torch, and the
job runner (``yolostack.worker.runner``, a child process) imports this module to check its own worker before exporting.
"""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import sys
from dataclasses import dataclass, field

# seed 004, "Экспорт API"
SEED_FORMATS = [
    "onnx",
    "torchscript",
    "openvino",
    "tensorrt",
    "coreml",
    "tflite",
    "saved_model",
    "graphdef",
    "paddle",
    "ncnn",
    "edgetpu",
    "tfjs",
    "mnn",
    "rknn",
    "imx",
    "axelera",
    "executorch",
]
# ultralytics-platform's ``exports.create`` Literal; the ``ul`` CLI refuses any other name.
SDK_FORMATS = [
    "torchscript",
    "onnx",
    "openvino",
    "engine",
    "coreml",
    "coreai",
    "saved_model",
    "pb",
    "edgetpu",
    "litert",
    "paddle",
    "mnn",
    "ncnn",
    "imx",
    "rknn",
    "executorch",
    "axelera",
    "deepx",
    "qnn",
    "hailo",
    "ascend",
    "xilinx",
]
# The seed's names that ultralytics 8.4 spells differently; tflite and tfjs both give a LiteRT .tflite since 8.4.83.
ALIASES = {"tensorrt": "engine", "graphdef": "pb", "tflite": "litert", "tfjs": "litert"}
ACCEPTED = tuple(sorted(set(SEED_FORMATS) | set(SDK_FORMATS)))

# ultralytics' ``quantize`` spellings (cfg.QUANTIZE_ALIASES) and the precisions each format can produce.
QUANTIZE_ALIASES: dict[str, int | str] = {
    "8": 8,
    "16": 16,
    "32": 32,
    "int8": 8,
    "fp16": 16,
    "fp32": 32,
    "w8a8": 8,
    "w16a16": 16,
    "w32a32": 32,
    "w8a16": "w8a16",
    "w8a32": "w8a32",
}
FP16_FORMATS = frozenset(
    {"torchscript", "onnx", "openvino", "engine", "coreml", "coreai", "mnn", "ncnn", "rknn", "ascend"}
)
INT8_FORMATS = frozenset(
    {
        "onnx",
        "openvino",
        "engine",
        "coreml",
        "saved_model",
        "edgetpu",
        "litert",
        "mnn",
        "imx",
        "rknn",
        "axelera",
        "deepx",
        "hailo",
        "xilinx",
    }
)
W8A16_FORMATS = frozenset({"coreml", "litert", "qnn"})
W8A32_FORMATS = frozenset({"litert"})
FP32_UNSUPPORTED_FORMATS = frozenset({"edgetpu", "imx", "rknn", "axelera", "deepx", "qnn", "hailo", "ascend", "xilinx"})
# Formats that quantize to INT8 whatever is asked, so they always calibrate on images.
INT8_ONLY = frozenset({"deepx", "axelera", "imx", "edgetpu", "qnn", "hailo", "xilinx"})

LINUX_X86 = frozenset({"linux-x86_64"})
LINUX = frozenset({"linux-x86_64", "linux-aarch64"})
TENSORFLOW = (
    ("tensorflow",),
    ("tf_keras",),
    ("onnx2tf",),
    ("sng4onnx",),
    ("onnx_graphsurgeon",),
    ("ai-edge-litert",),
    ("onnx",),
    ("onnxslim",),
    ("onnxruntime", "onnxruntime-gpu"),
)
TENSORFLOW_PIP = (
    '"tensorflow>=2.0.0,<=2.19.0" "tf_keras<=2.19.0" "onnx2tf>=1.26.3,<1.29.0" sng4onnx onnx_graphsurgeon '
    'ai-edge-litert "protobuf>=5"'
)
ONNX = (("onnx",), ("onnxslim",), ("onnxruntime", "onnxruntime-gpu"))


@dataclass(frozen=True)
class ExportFormat:
    """One ``format=`` of ``YOLO.export``: its arguments and what a worker must have to produce it."""

    name: str
    label: str
    # What ``export`` writes: a file suffix, or a directory suffix (``_openvino_model``), which travels zipped.
    output: str
    arguments: frozenset[str]
    # Distributions that must be installed, each a tuple of interchangeable ones (onnxruntime or onnxruntime-gpu).
    packages: tuple[tuple[str, ...], ...] = ()
    install: str = ""
    gpu: bool = False
    platforms: frozenset[str] | None = None
    # Executables that must be on PATH, with what they are.
    binaries: tuple[tuple[str, str], ...] = ()
    # Why this format's toolchain cannot share the server's environment (it changes pinned packages).
    separate_env: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def is_directory(self) -> bool:
        return not self.output.startswith(".")


def _fmt(name: str, label: str, output: str, arguments: str, **fields: object) -> ExportFormat:
    return ExportFormat(name, label, output, frozenset(arguments.split()), **fields)  # type: ignore[arg-type]


FORMATS: dict[str, ExportFormat] = {
    spec.name: spec
    for spec in (
        _fmt("torchscript", "TorchScript", ".torchscript", "batch quantize nms dynamic"),
        _fmt(
            "onnx",
            "ONNX",
            ".onnx",
            "batch data dynamic quantize opset simplify nms fraction",
            packages=ONNX,
            install="pip install onnx onnxslim onnxruntime",
        ),
        _fmt(
            "openvino",
            "OpenVINO",
            "_openvino_model",
            "batch data dynamic quantize nms fraction",
            packages=(("openvino",),),
            install="pip install openvino",
        ),
        _fmt(
            "engine",
            "TensorRT",
            ".engine",
            "batch data dynamic quantize opset simplify workspace nms fraction",
            packages=(("tensorrt", "tensorrt-cu12", "tensorrt-cu13"), *ONNX),
            install="pip install tensorrt-cu12 (or tensorrt-cu13, matching the CUDA of torch)",
            gpu=True,
        ),
        _fmt(
            "coreml",
            "CoreML",
            ".mlpackage",
            "batch dynamic quantize nms",
            packages=(("coremltools",),),
            install='pip install "coremltools>=9.0" "numpy<=2.3.5" scikit-learn',
            separate_env="coremltools needs numpy<=2.3.5",
            notes=("exports on Linux; the .mlpackage only predicts on macOS",),
        ),
        _fmt(
            "coreai",
            "Core AI",
            ".aimodel",
            "batch quantize",
            packages=(("coreai-torch",),),
            install='pip install "coreai-torch>=0.4.3"',
            platforms=frozenset({"linux-x86_64", "darwin-arm64"}),
        ),
        _fmt(
            "saved_model",
            "TensorFlow SavedModel",
            "_saved_model",
            "batch data fraction quantize opset nms",
            packages=TENSORFLOW,
            install=f"pip install {TENSORFLOW_PIP}",
            separate_env="TensorFlow 2.19 pins numpy 2.1, onnx 1.22 and protobuf 5, about 2 GB",
        ),
        _fmt(
            "pb",
            "TensorFlow GraphDef",
            ".pb",
            "batch opset",
            packages=TENSORFLOW,
            install=f"pip install {TENSORFLOW_PIP}",
            separate_env="TensorFlow 2.19 pins numpy 2.1, onnx 1.22 and protobuf 5, about 2 GB",
        ),
        _fmt(
            "edgetpu",
            "TensorFlow Edge TPU",
            "_edgetpu.tflite",
            "data fraction quantize opset",
            packages=TENSORFLOW,
            install=f"pip install {TENSORFLOW_PIP}",
            platforms=LINUX_X86,
            binaries=(("edgetpu_compiler", "Google's Edge TPU compiler (Coral apt repository; not on PyPI)"),),
            separate_env="TensorFlow 2.19 pins numpy 2.1, onnx 1.22 and protobuf 5, about 2 GB",
        ),
        _fmt(
            "litert",
            "LiteRT",
            ".tflite",
            "batch quantize data fraction",
            packages=(("litert-torch",), ("ai-edge-litert",)),
            install='pip install "litert-torch>=0.10.0" "ai-edge-litert>=2.3.0"',
            platforms=frozenset({"linux-x86_64", "darwin-arm64", "darwin-x86_64"}),
            separate_env="litert-torch pulls jax and torchao, about 1.1 GB",
        ),
        _fmt(
            "paddle",
            "PaddlePaddle",
            "_paddle_model",
            "batch",
            packages=(("paddlepaddle", "paddlepaddle-gpu"), ("x2paddle",), ("six",)),
            install='pip install "paddlepaddle>=3.0.0,<3.3.0" x2paddle six',
            separate_env="PaddlePaddle is about 700 MB",
        ),
        _fmt(
            "mnn",
            "MNN",
            ".mnn",
            "batch dynamic quantize opset simplify nms",
            packages=(("MNN",), *ONNX),
            install='pip install "MNN>=2.9.6"',
            separate_env="MNN's converter runs `pip install` at import; give it a venv whose pip cannot touch the server",
        ),
        _fmt(
            "ncnn",
            "NCNN",
            "_ncnn_model",
            "batch quantize",
            packages=(("ncnn",), ("pnnx",)),
            install='pip install ncnn "pnnx==20260526" (or: pip install "yolostack[exports]")',
        ),
        _fmt(
            "imx",
            "Sony IMX500",
            "_imx_model",
            "data quantize fraction nms",
            packages=(
                ("model-compression-toolkit",),
                ("edge-mdt-cl",),
                ("edge-mdt-tpc",),
                ("imx500-converter",),
                *ONNX,
            ),
            install=(
                'pip install "model-compression-toolkit>=2.4.1" "edge-mdt-cl>=1.1.0" "edge-mdt-tpc>=1.2.0" '
                '"pydantic<2.12" "imx500-converter[pt]>=3.18.2"'
            ),
            platforms=LINUX,
            binaries=(("java", "a Java runtime >= 17 (e.g. apt install openjdk-17-jre)"),),
            separate_env="the IMX toolchain pins pydantic<2.12, onnxruntime 1.21 and protobuf 4",
        ),
        _fmt(
            "rknn",
            "Rockchip RKNN",
            "_rknn_model",
            "batch name quantize opset simplify data fraction",
            packages=(("rknn-toolkit2",), *ONNX),
            install='pip install "rknn-toolkit2>=2.3.2,<2.5" --no-deps "numpy<=1.26.4" "onnx>=1.16.1,<1.19"',
            platforms=LINUX,
            separate_env="rknn-toolkit2 needs numpy 1.x, protobuf<=4.25 and onnx<1.19",
            notes=("exports on x86 Linux; the .rknn only runs on Rockchip devices",),
        ),
        _fmt(
            "executorch",
            "ExecuTorch",
            "_executorch_model",
            "batch",
            packages=(("executorch",),),
            install='pip install executorch "numpy<=2.3.5"',
            separate_env="executorch needs numpy<=2.3.5, about 540 MB",
        ),
        _fmt(
            "axelera",
            "Axelera AI",
            "_axelera_model",
            "batch quantize fraction data",
            packages=(("axelera-devkit",),),
            install="pip install axelera-devkit==1.9.0 --extra-index-url "
            "https://software.axelera.ai/artifactory/api/pypi/axelera-pypi/simple (not on PyPI)",
            platforms=LINUX,
        ),
        _fmt(
            "deepx",
            "DEEPX",
            "_deepx_model",
            "data quantize opset simplify optimize",
            packages=(("dx-com",),),
            install='pip install "dx_com>=2.4.1" --no-deps',
            platforms=LINUX_X86,
        ),
        _fmt(
            "qnn",
            "Qualcomm QNN",
            "_qnn.onnx",
            "batch name quantize opset simplify fraction data",
            packages=(("onnxruntime-qnn",), ("onnx",)),
            install="pip install onnxruntime-qnn",
            separate_env="onnxruntime-qnn replaces the server's onnxruntime",
        ),
        _fmt(
            "hailo",
            "Hailo",
            "_hailo_model",
            "name quantize data fraction simplify conf iou",
            packages=(("hailo-dataflow-compiler",),),
            install="the Hailo Dataflow Compiler wheel from Hailo's Developer Zone (not on PyPI)",
            platforms=LINUX_X86,
        ),
        _fmt(
            "ascend",
            "Huawei Ascend",
            "_ascend_model",
            "batch name quantize opset simplify nms",
            packages=ONNX,
            install="Huawei's CANN toolkit (source /usr/local/Ascend/ascend-toolkit/set_env.sh)",
            binaries=(("atc", "the CANN toolkit's ATC compiler"),),
        ),
        _fmt(
            "xilinx",
            "AMD Xilinx",
            "_xilinx_model",
            "name quantize data fraction opset simplify",
            packages=(("amd-quark",), *ONNX),
            install='pip install "amd-quark>=0.13.0,<0.14.0"',
            platforms=LINUX,
        ),
    )
}
# Every format-specific argument (ultralytics' validate_args refuses one the format does not list).
EXPORT_ARGUMENTS = frozenset().union(*(spec.arguments for spec in FORMATS.values())) - {"conf", "iou", "name"}


def canonical(requested: str) -> ExportFormat | None:
    """The format for a name the seed or the SDK sends (case-insensitive), or None."""
    name = requested.strip().lower()
    if name not in ACCEPTED:
        return None
    return FORMATS[ALIASES.get(name, name)]


def this_platform() -> str:
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine) if sys.platform != "darwin" else machine
    return f"{sys.platform}-{machine}"


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def missing(spec: ExportFormat, *, gpus: int) -> list[str]:
    """What this machine lacks to produce ``spec``, in words; empty when it can."""
    lacking: list[str] = []
    if spec.platforms is not None and this_platform() not in spec.platforms:
        lacking.append(f"one of the platforms {', '.join(sorted(spec.platforms))} (this is {this_platform()})")
    if spec.gpu and gpus < 1:
        lacking.append("a CUDA GPU (this worker has none)")
    for choices in spec.packages:
        if not any(_installed(name) for name in choices):
            lacking.append(f"the Python package {' or '.join(choices)}")
    for executable, what in spec.binaries:
        if shutil.which(executable) is None:
            lacking.append(f"{what}: `{executable}` on PATH")
    return lacking


def unavailable_message(spec: ExportFormat, lacking: list[str]) -> str:
    """One sentence naming everything ``missing`` found, and how to install what pip can install."""
    prefix = "the Python package "
    packages = [item.removeprefix(prefix) for item in lacking if item.startswith(prefix)]
    parts = [item for item in lacking if not item.startswith(prefix)]
    if packages:
        parts.append(prefix + packages[0] if len(packages) == 1 else f"the Python packages {', '.join(packages)}")
    message = f"format '{spec.name}' ({spec.label}) cannot be exported on this server: it needs {'; '.join(parts)}"
    if spec.install and (packages or any(item.endswith("on PATH") for item in lacking)):
        message += f". Install: {spec.install}"
        if spec.separate_env:
            message += f", in a separate worker environment ({spec.separate_env})"
    return message
