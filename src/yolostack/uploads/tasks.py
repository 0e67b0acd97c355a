"""``uploads.sweep``: remove what writes cut short by a killed server process left behind, at start and
every few minutes: partial uploads (``objects/.partial/<process>/``, or S3 multipart uploads a day old) and
the temp dirs of server processes that are gone (``<data dir>/tmp/<process>/``).

Only the leftovers of processes that no longer run on this host are touched (``core.processes.sweep``): the
servers sharing a data dir sweep each other's safely.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from yolostack.core.processes import sweep
from yolostack.storage.backends import ObjectStore
from yolostack.worker.periodic import PeriodicTask
from yolostack.worker.registry import WorkerContext, workers

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 600.0


async def sweep_leftovers(store: ObjectStore, data_dir: Path) -> int:
    """One sweep; returns how many leftovers were removed."""
    removed = await store.sweep_partial_writes()
    removed += len(await asyncio.to_thread(sweep, data_dir.resolve() / "tmp"))
    if removed:
        logger.info("removed %d leftover(s) of stopped server processes", removed)
    return removed


@workers.register("uploads.sweep")
def leftover_sweeper(context: WorkerContext) -> PeriodicTask:
    store = context.state.file_links.store
    return PeriodicTask(
        "uploads.sweep", SWEEP_INTERVAL_SECONDS, lambda: sweep_leftovers(store, context.settings.data_dir)
    )
