"""Models: create, read, change, trash; attach weights (multipart or the upload flow) and queue their conversion."""

from __future__ import annotations

import re
from collections.abc import AsyncIterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.activity.service import activity as activity_service
from yolostack.core.errors import BadRequest, NotFound
from yolostack.core.files import delete_after_commit
from yolostack.core.ids import new_id
from yolostack.core.owned import OwnedService, view_fields
from yolostack.core.pagination import PageParams
from yolostack.core.slugs import slugify
from yolostack.models.repository import ModelRepository
from yolostack.models.repository import ModelRow as ModelRow  # what get_by_id/get_by_slug hand other domains
from yolostack.models.schemas import (
    TRAINING_DETAILS,
    ModelCreate,
    ModelDetail,
    ModelFile,
    ModelSchema,
    ModelUpdate,
    ServingState,
)
from yolostack.projects.service import project as project_service
from yolostack.storage.backends import ObjectStore
from yolostack.storage.service import FileLinks
from yolostack.tables import Account, Model, ModelStatus, Project, ServingStatus, UploadSession, UploadStatus
from yolostack.trash.service import trash as trash_service

WEIGHTS_SUFFIX = ".pt"
# What a conversion stores under a model's serving prefix.
SERVING_FILES = ("model.onnx", "meta.json")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def weights_filename(filename: str | None) -> str:
    """A safe file name ending in ``.pt`` (ultralytics loads a downloaded model by its suffix)."""
    name = _SAFE_NAME.sub("-", (filename or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip(".-")[:200]
    if not name.lower().endswith(WEIGHTS_SUFFIX):
        raise BadRequest("model weights must be a PyTorch checkpoint file ending in .pt")
    return name if len(name) > len(WEIGHTS_SUFFIX) else "model.pt"


def model_files(model: Model) -> list[str]:
    """Every stored file of a model: its checkpoint and its serving artifacts."""
    keys = [model.weights_key] if model.weights_key else []
    if model.serving_key:
        keys += [f"{model.serving_key}/{name}" for name in SERVING_FILES]
    return keys


def model_view(model: Model, project: Project, owner: str) -> ModelSchema:
    info = model.serving_info or {}
    names = info.get("names")
    imgsz = info.get("imgsz")
    return ModelSchema(
        **view_fields(model, owner),
        project=project.slug,
        project_id=project.id,
        project_name=project.name,
        model=model.slug,
        task=model.task,
        status=model.status,
        has_weights=model.has_weights,
        epochs=model.epochs,
        train_args=model.train_args,
        metrics=(model.metrics or {}).get("metrics") if model.metrics else None,
        class_names={str(key): str(value) for key, value in names.items()} if isinstance(names, dict) else None,
        imgsz=int(max(imgsz)) if isinstance(imgsz, list) and imgsz else None,
        parameters=info.get("parameters"),
        file={"size": model.weights_size} if model.weights_size is not None else None,
        serving=ServingState(status=model.serving_status, error=model.serving_error),
    )


def model_detail(model: Model, project: Project, owner: str) -> dict[str, Any]:
    """The read shape plus metadata and the training details the clients PATCHed in."""
    detail = ModelDetail(**model_view(model, project, owner).model_dump(), metadata=model.metadata_)
    body: dict[str, Any] = detail.model_dump(mode="json", by_alias=True)
    for field in TRAINING_DETAILS:
        value = (model.metrics or {}).get(field)
        if value is not None:
            body[_camel(field)] = value
    return body


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def download_files(links: FileLinks, row: ModelRow) -> list[ModelFile]:
    """The checkpoint first (``ultralytics`` takes ``files[0]`` for ``ul://``), then the served ONNX."""
    model = row[0]
    if model.weights_key is None or model.weights_name is None:
        return []
    files = [
        ModelFile(
            name=model.weights_name,
            size=model.weights_size,
            download_url=links.download_url(model.weights_key, model.weights_name),
        )
    ]
    if model.serving_key is not None:
        key = f"{model.serving_key}/model.onnx"
        files.append(ModelFile(name="model.onnx", size=None, download_url=links.download_url(key, "model.onnx")))
    return files


class ModelService(OwnedService[Model, Account, ModelRow]):
    kind = "model"
    repository = ModelRepository
    activity = activity_service

    async def create(self, session: AsyncSession, account: Account, data: ModelCreate) -> tuple[Model, Project]:
        if data.owner not in (None, account.username):
            raise NotFound(f"workspace '{data.owner}' not found")
        project = await self._own_project(session, account, data.project)
        slug = data.model or slugify(data.name or "") or "model"
        model = await self.insert(session, account, project, slug, data.name or slug, data.task)
        model.description, model.visibility = data.description, data.visibility
        model.metadata_ = data.metadata or {}
        model.train_args, model.epochs = data.train_args, data.epochs
        extras = {"train_results": data.train_results, "version": data.version}
        model.metrics = _merge_metrics(None, data.metrics, {key: value for key, value in extras.items() if value})
        await self.record(session, account.id, model, "created")
        return model, project

    async def _own_project(self, session: AsyncSession, account: Account, ref: str) -> Project:
        project = await project_service.find_own(session, account, ref)
        if project is None:
            raise NotFound(f"project '{ref}' not found")
        return project

    async def insert(
        self, session: AsyncSession, account: Account, project: Project, slug: str, name: str, task: str | None
    ) -> Model:
        """Insert with ``slug``, or ``slug-2``, ``slug-3``… when taken: a re-run of ``ul cloud predict x.pt``
        must not fail because an earlier run made ``x``; the clients read the slug back."""
        candidate = await ModelRepository(session).free_slug(project.id, slug)
        model = Model(
            id=new_id("model"),
            owner_id=account.id,
            project_id=project.id,
            slug=candidate,
            name=name,
            task=task,
            status=ModelStatus.pending,
        )
        return await self.add(session, model, candidate, f"{self.slug_conflict(candidate)}; retry")

    async def upload(
        self,
        session: AsyncSession,
        store: ObjectStore,
        account: Account,
        *,
        project_id: str,
        name: str | None,
        filename: str | None,
        chunks: AsyncIterable[bytes],
        max_bytes: int,
    ) -> tuple[Model, Project]:
        """The seed's multipart ``POST /api/models``: create the model and store its checkpoint."""
        safe_name = weights_filename(filename)
        project = await self._own_project(session, account, project_id)
        display = (name or "").strip() or safe_name.removesuffix(WEIGHTS_SUFFIX)
        model = await self.insert(session, account, project, slugify(display) or "model", display[:256], None)
        key = weights_key(account.id, model.id, safe_name)
        stored = await store.write(key, chunks, max_bytes=max_bytes)
        self._attach(session, model, key, safe_name, stored.size, stored.sha256)
        await self.record(session, account.id, model, "created", {"weightsBytes": stored.size})
        return model, project

    async def attach_upload(self, session: AsyncSession, store: ObjectStore, upload: UploadSession) -> None:
        """``upload/complete`` for a model: the only signal the clients give that weights are attached."""
        model = await session.get(Model, upload.asset_id)
        if model is None or model.deleted_at is not None or model.owner_id != upload.account_id:
            raise NotFound(f"model '{upload.asset_id}' not found")
        safe_name = weights_filename(upload.filename)
        key = weights_key(model.owner_id, model.id, safe_name)
        await store.move(upload.storage_key, key)
        assert upload.size is not None
        assert upload.sha256 is not None
        self._attach(session, model, key, safe_name, upload.size, upload.sha256)
        upload.status = UploadStatus.consumed

    def _attach(self, session: AsyncSession, model: Model, key: str, name: str, size: int, sha256: str) -> None:
        stale = [existing for existing in model_files(model) if existing != key]
        if stale:
            delete_after_commit(session, stale)
        model.serving_key, model.serving_info = None, {}
        model.weights_key, model.weights_name, model.weights_size, model.weights_sha256 = key, name, size, sha256
        model.serving_status, model.serving_error, model.serving_attempts = ServingStatus.pending, None, 0
        if model.status in (ModelStatus.pending, ModelStatus.untrained):
            model.status = ModelStatus.completed

    async def list_models(
        self,
        session: AsyncSession,
        viewer: Account,
        params: PageParams,
        *,
        project_id: str | None = None,
        task: str | None = None,
    ) -> tuple[list[ModelSchema], int]:
        """The caller's own models (seed ``GET /api/models``), optionally of one project or task."""
        rows, total = await ModelRepository(session).list_readable(
            viewer.id, params, owner_id=viewer.id, project_id=project_id, task=task
        )
        return [model_view(model, project, owner.username) for model, project, owner in rows], total

    async def list_in_project(
        self, session: AsyncSession, viewer: Account, owner: str, project_slug: str, limit: int
    ) -> list[ModelSchema]:
        await self.owner_named(session, owner)
        found, _ = await project_service.get_by_slug(session, viewer, owner, project_slug)
        rows, _ = await ModelRepository(session).list_readable(
            viewer.id, PageParams(page=1, limit=limit), project_id=found.id
        )
        return [model_view(model, project, account.username) for model, project, account in rows]

    def slug_conflict(self, slug: str) -> str:
        return f"model '{slug}' already exists in this project"

    async def update(self, session: AsyncSession, viewer: Account, row: ModelRow, data: ModelUpdate) -> Model:
        model, changes = await self.prepare_update(session, viewer, row, data)
        for field in ("description", "visibility", "status", "train_args", "epochs"):
            if field in changes:
                setattr(model, field, changes[field])
        if data.metadata is not None:
            model.metadata_ = data.metadata
        details = {field: changes[field] for field in TRAINING_DETAILS if field in changes}
        if "metrics" in changes or details:
            model.metrics = _merge_metrics(model.metrics, changes.get("metrics"), details)
        await self.save(session, model.slug)
        await self.record(session, viewer.id, model, "updated", {"fields": sorted(changes)})
        return model

    async def delete(self, session: AsyncSession, viewer: Account, row: ModelRow) -> None:
        model = self.require_owner(viewer, row)
        # A trashed model's training and exports stop: nothing could read their results any more.
        from yolostack.jobs.service import jobs as job_service

        await job_service.cancel_all(session, model.id, "the model was deleted")
        await trash_service.move(session, viewer.id, "model", model)


def weights_key(owner_id: str, model_id: str, filename: str) -> str:
    return f"models/{owner_id}/{model_id}/weights/{filename}"


def serving_prefix(owner_id: str, model_id: str, sha256: str) -> str:
    return f"models/{owner_id}/{model_id}/serving/{sha256[:16]}"


def _merge_metrics(
    current: dict[str, Any] | None, metrics: dict[str, Any] | None, details: dict[str, Any]
) -> dict[str, Any] | None:
    merged = dict(current or {})
    if metrics is not None:
        merged["metrics"] = metrics
    merged.update(details)
    return merged or None


model = ModelService()
