"""Exports: check the format, its arguments and this worker's toolchain at creation (fail fast), queue a
durable ``export`` job for the dispatcher, render it, cancel or delete it with its file."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.core.errors import AppError, BadRequest, Conflict, NotFound
from yolostack.core.files import delete_after_commit
from yolostack.core.ids import new_id
from yolostack.core.pagination import PageParams
from yolostack.core.timeutil import isoformat
from yolostack.exports.repository import ExportRepository
from yolostack.exports.schemas import ExportCreate, ExportError, ExportFile, ExportSchema
from yolostack.jobs.service import error_view
from yolostack.jobs.service import jobs as job_service
from yolostack.models.service import ModelRow
from yolostack.storage.service import FileLinks
from yolostack.tables import ACTIVE_STATUSES, Account, Executor, Job, JobKind, JobStatus
from yolostack_engine import export_formats as formats
from yolostack_engine.export_formats import ExportFormat

# General export arguments (every format), besides the format-specific ones in ``formats.EXPORT_ARGUMENTS``.
GENERAL_ARGS = frozenset({"imgsz", "quantize", "nms", "name", "conf", "iou", "verbose"})
# Deprecated precision flags ultralytics still maps onto ``quantize``.
PRECISION_FLAGS = frozenset({"half", "int8"})
# What the worker owns (the CLI strips most of these itself); dropped, as ``yolo export`` would ignore them.
WORKER_ARGS = frozenset({"format", "model", "device", "project", "save_dir", "exist_ok", "mode", "task"})
# ultralytics' defaults for the arguments whose use a format may refuse (the exporter's own batch is 1).
EXPORT_DEFAULTS: dict[str, Any] = {
    "batch": 1,
    "data": None,
    "dynamic": False,
    "simplify": True,
    "opset": None,
    "workspace": None,
    "fraction": 1.0,
    "optimize": False,
}
GPU_TYPE = "gpu"  # what a GPU-only format runs on when the caller named no gpuType


class ExportUnavailable(AppError):
    """The format's toolchain (a package, a GPU, a vendor compiler) is not on this server's workers."""

    status_code = 400
    code = "EXPORT_FORMAT_UNAVAILABLE"


class NoGpu(AppError):
    status_code = 400
    code = "NO_GPU"


def resolve_format(requested: str) -> ExportFormat:
    spec = formats.canonical(requested)
    if spec is None:
        message = f"unknown export format '{requested}'; accepted: {', '.join(formats.ACCEPTED)}"
        raise BadRequest(message, details=[{"field": "format", "message": message, "accepted": list(formats.ACCEPTED)}])
    return spec


def _invalid(field: str, message: str) -> BadRequest:
    return BadRequest(message, details=[{"field": f"args.{field}", "message": message}])


def _quantize(value: Any) -> int | str | None:
    if value is None or value is False or str(value).strip().lower() in ("", "none", "false"):
        return None
    canonical = formats.QUANTIZE_ALIASES.get(str(value).strip().lower())
    if canonical is None:
        accepted = ", ".join(formats.QUANTIZE_ALIASES)
        raise _invalid("quantize", f"quantize must be one of {accepted} (got {value!r})")
    return canonical


def _check_precision(spec: ExportFormat, quantize: int | str | None) -> None:
    supported = {
        16: formats.FP16_FORMATS,
        8: formats.INT8_FORMATS,
        "w8a16": formats.W8A16_FORMATS,
        "w8a32": formats.W8A32_FORMATS,
    }
    if quantize is None or quantize == 32:
        if quantize == 32 and spec.name in formats.FP32_UNSUPPORTED_FORMATS:
            raise _invalid("quantize", f"format '{spec.name}' cannot export FP32 (quantize=32)")
        return
    if spec.name not in supported[quantize]:
        options = [str(name) for name, names in supported.items() if spec.name in names]
        hint = f"; it supports quantize={', '.join(options)}" if options else "; it exports FP32 only"
        raise _invalid("quantize", f"format '{spec.name}' cannot export quantize={quantize}{hint}")


def _check_types(args: dict[str, Any]) -> None:
    imgsz = args.get("imgsz")
    sizes = imgsz if isinstance(imgsz, list) else [imgsz]
    if imgsz is not None and not (
        1 <= len(sizes) <= 2 and all(isinstance(s, int) and not isinstance(s, bool) and 32 <= s <= 4096 for s in sizes)
    ):
        raise _invalid("imgsz", "imgsz must be an integer from 32 to 4096, or [height, width]")
    batch = args.get("batch")
    if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= 1024):
        raise _invalid("batch", "batch must be an integer from 1 to 1024")
    data = args.get("data")
    if data is not None and not (isinstance(data, str) and data.startswith("ul://") and data.count("/datasets/") == 1):
        # A path would be read on the worker's disk: only the caller's own datasets calibrate.
        raise _invalid("data", "data must name a dataset: ul://owner/datasets/slug")


def export_args(spec: ExportFormat, given: dict[str, Any] | None, *, gpu: bool) -> dict[str, Any]:
    """The caller's arguments, checked as ultralytics would check them, before a job exists."""
    args = {key: value for key, value in (given or {}).items() if key not in WORKER_ARGS}
    allowed = formats.EXPORT_ARGUMENTS | GENERAL_ARGS | PRECISION_FLAGS
    unknown = sorted(key for key in args if key not in allowed)
    if unknown:
        message = f"not export arguments: {', '.join(unknown)}; accepted: {', '.join(sorted(allowed))}"
        raise BadRequest(message, details=[{"field": f"args.{key}", "message": message} for key in unknown])
    int8, half = args.pop("int8", None), args.pop("half", None)
    if "quantize" not in args and (int8 or half):
        args["quantize"] = 8 if int8 else 16
    quantize = _quantize(args.pop("quantize", None))
    if quantize is not None:
        args["quantize"] = quantize
    _check_precision(spec, quantize)
    _check_types(args)
    for key, default in EXPORT_DEFAULTS.items():
        if key in args and args[key] != default and key not in spec.arguments:
            raise _invalid(key, f"argument '{key}' is not supported for format '{spec.name}'")
    calibrates = quantize in (8, "w8a16") or spec.name in formats.INT8_ONLY
    if calibrates and "data" in spec.arguments and not args.get("data"):
        raise _invalid(
            "data", f"INT8 export to '{spec.name}' calibrates on images: pass args.data = ul://owner/datasets/slug"
        )
    if quantize == 16 and spec.name == "torchscript" and not gpu:
        raise BadRequest("FP16 TorchScript export runs on a GPU only: pass gpuType, or drop quantize/half")
    return args


