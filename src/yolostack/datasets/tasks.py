"""``dataset.ingest``: turn an uploaded archive or NDJSON into stored, measured, labelled images.

The queue is the ``datasets`` table itself (``status = processing``, leased through ``worker.leases``), so
an ingest interrupted by a restart runs again when the server comes back; images are content-addressed
and de-duplicated per dataset, so running an ingest twice adds nothing twice. The ``ingest`` request and
``ingest_job_id`` stay on the row after it ends: ``GET /api/jobs/{jobId}`` reads the outcome there.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_
from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.activity.service import activity as activity_service
from yolostack.core.db import Database
from yolostack.core.files import delete_after_commit, delete_orphans
from yolostack.core.ids import new_id
from yolostack.core.timeutil import isoformat, utcnow
from yolostack.datasets.formats import parse_dataset
from yolostack.datasets.formats.archives import ArchiveLimits, safe_extract
from yolostack.datasets.formats.images import probe_image
from yolostack.datasets.formats.ndjson import parse_ndjson
from yolostack.datasets.formats.records import ArchiveError, FormatError, ImageError, ImageRecord, ParsedDataset
from yolostack.datasets.repository import ImageRepository
from yolostack.storage.service import FileLinks
from yolostack.tables import Dataset, DatasetImage, DatasetStatus, UploadSession, UploadStatus, image_key
from yolostack.worker.leases import Lease, LeaseQueue
from yolostack.worker.queue import QueueWorker
from yolostack.worker.registry import WorkerContext, workers

logger = logging.getLogger(__name__)

BATCH = 200
MAX_ATTEMPTS = 3
# Renewed every ttl/3 while the ingest runs; a crashed server's ingest is taken up again once it runs out.
LEASE = timedelta(seconds=60)


class IngestFailed(Exception):
    """A problem with the data itself: the dataset is marked failed with this message."""


@dataclass
class Prepared:
    record: ImageRecord
    path: Path | None
    digest: str
    size: int
    ext: str
    width: int
    height: int
    error: str | None


def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _prepare(record: ImageRecord, path: Path) -> Prepared:
    """Decode and measure one image (in a worker thread): a bad image is reported, not fatal."""
    digest, size = _sha256(path)
    ext = path.suffix.lower() or ".jpg"
    try:
        info = probe_image(path)
    except ImageError as error:
        return Prepared(record, path, digest, size, ext[:8], 0, 0, str(error))
    return Prepared(record, path, digest, size, f".{info.ext}".lower()[:8], info.width, info.height, record.error)


def _ingesting() -> ColumnElement[bool]:
    return Dataset.status == DatasetStatus.processing


# The queue is the datasets table: a processing dataset waits for a worker until one holds its lease.
INGESTS = LeaseQueue(
    name="dataset.ingest",
    id=Dataset.id,
    ready=and_(_ingesting(), Dataset.deleted_at.is_(None), Dataset.ingest_lease_until.is_(None)),
    held=and_(_ingesting(), Dataset.ingest_lease_until.is_not(None)),
    lease=Dataset.ingest_lease_until,
    holder=Dataset.ingest_lease_holder,
    attempts=Dataset.ingest_attempts,
    ttl=LEASE,
    max_attempts=MAX_ATTEMPTS,
    order_by=(Dataset.updated_at,),
)


class IngestWorker:
    def __init__(self, database: Database, links: FileLinks, *, limits: ArchiveLimits | None = None) -> None:
        self.database = database
        self.links = links
        self.limits = limits or ArchiveLimits()
        self._decoders = asyncio.Semaphore(max(2, (os.cpu_count() or 2)))
        self._writers = asyncio.Semaphore(8)
        # One ingest at a time: each one already keeps both cores busy decoding.
        self.runner = QueueWorker(database, INGESTS, self.handle, interval=1.0, give_up=self._give_up)

    async def run(self, dataset_id: str) -> None:
        """Claim this dataset's ingest and run it now; nothing when another worker holds it."""
        lease = await self.runner.claim(dataset_id)
        if lease is not None:
            await self.runner.run(lease)

    async def handle(self, lease: Lease) -> None:
        async with self.database.sessionmaker() as session:
            dataset = await session.get(Dataset, lease.row_id)
            request = dict(dataset.ingest or {}) if dataset is not None else {}
        try:
            if "sessionId" not in request:
                raise IngestFailed("the ingest request was lost; queue the ingest again")
            with tempfile.TemporaryDirectory(prefix="yolostack-ingest-") as work:
                await self._ingest(lease, request, Path(work))
        except (IngestFailed, ArchiveError, FormatError) as error:
            await self._fail(lease, str(error))
        except Exception:
            logger.exception("ingest of %s failed", lease.row_id)
            await self._fail(lease, "Internal error while ingesting; the server log has details")

    async def _give_up(self, session: AsyncSession, dataset_id: str) -> None:
        """An ingest interrupted ``MAX_ATTEMPTS`` times (server stopped or crashed while it ran) fails."""
        message = "ingest gave up after repeated interruptions"
        failed = {Dataset.status: DatasetStatus.failed}
        if await INGESTS.abandon(session, dataset_id, utcnow(), failed):
            dataset = await session.get(Dataset, dataset_id, populate_existing=True)
            if dataset is not None:
                dataset.processing_error = {"message": message, "timestamp": isoformat(utcnow())}
                await self._record(session, dataset, "dataset.ingest_failed", f"Ingest failed: {message}", [])

    async def _ingest(self, lease: Lease, request: dict[str, Any], work: Path) -> None:
        dataset_id = lease.row_id
        await self._progress(dataset_id, "downloading", 0, 0)
        archive = await self._download(request["sessionId"], work)
        await self._progress(dataset_id, "extracting", 0, 0)
        parsed = await asyncio.to_thread(self._parse, archive, work / "data")
        async with self.database.sessionmaker() as session, session.begin():
            dataset = await session.get(Dataset, dataset_id)
            assert dataset is not None
            mapping = self._adopt_classes(dataset, parsed, await ImageRepository(session).hashes(dataset_id))
            owner_id = dataset.owner_id
        total = len(parsed.images)
        done = 0
        for start in range(0, total, BATCH):
            batch = parsed.images[start : start + BATCH]
            # Decoding releases the GIL: a few threads keep both cores busy.
            prepared = list(await asyncio.gather(*(self._bounded_prepare(record, work, owner_id) for record in batch)))
            await self._store(dataset_id, prepared, mapping, request)
            done += len(batch)
            await self._progress(dataset_id, "importing", done, total)
        await self._finish(lease, request, total, parsed.warnings)

    async def _download(self, session_id: str, work: Path) -> Path:
        async with self.database.sessionmaker() as session:
            upload = await session.get(UploadSession, session_id)
        if upload is None:
            raise IngestFailed(f"upload session '{session_id}' no longer exists")
        target = work / Path(upload.filename).name
        with target.open("wb") as handle:
            async for chunk in self.links.store.read(upload.storage_key):
                handle.write(chunk)
        return target

    def _parse(self, archive: Path, root: Path) -> ParsedDataset:
        if archive.name.lower().endswith(".ndjson"):
            return parse_ndjson(archive)
        root.mkdir(parents=True, exist_ok=True)
        safe_extract(archive, root, self.limits)
        return parse_dataset(root)

    def _adopt_classes(self, dataset: Dataset, parsed: ParsedDataset, existing: dict[str, str]) -> dict[int, int]:
        """Map the archive's class ids onto the dataset's, adding names it does not have yet."""
        if existing and parsed.task != dataset.task:
            raise IngestFailed(f"the upload is a {parsed.task} dataset but this dataset is {dataset.task}")
        if not existing:
            dataset.task = parsed.task
        names = dict(dataset.class_names or {})
        by_name = {name: int(index) for index, name in names.items()}
        mapping = {}
        for source_id, name in sorted(parsed.class_names.items()):
            if name not in by_name:
                by_name[name] = max((int(key) for key in names), default=-1) + 1
                names[str(by_name[name])] = name
            mapping[source_id] = by_name[name]
        dataset.class_names = names
        dataset.kpt_shape = dataset.kpt_shape or parsed.kpt_shape
        dataset.flip_idx = dataset.flip_idx or parsed.flip_idx
        return mapping

    async def _bounded_prepare(self, record: ImageRecord, work: Path, owner_id: str) -> Prepared:
        async with self._decoders:
            return await self._prepare(record, work, owner_id)

    async def _prepare(self, record: ImageRecord, work: Path, owner_id: str) -> Prepared:
        if record.path is not None:
            return await asyncio.to_thread(_prepare, record, record.path)
        # NDJSON rows point at URLs. Only this server's own signed links are followed (read straight from
        # storage): fetching arbitrary URLs from the server would be an SSRF hole.
        key = self.links.local_key(record.url or "", owner_id)
        if key is None:
            digest = hashlib.sha256((record.url or record.name).encode()).hexdigest()
            problem = "image URL is not a file of this server; remote images are not fetched"
            return Prepared(record, None, digest, 0, ".jpg", 0, 0, problem)
        path = work / "remote" / new_id("image") / Path(key).name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            async for chunk in self.links.store.read(key):
                handle.write(chunk)
        return await asyncio.to_thread(_prepare, record, path)

    async def _store(
        self, dataset_id: str, prepared: list[Prepared], mapping: dict[int, int], request: dict[str, Any]
    ) -> None:
        async with self.database.sessionmaker() as session, session.begin():
            dataset = await session.get(Dataset, dataset_id)
            assert dataset is not None
            images = ImageRepository(session)
            existing = await images.hashes(dataset_id)
            rows = []
            uploads: list[Coroutine[Any, Any, None]] = []
            for item in prepared:
                labels = [_remap(label.to_wire(), mapping) for label in item.record.labels] if not item.error else []
                split = request.get("targetSplit") or item.record.split
                if item.digest in existing:
                    if request.get("conflictPolicy") == "replace":
                        row = await images.get(existing[item.digest])
                        assert row is not None
                        row.labels, row.label_count, row.split = labels, len(labels), split
                    continue
                if item.path is not None and item.size:
                    uploads.append(self._put_file(dataset.owner_id, item))
                existing[item.digest] = "pending"
                rows.append(
                    DatasetImage(
                        id=new_id("image"),
                        dataset_id=dataset_id,
                        owner_id=dataset.owner_id,
                        hash=item.digest,
                        ext=item.ext,
                        name=item.record.name[:512],
                        width=item.width,
                        height=item.height,
                        bytes=item.size,
                        split=split,
                        labels=labels,
                        label_count=len(labels),
                        error=item.error[:1024] if item.error else None,
                    )
                )
            # Files first (several at once: each is mostly waiting on disk or network), then their rows.
            await asyncio.gather(*uploads)
            await images.add_all(rows)

    async def _put_file(self, owner_id: str, item: Prepared) -> None:
        key = image_key(owner_id, item.digest, item.ext)
        async with self._writers:
            if await self.links.store.size(key) is None:
                assert item.path is not None
                await self.links.store.put_file(key, item.path)

    async def _progress(self, dataset_id: str, phase: str, current: int, total: int) -> None:
        async with self.database.sessionmaker() as session, session.begin():
            dataset = await session.get(Dataset, dataset_id)
            if dataset is not None:
                dataset.processing_progress = {"phase": phase, "current": current, "total": total}

    async def _finish(self, lease: Lease, request: dict[str, Any], total: int, warnings: list[str]) -> None:
        async with self.database.sessionmaker() as session:
            async with session.begin():
                if not await lease.finish(session, {Dataset.status: DatasetStatus.ready}):
                    return  # no longer ours: the lease ran out and another worker took the ingest over
                dataset = await session.get(Dataset, lease.row_id, populate_existing=True)
                assert dataset is not None
                dataset.processing_progress = None
                dataset.ingest = {**request, "images": total, "endedAt": isoformat(utcnow())}
                dataset.version += 1
                await self._record(session, dataset, "dataset.ingested", f"Ingested {total} image(s)", warnings)
                upload = await session.get(UploadSession, request["sessionId"])
                if upload is not None:
                    # The archive's content now lives on as images; the archive itself is not kept.
                    upload.status = UploadStatus.consumed
                    delete_after_commit(session, [upload.storage_key])
            await delete_orphans(session, self.links.store)

    async def _fail(self, lease: Lease, message: str) -> None:
        async with self.database.sessionmaker() as session, session.begin():
            if not await lease.finish(session, {Dataset.status: DatasetStatus.failed}):
                return
            dataset = await session.get(Dataset, lease.row_id, populate_existing=True)
            if dataset is None:
                return
            dataset.processing_error = {"message": message, "timestamp": isoformat(utcnow())}
            dataset.ingest = {**(dataset.ingest or {}), "endedAt": isoformat(utcnow())}
            await self._record(session, dataset, "dataset.ingest_failed", f"Ingest failed: {message}", [])

    async def _record(
        self, session: AsyncSession, dataset: Dataset, action: str, message: str, warnings: list[str]
    ) -> None:
        await activity_service.record(
            session,
            dataset.owner_id,
            action,
            resource_type="dataset",
            resource_id=dataset.id,
            resource_name=dataset.name,
            message=f"Dataset '{dataset.name}': {message}",
            details={"warnings": warnings[:50]},
        )


def _remap(label: dict[str, Any], mapping: dict[int, int]) -> dict[str, Any]:
    return {**label, "classId": mapping.get(int(label["classId"]), int(label["classId"]))}


@workers.register("dataset.ingest")
def ingest_worker(context: WorkerContext) -> QueueWorker:
    worker = IngestWorker(context.database, context.state.file_links).runner
    context.state.ingest_task = worker  # the ingest endpoint wakes it after its commit
    return worker
