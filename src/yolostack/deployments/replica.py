"""A deployment replica: one model version loaded in one process, answering predict requests.

Run as ``python -m yolostack.deployments.replica`` (the local backend) with the spec as JSON in
``YOLOSTACK_REPLICA_SPEC`` or as one line on stdin: it loads and warms the model, binds a loopback port, prints one JSON line
``{"event": "ready", "port": …, "pid": …}`` on stdout and serves ``POST /predict`` and ``GET /health``.
The Ray Serve backend wraps the same ``Replica`` class in a Serve deployment.

A replica parses the caller's multipart body itself (the same parsing, decoding and rendering as the
shared predict routes), so the API server only relays bytes and the work scales with the replicas.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from yolostack import __version__
from yolostack.config import InferenceSettings
from yolostack.core.errors import AppError, error_response, install_error_handlers
from yolostack.inference.inputs import read_form
from yolostack.inference.params import PLATFORM_IOU, parse_params
from yolostack.inference.pipeline import predict_media
from yolostack_engine import Prediction, PredictOptions, ServedModel, load_model
from yolostack_engine.batching import DynamicBatcher
from yolostack_engine.threads import default_executor, tune_threads

SPEC_VARIABLE = "YOLOSTACK_REPLICA_SPEC"
# The proxy says which default iou applies: the HUB format (serviceUrl) uses 0.45, the Platform route 0.7.
DEFAULT_IOU_HEADER = "x-yolostack-default-iou"
REPLICA_HEADER = "x-yolostack-replica"
WARMUP_SIZE = 64


class ReplicaSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    deployment_id: str
    generation: int
    replica_id: str
    model_dir: str
    version: str
    cpu: int = Field(default=1, ge=1)
    metadata: dict[str, Any] = Field(default_factory=dict)
    inference: InferenceSettings = InferenceSettings()


class Replica:
    """The loaded model, its batcher and the predict handler; no database, no storage, no network."""

    def __init__(self, spec: ReplicaSpec) -> None:
        self.spec = spec
        self.started_at = time.monotonic()
        settings = spec.inference
        self.threads = tune_threads(max(1, min(spec.cpu, os.cpu_count() or 1)))
        self.executor = default_executor(self.threads)
        self.model: ServedModel = load_model(
            Path(spec.model_dir),
            settings.backend,
            device=settings.device,
            threads=settings.threads or self.threads.threads_per_stream,
            precision=settings.precision,
        )
        self.batcher = DynamicBatcher(
            max_batch_size=settings.max_batch_size, max_wait_ms=settings.max_wait_ms, executor=self.executor
        )

    async def warm_up(self) -> None:
        """One inference before taking traffic: the first call pays the runtime's lazy initialisation."""
        image = np.zeros((WARMUP_SIZE, WARMUP_SIZE, 3), dtype=np.uint8)
        await self.batcher.submit(self.model, image, PredictOptions(imgsz=WARMUP_SIZE))

    async def _predict(self, images: list[np.ndarray], options: PredictOptions) -> list[Prediction]:
        if len(images) == 1:
            return [await self.batcher.submit(self.model, images[0], options)]
        return await self.batcher.submit_many(self.model, images, options)

    async def predict(self, request: Request) -> dict[str, Any]:
        """The Platform's predict body: ``images[]`` and ``metadata`` (clients.md §1.7)."""
        started = time.perf_counter()
        try:
            default_iou = float(request.headers.get(DEFAULT_IOU_HEADER) or PLATFORM_IOU)
        except ValueError:
            default_iou = PLATFORM_IOU
        fields, upload = await read_form(request, self.spec.inference)
        params = parse_params(fields, default_iou=default_iou)
        source = fields.get("source")
        images = await predict_media(source, upload, self.spec.inference, self._predict, params)
        metadata = {
            "imageCount": len(images),
            **self.spec.metadata,
            "deployment": self.spec.deployment_id,
            "version": {
                **self.spec.metadata.get("version", {}),
                "yolostack": __version__,
                "backend": self.model.backend.name,
                "weights": self.spec.version,
            },
            "functionTimeCall": round((time.perf_counter() - started) * 1000, 3),
            "functionTimeAlive": round((time.monotonic() - self.started_at) * 1000, 3),
        }
        return {"success": True, "images": images, "metadata": metadata}

    async def respond(self, request: Request) -> JSONResponse:
        """``predict`` rendered as a response; an error in the spec's error format (Ray Serve has no handler)."""
        try:
            response = JSONResponse(await self.predict(request))
        except AppError as error:
            response = error_response(error)
        response.headers[REPLICA_HEADER] = self.spec.replica_id
        return response

    def health(self) -> dict[str, Any]:
        return {
            "healthy": True,
            "replica": self.spec.replica_id,
            "generation": self.spec.generation,
            "backend": self.model.backend.name,
        }

    async def close(self) -> None:
        await self.batcher.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


def create_replica_app(replica: Replica) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)

    @app.post("/predict", response_model=None)
    async def predict(request: Request) -> JSONResponse:
        return await replica.respond(request)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return replica.health()

    return app


def main() -> None:
    """The spec comes from the environment, or (a spare started ahead of need) as one line on stdin once
    everything slow to import is imported: then a cold start only loads the model."""
    raw = os.environ.get(SPEC_VARIABLE)
    if not raw:
        _preload()
        raw = sys.stdin.readline()
        if not raw.strip():
            return  # released unused
    spec = ReplicaSpec.model_validate(json.loads(raw))
    asyncio.run(_serve(spec))


def _preload() -> None:
    import importlib

    import uvicorn  # noqa: F401

    for name in ("onnxruntime", "openvino", "uvloop", "httptools"):
        try:
            importlib.import_module(name)
        except ImportError:
            continue


async def _serve(spec: ReplicaSpec) -> None:
    import uvicorn

    try:
        replica = Replica(spec)
        await replica.warm_up()
    except Exception as error:
        _announce({"event": "failed", "error": f"{type(error).__name__}: {error}"[:2000]})
        sys.exit(3)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without it, a response's second write waits for the client's delayed
    # ACK (about 40 ms per request, measured with httpx and aiohttp clients).
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    config = uvicorn.Config(
        create_replica_app(replica), log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=75
    )
    _announce({"event": "ready", "port": listener.getsockname()[1], "pid": os.getpid()})
    await uvicorn.Server(config).serve(sockets=[listener])


def _announce(event: dict[str, Any]) -> None:
    """One JSON line on stdout: the local backend reads it to learn the replica's port (or why it failed)."""
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
