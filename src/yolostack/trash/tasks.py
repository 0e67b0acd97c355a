"""``trash.purge``: every ``purge_interval_seconds``, delete for good what outlived the retention period."""

from __future__ import annotations

from datetime import timedelta

from yolostack.core.db import Database
from yolostack.core.files import Deleter, delete_orphans
from yolostack.trash.service import trash as trash_service
from yolostack.worker.periodic import PeriodicTask
from yolostack.worker.registry import WorkerContext, workers


async def purge_expired_trash(database: Database, store: Deleter | None = None) -> int:
    """Delete for good what has been in the trash longer than the retention period, then the files only
    those rows used."""
    async with database.sessionmaker() as session:
        async with session.begin():
            purged = await trash_service.purge_expired(session)
        if store is not None:
            await delete_orphans(session, store)
        return purged


@workers.register("trash.purge")
def trash_purger(context: WorkerContext) -> PeriodicTask:
    settings = context.settings.trash
    trash_service.retention = timedelta(days=settings.retention_days)
    store = context.state.file_links.store
    return PeriodicTask(
        "trash.purge",
        settings.purge_interval_seconds,
        lambda: purge_expired_trash(context.database, store),
        initial_delay=settings.purge_initial_delay_seconds,
    )
