"""A dataset ingest's ``jobId`` reads back as a job: ``GET /api/jobs/{jobId}`` and ``yolostack watch``."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import httpx

from tests.datasets.test_ingest_flow import upload_archive, wait_ready
from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User, add_key
from tests.fixtures.synthetic import make_yolo_detect, zip_dir
from yolostack.core.db import Database
from yolostack.watch import PlainView, follow, format_line, snapshot_of


async def queue_ingest(client: httpx.AsyncClient, user: User, tmp_path: Path, slug: str, archive: Path) -> str:
    """Create ``slug``, upload ``archive`` and queue its ingest; returns the ``jobId`` the API answered."""
    created = ok(await client.post("/api/datasets", headers=user.headers, json={"dataset": slug, "name": slug}), 201)
    session_id = await upload_archive(client, user, created["id"], archive)
    queued = ok(
        await client.post(
            f"/api/datasets/{user.username}/{slug}/ingest", headers=user.headers, json={"sessionId": session_id}
        ),
        202,
    )
    assert queued["status"] == "queued"
    return str(queued["jobId"])


async def read_job(client: httpx.AsyncClient, user: User, job_id: str) -> dict[str, Any]:
    body = ok(await client.get(f"/api/jobs/{job_id}", headers=user.headers))
    assert body["data"] == body["job"]
    job: dict[str, Any] = body["job"]
    return job


async def job_ended(client: httpx.AsyncClient, user: User, job_id: str, timeout: float = 60) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while (job := await read_job(client, user, job_id))["status"] in ("queued", "running"):
            await asyncio.sleep(0.1)
    return job


class TestIngestJob:
    async def test_reads_back_until_completed(self, client: httpx.AsyncClient, alice: User, tmp_path: Path) -> None:
        archive = zip_dir(make_yolo_detect(tmp_path / "src", images=6), tmp_path / "shapes.zip")
        job_id = await queue_ingest(client, alice, tmp_path, "shapes", archive)
        first = await read_job(client, alice, job_id)
        assert (first["id"], first["kind"]) == (job_id, "ingest")
        assert first["status"] in ("queued", "running", "completed")
        job = await job_ended(client, alice, job_id)
        dataset = await wait_ready(client, alice, "shapes")
        assert job == {
            "id": job_id,
            "kind": "ingest",
            "datasetId": dataset["id"],
            "status": "completed",
            "phase": "completed",
            "progress": {"current": 6, "total": 6},
            "error": None,
            "attempts": 1,
            "createdAt": job["createdAt"],
            "updatedAt": job["updatedAt"],
        }
        assert job["createdAt"] <= job["updatedAt"]

    async def test_an_earlier_ingest_of_the_dataset_still_reads_back(
        self, client: httpx.AsyncClient, alice: User, tmp_path: Path
    ) -> None:
        first_archive = zip_dir(make_yolo_detect(tmp_path / "first", images=2), tmp_path / "first.zip")
        first_id = await queue_ingest(client, alice, tmp_path, "twice", first_archive)
        first = await job_ended(client, alice, first_id)
        assert first["status"] == "completed"
        second_archive = zip_dir(make_yolo_detect(tmp_path / "second", images=3), tmp_path / "second.zip")
        session_id = await upload_archive(client, alice, first["datasetId"], second_archive)
        queued = await client.post(
            f"/api/datasets/{alice.username}/twice/ingest", headers=alice.headers, json={"sessionId": session_id}
        )
        second_id = ok(queued, 202)["jobId"]
        assert second_id != first_id

        second = await job_ended(client, alice, second_id)
        assert (second["status"], second["progress"]) == ("completed", {"current": 3, "total": 3})
        assert await read_job(client, alice, first_id) == first
        deleted = await client.delete(f"/api/datasets/{alice.username}/twice", headers=alice.headers)
        assert deleted.status_code < 300
        for job_id in (first_id, second_id):
            assert_error(await client.get(f"/api/jobs/{job_id}", headers=alice.headers), 404, "NOT_FOUND")

    async def test_a_failed_ingest_says_why(self, client: httpx.AsyncClient, alice: User, tmp_path: Path) -> None:
        archive = tmp_path / "broken.zip"
        archive.write_bytes(b"this is not a zip archive")
        job_id = await queue_ingest(client, alice, tmp_path, "broken", archive)
        job = await job_ended(client, alice, job_id)
        assert (job["status"], job["phase"]) == ("failed", "failed")
        assert job["error"]["code"] == "INGEST_FAILED"
        dataset = await wait_ready(client, alice, "broken")
        assert job["error"]["message"] == dataset["processingError"]["message"]

    async def test_another_account_gets_404(
        self, client: httpx.AsyncClient, alice: User, bob: User, tmp_path: Path
    ) -> None:
        archive = zip_dir(make_yolo_detect(tmp_path / "src", images=2), tmp_path / "mine.zip")
        job_id = await queue_ingest(client, alice, tmp_path, "mine", archive)
        assert_error(await client.get(f"/api/jobs/{job_id}", headers=bob.headers), 404, "NOT_FOUND")
        # Nor once it is an earlier ingest, kept aside when the next one was queued.
        dataset_id = (await job_ended(client, alice, job_id))["datasetId"]
        session_id = await upload_archive(client, alice, dataset_id, archive)
        requeued = await client.post(
            f"/api/datasets/{alice.username}/mine/ingest", headers=alice.headers, json={"sessionId": session_id}
        )
        ok(requeued, 202)
        assert_error(await client.get(f"/api/jobs/{job_id}", headers=bob.headers), 404, "NOT_FOUND")

    async def test_needs_the_datasets_scope(
        self, client: httpx.AsyncClient, database: Database, alice: User, tmp_path: Path
    ) -> None:
        archive = zip_dir(make_yolo_detect(tmp_path / "src", images=2), tmp_path / "scoped.zip")
        job_id = await queue_ingest(client, alice, tmp_path, "scoped", archive)
        datasets_only = await add_key(database, alice, scopes=["datasets"])
        training_only = await add_key(database, alice, scopes=["training"])
        read = await client.get(f"/api/jobs/{job_id}", headers={"Authorization": f"Bearer {datasets_only}"})
        assert ok(read)["job"]["kind"] == "ingest"
        refused = await client.get(f"/api/jobs/{job_id}", headers={"Authorization": f"Bearer {training_only}"})
        assert_error(refused, 403, "FORBIDDEN")

    async def test_watch_follows_it_to_the_end(self, client: httpx.AsyncClient, alice: User, tmp_path: Path) -> None:
        """``yolostack watch <jobId>``'s loop over the answers the API gave for this ingest."""
        archive = zip_dir(make_yolo_detect(tmp_path / "src", images=3), tmp_path / "watched.zip")
        job_id = await queue_ingest(client, alice, tmp_path, "watched", archive)
        answers = [ok(await client.get(f"/api/jobs/{job_id}", headers=alice.headers))]
        await job_ended(client, alice, job_id)
        answers.append(ok(await client.get(f"/api/jobs/{job_id}", headers=alice.headers)))

        def replay(request: httpx.Request) -> httpx.Response:
            assert request.url.path == f"/api/jobs/{job_id}"  # and never its logs: an ingest has none
            return httpx.Response(200, json=answers.pop(0) if len(answers) > 1 else answers[0])

        out, notes = io.StringIO(), io.StringIO()
        with httpx.Client(transport=httpx.MockTransport(replay), base_url="http://test") as http:
            code = follow(job_id, http, PlainView(out), interval=0, logs=True, notes=notes, sleep=lambda _: None)
        assert code == 0, notes.getvalue()
        dataset_id = answers[0]["job"]["datasetId"]
        assert out.getvalue().splitlines()[-1] == f"ingest {job_id} ({dataset_id}) completed  images 3/3"
        assert notes.getvalue() == ""


class TestIngestLines:
    def test_running_shows_phase_and_images(self) -> None:
        job = {
            "id": "job_1",
            "kind": "ingest",
            "datasetId": "dataset_1",
            "status": "running",
            "phase": "importing",
            "progress": {"current": 200, "total": 450},
        }
        assert format_line(snapshot_of(job)) == "ingest job_1 (dataset_1) running  phase importing  images 200/450"

    def test_failed_has_the_message(self) -> None:
        job = {
            "id": "job_1",
            "kind": "ingest",
            "status": "failed",
            "phase": "failed",
            "progress": {"current": 0, "total": 0},
            "error": {"message": "not a zip archive", "code": "INGEST_FAILED"},
        }
        snapshot = snapshot_of(job)
        assert format_line(snapshot) == "ingest job_1 failed"
        assert snapshot.error == "not a zip archive"
