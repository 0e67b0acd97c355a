"""Datasets: create, read, change, trash; queue ingests; hand out the NDJSON export."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.activity.service import activity as activity_service
from yolostack.core.errors import Conflict, NotFound
from yolostack.core.ids import new_id
from yolostack.core.owned import OwnedService, view_fields
from yolostack.core.pagination import PageParams
from yolostack.core.timeutil import isoformat, utcnow
from yolostack.datasets.repository import DatasetRepository, DatasetRow
from yolostack.datasets.schemas import DatasetCreate, DatasetDetail, DatasetSchema, DatasetUpdate, IngestRequest, Splits
from yolostack.jobs.service import ingest_view
from yolostack.tables import Account, Dataset, DatasetIngest, DatasetStatus, UploadSession, UploadStatus
from yolostack.trash.service import trash as trash_service
from yolostack.uploads.schemas import CompleteRequest
from yolostack.uploads.service import upload as upload_service


def names_list(class_names: dict[str, str]) -> list[str]:
    """``{"0": "cat", "2": "dog"}`` → ``["cat", "class1", "dog"]``: ids stay positions, as ultralytics fills gaps."""
    if not class_names:
        return []
    highest = max(int(key) for key in class_names)
    return [class_names.get(str(index), f"class{index}") for index in range(highest + 1)]


def dataset_view(dataset: Dataset, owner: str, stats: dict[str, int] | None) -> DatasetSchema:
    stats = stats or {}
    names = names_list(dataset.class_names)
    return DatasetSchema(
        **view_fields(dataset, owner),
        dataset=dataset.slug,
        task=dataset.task,
        status=dataset.status,
        image_count=stats.get("total", 0),
        splits=Splits(
            train=stats.get("train", 0),
            val=stats.get("val", 0),
            test=stats.get("test", 0),
            labeled=stats.get("labeled", 0),
        ),
        class_names=names,
        class_count=len(names),
        kpt_shape=dataset.kpt_shape,
        flip_idx=dataset.flip_idx,
        error_count=stats.get("errors", 0),
        version=dataset.version,
        processing_error=dataset.processing_error,
        processing_progress=dataset.processing_progress,
        tags=list(dataset.tags or []),
        license=dataset.license,
    )


class DatasetService(OwnedService[Dataset, Account, DatasetRow]):
    kind = "dataset"
    repository = DatasetRepository
    activity = activity_service

    async def create(self, session: AsyncSession, account: Account, data: DatasetCreate) -> Dataset:
        assert data.dataset is not None
        assert data.name is not None
        await self.check_new(session, account, data.owner, data.dataset)
        dataset = Dataset(
            name=data.name,
            task=data.task,
            class_names={str(index): name for index, name in enumerate(data.class_names or [])},
            **self.new_columns(account, data.dataset, data),
        )
        await self.add(session, dataset, data.dataset)
        await self.record(session, account.id, dataset, "created")
        return dataset

    async def list_for(
        self, session: AsyncSession, viewer: Account, owner: str | None, params: PageParams, task: str | None = None
    ) -> tuple[list[DatasetSchema], int]:
        owner_account = viewer if owner in (None, viewer.username) else await self.owner_named(session, owner)
        repository = DatasetRepository(session)
        datasets, total = await repository.list_readable(viewer.id, owner_account.id, params, task)
        stats = await repository.image_stats([dataset.id for dataset in datasets])
        return [dataset_view(dataset, owner_account.username, stats.get(dataset.id)) for dataset in datasets], total

    async def detail(self, session: AsyncSession, row: DatasetRow) -> DatasetDetail:
        dataset, owner = row
        stats = (await DatasetRepository(session).image_stats([dataset.id])).get(dataset.id)
        view = dataset_view(dataset, owner.username, stats)
        return DatasetDetail(**view.model_dump(), metadata=dataset.metadata_)

    async def update(self, session: AsyncSession, viewer: Account, row: DatasetRow, data: DatasetUpdate) -> Dataset:
        dataset, changes = await self.prepare_update(session, viewer, row, data)
        for field in ("description", "visibility", "license", "task"):
            if changes.get(field) is not None:
                setattr(dataset, field, changes[field])
        if data.tags is not None:
            dataset.tags = list(data.tags)
        if data.metadata is not None:
            dataset.metadata_ = data.metadata
        if data.class_names is not None:
            dataset.class_names = {str(index): name for index, name in enumerate(data.class_names)}
            dataset.version += 1
        await session.flush()
        await self.record(session, viewer.id, dataset, "updated", {"fields": sorted(changes)})
        return dataset

    async def delete(self, session: AsyncSession, viewer: Account, row: DatasetRow) -> None:
        dataset = self.require_owner(viewer, row)
        await trash_service.move(session, viewer.id, "dataset", dataset)

    async def queue_ingest(
        self, session: AsyncSession, viewer: Account, row: DatasetRow, request: IngestRequest
    ) -> str:
        dataset = self.require_owner(viewer, row)
        if dataset.status == DatasetStatus.processing:
            raise Conflict("an ingest is already running for this dataset")
        upload = await session.get(UploadSession, request.session_id)
        if upload is None or upload.account_id != viewer.id or upload.asset_id != dataset.id:
            raise NotFound(f"upload session '{request.session_id}' not found for this dataset")
        if upload.status == UploadStatus.uploaded:
            # As on the Platform, ingesting an uploaded archive completes its upload session too.
            upload = await upload_service.complete(session, viewer.id, upload, CompleteRequest(session_id=upload.id))
        if upload.status != UploadStatus.completed:
            raise Conflict("nothing has been uploaded for this session yet")
        if dataset.ingest_job_id is not None:
            # The ingest before this one has ended (one runs at a time): its jobId keeps reading back.
            session.add(DatasetIngest(job_id=dataset.ingest_job_id, dataset_id=dataset.id, view=ingest_view(dataset)))
        job_id = new_id("job")
        dataset.status = DatasetStatus.processing
        dataset.processing_error = None
        dataset.processing_progress = {"phase": "queued", "current": 0, "total": 0}
        dataset.ingest = {
            "jobId": job_id,
            "sessionId": upload.id,
            "targetSplit": request.target_split,
            "conflictPolicy": request.conflict_policy,
            "queuedAt": isoformat(utcnow()),
        }
        dataset.ingest_job_id, dataset.ingest_attempts = job_id, 0
        await self.record(session, viewer.id, dataset, "ingest_queued", {"job": job_id})
        return job_id

    async def stats(self, session: AsyncSession, datasets: Sequence[Dataset]) -> dict[str, dict[str, int]]:
        return await DatasetRepository(session).image_stats([dataset.id for dataset in datasets])


dataset = DatasetService()
