"""``model.convert``: turn an attached checkpoint into the engine's serving artifacts, once per weights.

The queue is the ``models`` table (``serving_status = pending``), leased through ``worker.leases``: a
conversion interrupted by a restart runs again, and a server that stops gives its conversion back. The
checkpoint is only ever unpickled in the conversion subprocess (``yolostack_engine.convert``), with time
and memory limits.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_
from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.activity.service import activity as activity_service
from yolostack.config import InferenceSettings
from yolostack.core.db import Database
from yolostack.core.timeutil import utcnow
from yolostack.models.service import SERVING_FILES, serving_prefix
from yolostack.storage.backends import ObjectStore, download
from yolostack.tables import Model, ModelStatus, ServingStatus
from yolostack.worker.leases import Lease, LeaseQueue
from yolostack.worker.queue import QueueWorker
from yolostack.worker.registry import WorkerContext, workers
from yolostack_engine.convert import ConversionError, convert_checkpoint_async

logger = logging.getLogger(__name__)

# Renewed every ttl/3 while the conversion runs: a crashed server's conversion is taken up again (and
# the model stops showing "converting") within this time.
LEASE = timedelta(seconds=30)
MAX_CONVERSION_ATTEMPTS = 3
TASKS = ("detect", "segment", "pose", "obb", "classify")


# The queue is the models table: attached weights wait (pending) until a worker holds their conversion.
CONVERSIONS = LeaseQueue(
    name="model.convert",
    id=Model.id,
    ready=and_(
        Model.serving_status == ServingStatus.pending, Model.deleted_at.is_(None), Model.weights_key.is_not(None)
    ),
    held=Model.serving_status == ServingStatus.converting,
    lease=Model.serving_lease_until,
    holder=Model.serving_lease_holder,
    attempts=Model.serving_attempts,
    ttl=LEASE,
    max_attempts=MAX_CONVERSION_ATTEMPTS,
    claimed={"serving_status": ServingStatus.converting},
    unclaimed={"serving_status": ServingStatus.pending},
    # New weights attached meanwhile end the lease on the old ones (their own conversion is queued).
    fence=(Model.weights_sha256,),
    order_by=(Model.updated_at,),
)


class ConversionWorker:
    def __init__(self, database: Database, store: ObjectStore, settings: InferenceSettings) -> None:
        self.database = database
        self.store = store
        self.settings = settings
        # One conversion at a time: each one is a CPU-heavy subprocess.
        self.runner = QueueWorker(database, CONVERSIONS, self.handle, interval=5.0, give_up=self._give_up)

    async def _give_up(self, session: AsyncSession, model_id: str) -> None:
        failed = {
            Model.serving_status: ServingStatus.failed,
            Model.serving_error: "conversion was interrupted too many times (the server stopped while converting)",
        }
        await CONVERSIONS.abandon(session, model_id, utcnow(), failed)

    async def handle(self, lease: Lease) -> None:
        async with self.database.sessionmaker() as session:
            model = await session.get(Model, lease.row_id)
        if model is None or model.weights_key is None or model.weights_sha256 != lease.fence[0]:
            return
        try:
            with tempfile.TemporaryDirectory(prefix="yolostack-convert-") as work:
                meta = await self._convert(model, Path(work))
            await self._finish(lease, meta, None)
        except ConversionError as error:
            await self._finish(lease, None, str(error))
        except Exception:
            logger.exception("conversion of %s failed", lease.row_id)
            await self._finish(lease, None, "internal error while converting; the server log has details")

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

    async def _finish(self, lease: Lease, meta: dict[str, Any] | None, error: str | None) -> None:
        outcome = ServingStatus.ready if meta is not None else ServingStatus.failed
        async with self.database.sessionmaker() as session, session.begin():
            if not await lease.finish(session, {Model.serving_status: outcome}):
                return  # new weights arrived meanwhile (their own conversion is queued), or the lease was lost
            model = await session.get(Model, lease.row_id, populate_existing=True)
            if model is None:
                return
            if meta is not None:
                model.serving_error = None
                model.serving_key = serving_prefix(model.owner_id, model.id, lease.fence[0])
                model.serving_info = meta
                task = meta.get("task")
                if task in TASKS:
                    model.task = task
                if model.status in (ModelStatus.pending, ModelStatus.untrained):
                    model.status = ModelStatus.completed
            else:
                model.serving_error = error
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


@workers.register("model.convert")
def conversion_worker(context: WorkerContext) -> QueueWorker:
    settings = context.settings.inference
    worker = ConversionWorker(context.database, context.state.file_links.store, settings).runner
    context.state.conversion_task = worker  # endpoints that attach weights wake it after their commit
    return worker
