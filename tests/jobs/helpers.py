"""A live server with a ready dataset and a model, for jobs that call back over HTTP."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.synthetic import make_yolo, zip_dir

POLL = 0.5


def api(base_url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code} {response.text[:2000]}"
    body = response.json()
    assert isinstance(body, dict)
    return body


def upload_dataset(http: httpx.Client, work: Path, slug: str, *, images: int = 16, size: int = 64) -> dict[str, Any]:
    """A synthetic shapes dataset, uploaded and ingested the way the SDK does it."""
    owner, _ = queue_ingest(http, work, slug, images=images, size=size)
    dataset = wait_for(
        lambda: ok(http.get(f"/api/datasets/{owner}/{slug}"))["dataset"], lambda d: d["status"] != "processing", 120
    )
    assert dataset["status"] == "ready", dataset
    return dict(dataset)


def queue_ingest(http: httpx.Client, work: Path, slug: str, *, images: int = 16, size: int = 64) -> tuple[str, str]:
    """Create ``slug``, upload a synthetic shapes archive and queue its ingest; returns the owner and the jobId."""
    archive = zip_dir(make_yolo(work / slug, images=images, size=size), work / f"{slug}.zip")
    created = ok(http.post("/api/datasets", json={"dataset": slug, "name": slug}), 201)
    data = archive.read_bytes()
    signed = ok(
        http.post(
            "/api/upload/signed-url",
            json={"assetType": "datasets", "assetId": created["id"], "filename": archive.name, "totalBytes": len(data)},
        )
    )
    put = httpx.put(signed["uploadUrl"], content=data, headers={"Content-Type": "application/octet-stream"})
    assert put.status_code == 200, put.text
    ok(
        http.post(
            "/api/upload/complete",
            json={"sessionId": signed["sessionId"], "checksum": hashlib.sha256(data).hexdigest()},
        )
    )
    owner = str(created["owner"])
    queued = ok(http.post(f"/api/datasets/{owner}/{slug}/ingest", json={"sessionId": signed["sessionId"]}), 202)
    return owner, str(queued["jobId"])


def create_model(http: httpx.Client, project: str, model: str) -> dict[str, Any]:
    response = http.post("/api/projects", json={"project": project, "name": project})
    assert response.status_code in (201, 409), response.text
    return ok(http.post("/api/models", json={"project": project, "model": model, "name": model}), 201)


def wait_for(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float, *, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value: {value}")
        time.sleep(POLL)
        value = fetch()
    return value


def training_job(http: httpx.Client, owner: str, project: str, model: str) -> dict[str, Any] | None:
    job = ok(http.get(f"/api/models/{owner}/{project}/{model}/training"))["job"]
    return None if job is None else dict(job)


def wait_training(http: httpx.Client, owner: str, project: str, model: str, timeout: float = 300) -> dict[str, Any]:
    return dict(
        wait_for(
            lambda: training_job(http, owner, project, model),
            lambda job: job is not None and job["status"] in ("completed", "failed", "cancelled"),
            timeout,
            what="training to end",
        )
    )


TRAIN_ARGS = {"model": "yolo11n.yaml", "data": "ul://admin/datasets/shapes", "imgsz": 64, "batch": 4, "workers": 0}


class LiveStack:
    """A live ``yolostack serve`` on its own data directory, and the calls the job tests make of it."""

    def __init__(self, tmp: Path, env: dict[str, str], *, cwd: Path | None = None) -> None:
        from tests.fixtures.server import start_server

        self.data = tmp / "data"
        self.cwd = cwd
        self.env = {
            "YOLOSTACK_DATA_DIR": str(self.data),
            "YOLOSTACK_JOBS__DISPATCH_INTERVAL_SECONDS": "0.5",
            **env,
        }
        self.server = start_server(self.env, cwd=cwd)
        assert self.server.key is not None, self.server.output
        self.key = self.server.key
        self.http = api(self.server.base_url, self.key)

    def restart(self) -> None:
        """A new server process on the same port and data (a runner calls back to that address)."""
        from tests.fixtures.server import start_server

        port = int(self.server.base_url.rsplit(":", 1)[1])
        self.server = start_server(self.env, port, cwd=self.cwd)
        self.http = api(self.server.base_url, self.key)

    def start(self, name: str, epochs: int, **args: Any) -> dict[str, Any]:
        """A new model ``admin/demo/<name>`` trained on the ``shapes`` dataset."""
        created = create_model(self.http, "demo", name)
        body = {"modelId": created["id"], "trainArgs": {**TRAIN_ARGS, "epochs": epochs, **args}}
        return ok(self.http.post("/api/training/start", json=body))

    def job(self, name: str) -> dict[str, Any]:
        job = training_job(self.http, "admin", "demo", name)
        assert job is not None
        return job

    def log_text(self, job: dict[str, Any]) -> str:
        logs = ok(self.http.get(f"/api/jobs/{job['id']}/logs", params={"limit": 1000}))["entries"]
        return "\n".join(entry["content"] for entry in logs)
