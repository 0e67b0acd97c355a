"""The ingest queue survives restarts and is shared safely: leases, take-over, and giving up."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from tests.datasets.test_ingest_flow import upload_archive, wait_ready
from tests.fixtures.assertions import ok
from tests.fixtures.factories import User
from tests.fixtures.synthetic import make_yolo_detect, zip_dir
from yolostack.core.db import Database
from yolostack.core.timeutil import isoformat, utcnow
from yolostack.datasets.tasks import MAX_ATTEMPTS, IngestWorker
from yolostack.tables import Dataset, DatasetStatus


async def interrupted_ingest(
    client: httpx.AsyncClient, database: Database, user: User, tmp_path: Path, *, lease_in: timedelta, attempts: int = 1
) -> str:
    """A dataset whose ingest a worker claimed and then lost (a crash or restart), as the database shows it."""
    created = ok(
        await client.post("/api/datasets", headers=user.headers, json={"dataset": "crash", "name": "crash"}), 201
    )
    archive = zip_dir(make_yolo_detect(tmp_path / "src", images=4), tmp_path / "crash.zip")
    session_id = await upload_archive(client, user, created["id"], archive)
    async with database.sessionmaker() as session, session.begin():
        await session.execute(
            update(Dataset)
            .where(Dataset.id == created["id"])
            .values(
                status=DatasetStatus.processing,
                ingest={
                    "jobId": "job_crashed",
                    "sessionId": session_id,
                    "targetSplit": None,
                    "conflictPolicy": "skip",
                    "queuedAt": isoformat(utcnow()),
                },
                ingest_job_id="job_crashed",
                ingest_attempts=attempts,
                ingest_lease_until=utcnow() + lease_in,
            )
        )
    return str(created["id"])


class TestLeases:
    async def test_an_expired_lease_is_taken_over(
        self, client: httpx.AsyncClient, database: Database, alice: User, tmp_path: Path
    ) -> None:
        await interrupted_ingest(client, database, alice, tmp_path, lease_in=-timedelta(seconds=1))
        dataset = await wait_ready(client, alice, "crash")
        assert dataset["status"] == "ready"
        assert dataset["imageCount"] == 4

    async def test_a_held_lease_is_left_alone(
        self, app: FastAPI, client: httpx.AsyncClient, database: Database, alice: User, tmp_path: Path
    ) -> None:
        dataset_id = await interrupted_ingest(client, database, alice, tmp_path, lease_in=timedelta(minutes=5))
        # A second worker (another server process) finds the lease held and does nothing.
        await IngestWorker(database, app.state.file_links).run(dataset_id)
        await asyncio.sleep(1.5)  # and so does the app's own worker loop, which ticks every second
        dataset = ok(await client.get("/api/datasets/alice/crash", headers=alice.headers))["dataset"]
        assert dataset["status"] == "processing"
        assert dataset["imageCount"] == 0

    async def test_gives_up_after_repeated_interruptions(
        self, client: httpx.AsyncClient, database: Database, alice: User, tmp_path: Path
    ) -> None:
        await interrupted_ingest(
            client, database, alice, tmp_path, lease_in=-timedelta(seconds=1), attempts=MAX_ATTEMPTS
        )
        dataset = await wait_ready(client, alice, "crash")
        assert dataset["status"] == "failed"
        assert "interruptions" in dataset["processingError"]["message"]
