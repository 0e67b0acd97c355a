"""The app's shutdown never hangs and never leaves a write half done (a CI teardown once sat 615 s with six
SQLite connections open): a worker stopped in the middle of a write transaction rolls it back, gives its
row back to the queue, and the database is writable at once by anyone else."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update

from tests.datasets.test_ingest_flow import upload_archive
from tests.fixtures.assertions import ok
from tests.fixtures.database import truncate_all
from tests.fixtures.factories import create_user
from tests.fixtures.synthetic import make_yolo_detect, zip_dir
from tests.worker.test_leases import row
from yolostack.app import create_app
from yolostack.config import Settings
from yolostack.core.db import Database
from yolostack.datasets.tasks import IngestWorker
from yolostack.tables import Dataset, DatasetStatus
from yolostack.worker.periodic import CANCEL_WAIT, STOP_GRACE

# What the app's stop may take at most: the grace for work under way, then a bounded cancellation.
STOP_BOUND = STOP_GRACE + CANCEL_WAIT + 5


async def assert_writable_at_once(database_url: str, dataset_id: str) -> None:
    """Another connection writes the same row without waiting: nobody holds a lock any more."""
    other = Database(database_url)
    try:
        async with other.engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                await connection.execute(text("PRAGMA busy_timeout = 100"))
            else:
                await connection.execute(text("SET lock_timeout = '100ms'"))
            await connection.execute(update(Dataset).where(Dataset.id == dataset_id).values(description="after"))
            await connection.commit()
    finally:
        await other.dispose()


class TestShutdownMidWrite:
    async def test_stop_returns_in_time_and_leaves_the_database_unlocked(
        self, settings: Settings, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        writing = asyncio.Event()

        async def progress_that_stalls(self: IngestWorker, dataset_id: str, *args: Any) -> None:
            """The ingest's first progress write: the UPDATE is sent, then the commit never comes."""
            async with self.database.sessionmaker() as session, session.begin():
                dataset = await session.get(Dataset, dataset_id)
                assert dataset is not None
                dataset.processing_progress = {"phase": "stalled", "current": 0, "total": 0}
                await session.flush()  # the row (SQLite: the whole database) is locked until commit or rollback
                writing.set()
                await asyncio.sleep(3600)

        monkeypatch.setattr(IngestWorker, "_progress", progress_that_stalls)
        cleaner = Database(database_url)
        await truncate_all(cleaner)
        await cleaner.dispose()
        app = create_app(settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        try:
            alice = await create_user(app.state.database, "alice")
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                created = ok(
                    await client.post("/api/datasets", headers=alice.headers, json={"dataset": "d", "name": "d"}), 201
                )
                archive = zip_dir(make_yolo_detect(tmp_path / "src", images=2), tmp_path / "d.zip")
                session_id = await upload_archive(client, alice, created["id"], archive)
                body = {"sessionId": session_id}
                ok(await client.post("/api/datasets/alice/d/ingest", headers=alice.headers, json=body), 202)
            await asyncio.wait_for(writing.wait(), 30)
        finally:
            began = time.monotonic()
            await lifespan.__aexit__(None, None, None)
            took = time.monotonic() - began
        assert took < STOP_BOUND, f"the app took {took:.1f} s to stop"
        await assert_writable_at_once(database_url, created["id"])
        # The stalled write was rolled back, and the ingest is back in the queue for the next start (its
        # attempt not counted: the server stopped, nothing was wrong with the data).
        check = Database(database_url)
        try:
            dataset = await row(check, created["id"])
        finally:
            await check.dispose()
        assert dataset.status == DatasetStatus.processing
        assert dataset.processing_progress != {"phase": "stalled", "current": 0, "total": 0}
        assert (dataset.ingest_lease_until, dataset.ingest_attempts) == (None, 0)
