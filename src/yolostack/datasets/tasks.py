"""``dataset.ingest``: turn an uploaded archive or NDJSON into stored, measured, labelled images.

The queue is the ``datasets`` table itself (``status = processing`` with an ``ingest`` request), so an
ingest interrupted by a restart runs again when the server comes back; images are content-addressed
and de-duplicated per dataset, so running an ingest twice adds nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import or_, update
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
from yolostack.datasets.repository import DatasetRepository, ImageRepository
from yolostack.storage.service import FileLinks
from yolostack.tables import Dataset, DatasetImage, DatasetStatus, UploadSession, UploadStatus, image_key

logger = logging.getLogger(__name__)

BATCH = 200
MAX_ATTEMPTS = 3
LEASE = timedelta(minutes=2)
HEARTBEAT = timedelta(seconds=30)


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


class IngestWorker:
    def __init__(self, database: Database, links: FileLinks, *, limits: ArchiveLimits | None = None) -> None:
        self.database = database
        self.links = links
        self.limits = limits or ArchiveLimits()
        self._lock = asyncio.Lock()
        self._decoders = asyncio.Semaphore(max(2, (os.cpu_count() or 2)))
        self._writers = asyncio.Semaphore(8)

    async def run_pending(self) -> int:
        """Run every queued ingest, one at a time; returns how many ran."""
        async with self._lock:
            async with self.database.sessionmaker() as session:
                queued = [dataset.id for dataset in await DatasetRepository(session).queued_ingests(utcnow())]
            for dataset_id in queued:
                await self.run(dataset_id)
            return len(queued)

    async def run(self, dataset_id: str) -> None:
        request = await self._claim(dataset_id)
        if request is None:
            return
        heartbeat = asyncio.create_task(self._heartbeat(dataset_id))
        try:
            with tempfile.TemporaryDirectory(prefix="yolostack-ingest-") as work:
                await self._ingest(dataset_id, request, Path(work))
        except (IngestFailed, ArchiveError, FormatError) as error:
            await self._fail(dataset_id, str(error))
        except Exception:
            logger.exception("ingest of %s failed", dataset_id)
            await self._fail(dataset_id, "Internal error while ingesting; the server log has details")
        finally:
            # Await the cancelled heartbeat: left running, its session could hold a write transaction
            # (on SQLite, the database lock) past the server's shutdown.
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _heartbeat(self, dataset_id: str) -> None:
        """Renew the lease while the ingest runs, so no other worker takes it over."""
        while True:
            await asyncio.sleep(HEARTBEAT.total_seconds())
            async with self.database.sessionmaker() as session, session.begin():
                await session.execute(
                    update(Dataset).where(Dataset.id == dataset_id).values(ingest_lease_until=utcnow() + LEASE)
                )

    async def _claim(self, dataset_id: str) -> dict[str, Any] | None:
        """Take the ingest's lease; None when another worker holds it or there is nothing to do."""
        now = utcnow()
        async with self.database.sessionmaker() as session, session.begin():
            taken = await session.execute(
                update(Dataset)
                .where(
                    Dataset.id == dataset_id,
                    Dataset.status == DatasetStatus.processing,
                    or_(Dataset.ingest_lease_until.is_(None), Dataset.ingest_lease_until < now),
                )
                .values(ingest_lease_until=now + LEASE)
                .execution_options(synchronize_session=False)
            )
            if int(getattr(taken, "rowcount", 0) or 0) != 1:
                return None
            dataset = await session.get(Dataset, dataset_id)
            if dataset is None or dataset.ingest is None or dataset.status != DatasetStatus.processing:
                return None
            request = dict(dataset.ingest)
            request["attempts"] = int(request.get("attempts", 0)) + 1
            dataset.ingest = request
            if request["attempts"] > MAX_ATTEMPTS:
                dataset.ingest = None
                dataset.ingest_lease_until = None
                dataset.status = DatasetStatus.failed
                dataset.processing_error = {
                    "message": "ingest gave up after repeated interruptions",
                    "timestamp": isoformat(utcnow()),
                }
                return None
            return request

    async def _ingest(self, dataset_id: str, request: dict[str, Any], work: Path) -> None:
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
        await self._finish(dataset_id, request, total, parsed.warnings)

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

    async def _finish(self, dataset_id: str, request: dict[str, Any], total: int, warnings: list[str]) -> None:
        async with self.database.sessionmaker() as session:
            async with session.begin():
                dataset = await session.get(Dataset, dataset_id)
                assert dataset is not None
                dataset.status = DatasetStatus.ready
                dataset.ingest = None
                dataset.ingest_lease_until = None
                dataset.processing_progress = None
                dataset.version += 1
                await self._record(session, dataset, "dataset.ingested", f"Ingested {total} image(s)", warnings)
                upload = await session.get(UploadSession, request["sessionId"])
                if upload is not None:
                    # The archive's content now lives on as images; the archive itself is not kept.
                    upload.status = UploadStatus.consumed
                    delete_after_commit(session, [upload.storage_key])
            await delete_orphans(session, self.links.store)

    async def _fail(self, dataset_id: str, message: str) -> None:
        async with self.database.sessionmaker() as session, session.begin():
            dataset = await session.get(Dataset, dataset_id)
            if dataset is None:
                return
            dataset.status = DatasetStatus.failed
            dataset.ingest = None
            dataset.ingest_lease_until = None
            dataset.processing_error = {"message": message, "timestamp": isoformat(utcnow())}
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
