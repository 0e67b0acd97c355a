"""The trainer's telemetry as ``ultralytics`` sends it (clients.md §2.6), posted through the API."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fixtures.assertions import ok
from tests.fixtures.factories import User

METRICS = "/api/webhooks/training/metrics"
UPLOAD = "/api/webhooks/models/upload"
TRAIN_ARGS = {
    "model": "yolo11n.yaml",
    "data": "ul://alice/datasets/shapes",
    "epochs": "3",
    "imgsz": "64",
    "time": "None",
}


def epoch_metrics(epoch: int) -> dict[str, Any]:
    return {
        "train/box_loss": 2.0 - epoch * 0.1,
        "train/cls_loss": 3.0 - epoch * 0.1,
        "metrics/precision(B)": 0.1 * epoch,
        "metrics/mAP50(B)": 0.05 * epoch,
        "metrics/mAP50-95(B)": 0.02 * epoch,
        "lr": 0.01,
    }


async def send(
    client: httpx.AsyncClient, user: User, event: str, data: dict[str, Any], **identity: Any
) -> httpx.Response:
    return await client.post(METRICS, json={"event": event, "data": data, **identity}, headers=user.headers)


async def start_run(
    client: httpx.AsyncClient, user: User, project: str = "alice/shapes-lab", name: str = "exp", **data: Any
) -> dict[str, Any]:
    body = {"trainArgs": TRAIN_ARGS, "epochs": 3, "device": "cpu", "environment": {"os": "Linux"}, **data}
    return ok(await send(client, user, "training_started", body, project=project, name=name))


async def end_epoch(client: httpx.AsyncClient, user: User, model_id: str, epoch: int, **data: Any) -> dict[str, Any]:
    payload = {"epoch": epoch, "metrics": epoch_metrics(epoch), "fitness": 0.1 * epoch, "best_fitness": 0.1 * epoch}
    return ok(await send(client, user, "epoch_end", {**payload, **data}, modelId=model_id))


async def training(client: httpx.AsyncClient, user: User, owner: str, project: str, model: str) -> dict[str, Any]:
    job: dict[str, Any] = ok(await client.get(f"/api/models/{owner}/{project}/{model}/training", headers=user.headers))[
        "job"
    ]
    return job