def export_view(job: Job, links: FileLinks) -> ExportSchema:
    file = None
    if job.status == JobStatus.completed and job.file_key and job.file_name:
        file = ExportFile(
            size=job.file_size,
            download_url=links.download_url(job.file_key, job.file_name),
            download_filename=job.file_name,
        )
    error = error_view(job)
    return ExportSchema(
        id=job.id,
        model_id=job.model_id,
        status=str(job.status),
        format=str(job.spec.get("format")),
        requested_format=str(job.spec.get("requested") or job.spec.get("format")),
        args=job.spec.get("args") or None,
        gpu_type=job.gpu_type,
        phase=(job.progress or {}).get("phase"),
        file=file,
        error=ExportError(**error) if error else None,
        attempts=job.attempts,
        started_at=isoformat(job.started_at),
        completed_at=isoformat(job.completed_at),
        created_at=isoformat(job.created_at),
        updated_at=isoformat(job.updated_at),
    )


class ExportService:
    async def create(
        self,
        session: AsyncSession,
        account: Account,
        row: ModelRow,
        body: ExportCreate,
        *,
        executor: Executor,
        gpus: int,
    ) -> Job:
        """Queue an export of the caller's own model; ``gpus`` is what a local worker has."""
        model, _, owner = row
        if owner.id != account.id:
            raise NotFound(f"model '{model.id}' not found")
        spec = resolve_format(body.format)
        if not model.has_weights:
            raise Conflict(
                f"model '{model.slug}' has no weights to export: upload a checkpoint or train it first",
                details=[{"field": "modelId"}],
            )
        gpu_type = body.gpu_type or (GPU_TYPE if spec.gpu else None)
        local = executor == Executor.local
        if body.gpu_type and local and gpus == 0:
            raise NoGpu(f"gpuType '{body.gpu_type}' was asked for, but this server has no GPU; omit gpuType")
        if local:  # a Ray node's toolchain is checked by the runner there, before it exports
            lacking = formats.missing(spec, gpus=gpus)
            if lacking:
                raise ExportUnavailable(
                    formats.unavailable_message(spec, lacking),
                    details={"format": spec.name, "requested": body.format, "missing": lacking},
                )
        args = export_args(spec, body.args, gpu=bool(gpu_type) and (gpus > 0 or not local))
        job = Job(
            id=new_id("export"),
            owner_id=account.id,
            model_id=model.id,
            kind=JobKind.export,
            status=JobStatus.queued,
            executor=executor,
            gpu_type=gpu_type,
            spec={"format": spec.name, "args": args, "requested": body.format},
            progress={},
        )
        session.add(job)
        await session.flush()
        return job

    async def get(self, session: AsyncSession, account: Account, export_id: str, *, model_id: str | None = None) -> Job:
        job = await ExportRepository(session).get_owned(account.id, export_id, model_id=model_id)
        if job is None:
            raise NotFound(f"export '{export_id}' not found")
        return job

    async def list(
        self,
        session: AsyncSession,
        account: Account,
        params: PageParams,
        *,
        model_id: str | None = None,
        status: str | None = None,
    ) -> tuple[Sequence[Job], int]:
        if status is not None and status not in JobStatus.__members__:
            raise BadRequest(f"status must be one of {', '.join(JobStatus)}", details=[{"field": "status"}])
        return await ExportRepository(session).list_owned(account.id, params, model_id=model_id, status=status)

    async def artifact_keys(self, session: AsyncSession, model_ids: Sequence[str]) -> Sequence[str]:
        """The stored export files of these models (their purge deletes them)."""
        return await ExportRepository(session).file_keys(model_ids)

    async def remove(self, session: AsyncSession, job: Job) -> str:
        """Cancel an active export (``cancelled``), or delete a finished one and its file (``deleted``)."""
        if job.status in ACTIVE_STATUSES and await job_service.request_cancel(session, job):
            return "cancelled"
        if job.file_key:
            delete_after_commit(session, [job.file_key])
        await ExportRepository(session).delete(job.id)
        return "deleted"


def owned_model(account: Account, row: ModelRow) -> ModelRow:
    """Exports belong to the model's owner: another account's (even public) model is not found here."""
    model, _, owner = row
    if owner.id != account.id:
        raise NotFound(f"model '{model.id}' not found")
    return row


exports = ExportService()
