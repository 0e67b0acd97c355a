"""Models through the API: projects to put them in, the clients' JSON create, the seed's multipart upload,
the signed-URL flow that attaches weights, and the unauthenticated download of ``downloadUrl`` links."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.fixtures.assertions import ok
from tests.fixtures.factories import User

MODELS = "/api/models"
PROJECTS = "/api/projects"
SIGNED_URL = "/api/upload/signed-url"
COMPLETE = "/api/upload/complete"
OCTET_STREAM = {"Content-Type": "application/octet-stream"}
# Not a loadable checkpoint: enough for storing, listing and downloading weights. The conversion worker
# that runs in the app's lifespan fails on it quickly, and no test that uses it reads the serving state.
WEIGHTS = b"PK\x03\x04 not really a checkpoint " + bytes(range(256)) * 8


async def create_project(client: httpx.AsyncClient, user: User, slug: str, **fields: Any) -> str:
    """A project of ``user`` created through the API; returns its id."""
    body = {"project": slug, "name": fields.pop("name", slug), **fields}
    project_id: str = ok(await client.post(PROJECTS, json=body, headers=user.headers), 201)["id"]
    return project_id


async def create_model(client: httpx.AsyncClient, user: User, project: str, **fields: Any) -> dict[str, Any]:
    """The clients' JSON ``POST /api/models``; returns the response body."""
    return ok(await client.post(MODELS, json={"project": project, **fields}, headers=user.headers), 201)


async def upload_model(
    client: httpx.AsyncClient,
    user: User,
    project_id: str,
    *,
    data: bytes = WEIGHTS,
    filename: str = "best.pt",
    name: str | None = None,
) -> httpx.Response:
    """The seed's multipart ``POST /api/models`` (``file``, ``projectId``, ``name``)."""
    form = {"projectId": project_id} if name is None else {"projectId": project_id, "name": name}
    files = {"file": (filename, data, "application/octet-stream")}
    return await client.post(MODELS, data=form, files=files, headers=user.headers)


async def uploaded_model(client: httpx.AsyncClient, user: User, project_id: str, **fields: Any) -> dict[str, Any]:
    """A model created by a multipart upload; returns its ``data``."""
    data: dict[str, Any] = ok(await upload_model(client, user, project_id, **fields), 201)["data"]
    return data


def path_of(url: str) -> str:
    """The served path of an absolute URL, for the in-process client."""
    return urlsplit(url).path


async def open_upload(
    client: httpx.AsyncClient, user: User, model_id: str, *, filename: str = "best.pt", size: int = len(WEIGHTS)
) -> httpx.Response:
    body = {
        "assetType": "models",
        "assetId": model_id,
        "filename": filename,
        "contentType": "application/octet-stream",
        "totalBytes": size,
    }
    return await client.post(SIGNED_URL, json=body, headers=user.headers)


async def put_bytes(client: httpx.AsyncClient, opened: dict[str, Any], data: bytes) -> None:
    """The PUT as the SDK sends it: raw bytes, the returned headers, no key."""
    response = await client.put(
        path_of(opened["uploadUrl"]), content=data, headers={**OCTET_STREAM, **opened["headers"]}
    )
    assert response.status_code == 200, response.text


async def complete(client: httpx.AsyncClient, user: User, session_id: str) -> httpx.Response:
    return await client.post(COMPLETE, json={"sessionId": session_id}, headers=user.headers)


async def attach_weights(
    client: httpx.AsyncClient, user: User, model_id: str, data: bytes = WEIGHTS, *, filename: str = "best.pt"
) -> str:
    """signed-url → PUT → complete, as the clients attach weights; returns the upload session id."""
    opened = ok(await open_upload(client, user, model_id, filename=filename, size=len(data)))
    await put_bytes(client, opened, data)
    session_id: str = opened["sessionId"]
    ok(await complete(client, user, session_id))
    return session_id


async def get_model(client: httpx.AsyncClient, user: User, model_id: str) -> dict[str, Any]:
    data: dict[str, Any] = ok(await client.get(f"{MODELS}/{model_id}", headers=user.headers))["data"]
    return data


async def model_files(client: httpx.AsyncClient, user: User, model_id: str) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = ok(await client.get(f"{MODELS}/{model_id}/files", headers=user.headers))["files"]
    return files


async def download(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """A ``downloadUrl`` fetched as ultralytics does: a plain GET, no key, no compression."""
    return await client.get(path_of(url), headers={"Accept-Encoding": "identity"})


async def wait_for_serving(
    client: httpx.AsyncClient, user: User, model_id: str, timeout: float = 120.0
) -> dict[str, Any]:
    """Poll the model until its conversion has ended (``ready`` or ``failed``); returns the model.

    Every 2 s, as the ``ul`` CLI polls: faster would run into the free plan's 60 requests a minute."""
    deadline = time.monotonic() + timeout
    while True:
        model = await get_model(client, user, model_id)
        if model["serving"]["status"] in ("ready", "failed") or time.monotonic() > deadline:
            return model
        await asyncio.sleep(2)
