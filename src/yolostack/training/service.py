"""``POST /api/training/start``: validate what to train on, queue a durable job for the dispatcher."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.core.errors import AppError, BadRequest, Conflict, NotFound
from yolostack.core.ids import is_id, new_id
from yolostack.datasets.service import dataset as dataset_service
from yolostack.jobs.service import training_view
from yolostack.models.service import ModelRow
from yolostack.tables import Account, Dataset, DatasetStatus, Executor, Job, JobKind, JobStatus, ModelStatus
from yolostack.training.repository import TrainingRepository
from yolostack.training.schemas import TrainingStart

# Arguments the worker owns: where results go and which device it runs on.
RESERVED_ARGS = frozenset({"project", "name", "exist_ok", "save_dir", "device", "resume", "mode", "data"})
ARCHITECTURE = {
    "detect": "yolo11n.yaml",
    "segment": "yolo11n-seg.yaml",
    "pose": "yolo11n-pose.yaml",
    "obb": "yolo11n-obb.yaml",
    "classify": "yolo11n-cls.yaml",
}
OFFICIAL_PREFIXES = ("yolo26", "yolo11", "yolov8", "yolov5", "yolov", "yolo12", "rtdetr", "sam")


class NoGpu(AppError):
    status_code = 400
    code = "NO_GPU"


@functools.cache
def default_args() -> dict[str, Any]:
    """ultralytics' own ``default.yaml``: the arguments a training run accepts, and their defaults."""
    import importlib.util

    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("ultralytics is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "cfg" / "default.yaml"
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict)
    return loaded


def gpu_count() -> int:
    """GPUs this server can give a local job (nvidia-smi's view; torch is not imported in the server)."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in listing.stdout.splitlines() if line.startswith("GPU "))


def _invalid(field: str, message: str) -> BadRequest:
    return BadRequest(message, details=[{"field": field, "message": message}])


class TrainingService:
    async def latest_view(self, session: AsyncSession, row: ModelRow) -> dict[str, Any] | None:
        """The model's latest training run as ``GET …/training`` shows it (None: it never trained)."""
        job = await TrainingRepository(session).latest_training(row[0].id)
        return None if job is None else training_view(job)

    async def start(
        self,
        session: AsyncSession,
        account: Account,
        row: ModelRow,
        body: TrainingStart,
        *,
        executor: Executor,
    ) -> Job:
        model, project, owner = row
        if owner.id != account.id:
            raise NotFound(f"model '{model.id}' not found")
        if await TrainingRepository(session).active_training(model.id) is not None:
            raise Conflict(f"model '{model.slug}' is already training; cancel it first")
        args = self._train_args(body)
        dataset = await self._dataset(session, account, args.pop("data", None), body.dataset_id)
        base = self._base(args.pop("model", None), model, project.slug, owner.username, dataset)
        gpu_type = body.gpu_type
        if gpu_type is not None and gpu_type.strip().lower() in ("", "cpu"):
            gpu_type = None  # the CPU is what runs without one
        if gpu_type and executor == Executor.local and gpu_count() == 0:
            raise NoGpu(f"gpuType '{gpu_type}' was asked for, but this server has no GPU; omit gpuType to train on CPU")
        job = Job(
            id=new_id("job"),
            owner_id=account.id,
            model_id=model.id,
            kind=JobKind.training,
            status=JobStatus.queued,
            executor=executor,
            gpu_type=gpu_type or None,
            spec={
                "base": base,
                "data": f"ul://{owner.username}/datasets/{dataset.slug}",
                "datasetId": dataset.id,
                "project": f"{owner.username}/{project.slug}",
                "name": model.slug,
                "trainArgs": {**args, "model": base},
            },
            progress={"currentEpoch": 0, "totalEpochs": int(args.get("epochs", default_args()["epochs"]))},
        )
        await TrainingRepository(session).add(job)
        model.status = ModelStatus.starting
        model.train_args = {**args, "model": base, "data": job.spec["data"]}
        model.epochs = job.progress["totalEpochs"]
        if model.task is None:
            model.task = dataset.task
        return job

    def _train_args(self, body: TrainingStart) -> dict[str, Any]:
        """The client's ``trainArgs`` plus the seed's ``epochs``/``imageSize``, checked against ultralytics."""
        args = body.args()
        known = default_args()
        unknown = sorted(key for key in args if key not in known and key != "model")
        if unknown:
            message = f"unknown training arguments: {', '.join(unknown)}"
            raise BadRequest(message, details=[{"field": f"trainArgs.{u}", "message": message} for u in unknown])
        for key in sorted(RESERVED_ARGS & args.keys() - {"data"}):
            args.pop(key)
        epochs = args.get("epochs", known["epochs"])
        if not isinstance(epochs, int) or isinstance(epochs, bool) or not 1 <= epochs <= 10_000:
            raise _invalid("epochs", "epochs must be an integer from 1 to 10000")
        imgsz = args.get("imgsz", known["imgsz"])
        if not isinstance(imgsz, int) or isinstance(imgsz, bool) or not 32 <= imgsz <= 4096:
            raise _invalid("imgsz", "imgsz must be an integer from 32 to 4096")
        return args

    async def _dataset(self, session: AsyncSession, account: Account, data: Any, dataset_id: Any) -> Dataset:
        if isinstance(dataset_id, str) and is_id(dataset_id):
            row = await dataset_service.find_by_id(session, account, dataset_id)
            ref = dataset_id
        elif isinstance(data, str) and data.startswith("ul://"):
            parts = data.removeprefix("ul://").split("/")
            if len(parts) != 3 or parts[1] != "datasets":
                raise _invalid("trainArgs.data", "data must be a dataset URI: ul://owner/datasets/slug")
            row = await dataset_service.find_by_slug(session, account, parts[0], parts[2])
            ref = data
        else:
            raise _invalid("datasetId", "name the dataset: datasetId, or trainArgs.data = ul://owner/datasets/slug")
        if row is None:
            raise NotFound(f"dataset '{ref}' not found")
        dataset = row[0]
        if dataset.status != DatasetStatus.ready:
            raise Conflict(f"dataset '{dataset.slug}' is {dataset.status}; train once it is ready")
        return dataset

    def _base(self, given: Any, model: Any, project: str, owner: str, dataset: Dataset) -> str:
        """What the run starts from: a ``ul://`` model, an architecture yaml, or this model's own weights."""
        if given is None or given == "":
            if model.has_weights:
                return f"ul://{owner}/{project}/{model.slug}"
            return ARCHITECTURE.get(dataset.task, "yolo11n.yaml")
        if not isinstance(given, str):
            raise _invalid("trainArgs.model", "trainArgs.model must be a string")
        if given.startswith("ul://"):
            if len(given.removeprefix("ul://").split("/")) != 3:
                raise _invalid("trainArgs.model", "trainArgs.model must look like ul://owner/project/model")
            return given
        if given.endswith((".yaml", ".yml")) and "/" not in given:
            return given
        if given.endswith(".pt") and given.startswith(OFFICIAL_PREFIXES):
            raise _invalid(
                "trainArgs.model",
                f"official weights '{given}' cannot be downloaded by this server; upload them as a model "
                "and pass ul://owner/project/model, or start from an architecture such as yolo11n.yaml",
            )
        raise _invalid(
            "trainArgs.model", "trainArgs.model must be ul://owner/project/model or an architecture yaml (yolo11n.yaml)"
        )


training = TrainingService()
