"""``model.convert``: turn an attached checkpoint into the engine's serving artifacts, once per weights.

The queue is the ``models`` table (``serving_status = pending``), claimed with a lease that the worker
renews, so a conversion interrupted by a restart runs again. The checkpoint is only ever unpickled in
the conversion subprocess (``yolostack_engine.convert``), with time and memory limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from yolostack.activity.service import activity as activity_service
from yolostack.config import InferenceSettings
from yolostack.core.db import Database
from yolostack.core.timeutil import utcnow
from yolostack.models.repository import ModelRepository
from yolostack.models.service import serving_prefix
from yolostack.models.trash import SERVING_FILES
from yolostack.storage.backends import ObjectStore
from yolostack.tables import Model, ModelStatus, ServingStatus
from yolostack_engine.convert import ConversionError, convert_checkpoint_async

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
HEARTBEAT = timedelta(seconds=30)
TASKS = ("detect", "segment", "pose", "obb", "classify")


async def download(store: ObjectStore, key: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as handle:
        async for chunk in store.read(key):
            await asyncio.to_thread(handle.write, chunk)


class ConversionWorker:
    def __init__(self, database: Database, store: ObjectStore, settings: InferenceSettings) -> None:
        self.database = database
        self.store = store
        self.settings = settings
        self._lock = asyncio.Lock()

    async def run_pending(self) -> int:
        """Run every queued conversion, one at a time (each one is a CPU-heavy subprocess)."""
        async with self._lock:
            async with self.database.sessionmaker() as session:
                repository = ModelRepository(session)
                await self._fail_abandoned(repository)
                queued = [(model.id, model.weights_sha256) for model in await repository.queued_conversions(utcnow())]
                await session.commit()
            for model_id, sha256 in queued:
                if sha256 is not None:
                    await self.run(model_id, sha256)
            return len(queued)

    async def _fail_abandoned(self, repository: ModelRepository) -> None:
        for model in await repository.abandoned_conversions(utcnow()):
            model.serving_status = ServingStatus.failed
            model.serving_error = "conversion was interrupted too many times (the server stopped while converting)"

    async def run(self, model_id: str, sha256: str) -> None:
        async with self.database.sessionmaker() as session:
            now = utcnow()
            claimed = await ModelRepository(session).claim_conversion(model_id, sha256, now, now + LEASE)
            model = await session.get(Model, model_id)
            await session.commit()
        if not claimed or model is None or model.weights_key is None:
            return
        heartbeat = asyncio.create_task(self._heartbeat(model_id))
        try:
            with tempfile.TemporaryDirectory(prefix="yolostack-convert-") as work:
                meta = await self._convert(model, Path(work))
            await self._finish(model_id, sha256, meta, None)
        except ConversionError as error:
            await self._finish(model_id, sha256, None, str(error))
        except Exception:
            logger.exception("conversion of %s failed", model_id)
            await self._finish(model_id, sha256, None, "internal error while converting; the server log has details")
        finally:
            # Await the cancelled heartbeat: left running, its session could hold a write transaction
            # (on SQLite, the database lock) past the server's shutdown.
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _heartbeat(self, model_id: str) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT.total_seconds())
            async with self.database.sessionmaker() as session:
                await ModelRepository(session).renew_lease(model_id, utcnow() + LEASE)
                await session.commit()

    async def _convert(self, model: Model, work: Path) -> dict[str, Any]:
        assert model.weights_key is not None
        assert model.weights_sha256 is not None
        source = work / "input" / (model.weights_name or "model.pt")
        await download(self.store, model.weights_key, source)
        result = await convert_checkpoint_async(
            source,
            work / "out",
            timeout_s=self.settings.conversion_timeout_seconds,
            memory_bytes=self.settings.conversion_memory_bytes,
        )
        prefix = serving_prefix(model.owner_id, model.id, model.weights_sha256)
        for name in SERVING_FILES:
            await self.store.put_file(f"{prefix}/{name}", work / "out" / name)
        return dict(result.meta)

    async def _finish(self, model_id: str, sha256: str, meta: dict[str, Any] | None, error: str | None) -> None:
        async with self.database.sessionmaker() as session:
            model = await session.get(Model, model_id)
            if model is None or model.weights_sha256 != sha256:
                return  # new weights arrived meanwhile: their own conversion is queued
            if meta is not None:
                model.serving_status, model.serving_error = ServingStatus.ready, None
                model.serving_key = serving_prefix(model.owner_id, model.id, sha256)
                model.serving_info = meta
                task = meta.get("task")
                if task in TASKS:
                    model.task = task
                if model.status in (ModelStatus.pending, ModelStatus.untrained):
                    model.status = ModelStatus.completed
            else:
                model.serving_status, model.serving_error = ServingStatus.failed, error
            model.serving_lease_until = None
            await activity_service.record(
                session,
                model.owner_id,
                "model.converted" if meta is not None else "model.conversion_failed",
                resource_type="model",
                resource_id=model.id,
                resource_name=model.name,
                message=f"Model '{model.name}' is ready to serve"
                if meta is not None
                else f"Model '{model.name}' could not be prepared for serving: {error}",
            )
            await session.commit()
