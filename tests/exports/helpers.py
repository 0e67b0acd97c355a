"""Exports through the API, and the runner's side of one played in-process (key, phases, artifact upload)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from tests.fixtures.assertions import ok
from tests.fixtures.factories import User
from tests.models.helpers import path_of
from yolostack.core.db import Database
from yolostack.jobs.service import jobs as job_service
from yolostack.tables import Job

EXPORTS = "/api/exports"
ARTIFACT = b"\x08\x07fake onnx bytes " + bytes(range(256)) * 4


def exports_path(model: dict[str, Any]) -> str:
    """The clients' nested route of a model (``model`` is a seed ``data`` object)."""
    return f"/api/models/{model['owner']}/{model['project']}/{model['slug']}/exports"


async def create_export(
    client: httpx.AsyncClient, user: User, model: dict[str, Any], fmt: str = "onnx", **fields: Any
) -> dict[str, Any]:
    """The seed's ``POST /api/exports``; returns the response body."""
    body = {"modelId": model["id"], "format": fmt, **fields}
    return ok(await client.post(EXPORTS, json=body, headers=user.headers), 201)


async def runner_key(database: Database, export_id: str) -> dict[str, str]:
    """The job key the dispatcher would hand the runner."""
    async with database.sessionmaker() as session, session.begin():
        job = await session.get(Job, export_id)
        assert job is not None
        key = await job_service.issue_key(session, job, timedelta(hours=1))
    return {"Authorization": f"Bearer {key}"}


async def finish_as_runner(
    client: httpx.AsyncClient, database: Database, export_id: str, *, filename: str = "best.onnx"
) -> None:
    """downloading → exporting → artifact → PUT → completed, as ``run_export`` reports them."""
    headers = await runner_key(database, export_id)
    for phase in ("downloading", "exporting", "uploading"):
        ok(await client.post(f"/api/jobs/{export_id}/events", json={"phase": phase}, headers=headers))
    staged = ok(
        await client.post(
            f"/api/jobs/{export_id}/artifact", json={"filename": filename, "size": len(ARTIFACT)}, headers=headers
        )
    )
    put = await client.put(
        path_of(staged["uploadUrl"]), content=ARTIFACT, headers={"Content-Type": "application/octet-stream"}
    )
    assert put.status_code == 200, put.text
    ok(
        await client.post(
            f"/api/jobs/{export_id}/events",
            json={"phase": "completed", "sessionId": staged["sessionId"]},
            headers=headers,
        )
    )


async def fail_as_runner(client: httpx.AsyncClient, database: Database, export_id: str, error: str) -> None:
    headers = await runner_key(database, export_id)
    ok(await client.post(f"/api/jobs/{export_id}/events", json={"phase": "failed", "error": error}, headers=headers))
