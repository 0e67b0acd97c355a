"""Serving models: fetch a model's converted artifacts to local disk once, keep it loaded, batch its requests.

Created in the app's lifespan; one per process. Inference never runs on the event loop: the engine's
batcher and cache run pre-processing, forward and post-processing in worker threads.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yolostack.config import InferenceSettings
from yolostack.core.db import Database
from yolostack.core.errors import AppError, Conflict
from yolostack.models.service import SERVING_FILES
from yolostack.storage.backends import ObjectStore, download
from yolostack.tables import Model, ServingStatus
from yolostack_engine import Prediction, PredictOptions, ServedModel, load_model
from yolostack_engine.batching import DynamicBatcher
from yolostack_engine.cache import ModelCache
from yolostack_engine.threads import default_executor, tune_threads

POLL_SECONDS = 0.5


class ModelNotReady(AppError):
    status_code = 503
    code = "MODEL_NOT_READY"
    default_message = "The model is still being prepared for serving; retry shortly"


@dataclass(frozen=True)
class ServingTarget:
    """What the engine needs to serve one model version (read from its row, so no session is held)."""

    model_id: str
    serving_key: str
    version: str
    weights_key: str | None
    info: dict[str, Any]


class InferenceService:
    def __init__(self, database: Database, store: ObjectStore, settings: InferenceSettings, cache_dir: Path) -> None:
        self.database = database
        self.store = store
        self.settings = settings
        self.cache_dir = cache_dir
        self.started_at = time.monotonic()
        self.threads = tune_threads()
        self.executor = default_executor(self.threads)
        self.cache = ModelCache(
            self._load,
            max_models=settings.max_models,
            max_bytes=settings.max_model_bytes,
            executor=self.executor,
        )
        self.batcher = DynamicBatcher(
            max_batch_size=settings.max_batch_size, max_wait_ms=settings.max_wait_ms, executor=self.executor
        )
        self._fetch_locks: dict[str, asyncio.Lock] = {}

    async def close(self) -> None:
        await self.batcher.close()
        await self.cache.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def target(self, model: Model) -> ServingTarget:
        """The model's serving artifacts, waiting (bounded) for a conversion that is still running."""
        deadline = time.monotonic() + self.settings.conversion_wait_seconds
        current = model
        while True:
            if current.weights_key is None:
                raise Conflict("the model has no weights yet: upload a .pt checkpoint first")
            if current.serving_status == ServingStatus.failed:
                raise Conflict(f"the model's checkpoint could not be prepared for serving: {current.serving_error}")
            if current.serving_status == ServingStatus.ready and current.serving_key is not None:
                return ServingTarget(
                    model_id=current.id,
                    serving_key=current.serving_key,
                    version=current.serving_key.rsplit("/", 1)[-1],
                    weights_key=current.weights_key,
                    info=dict(current.serving_info or {}),
                )
            if time.monotonic() >= deadline:
                raise ModelNotReady(headers={"Retry-After": "5"})
            await asyncio.sleep(POLL_SECONDS)
            async with self.database.sessionmaker() as session:
                fresh = await session.get(Model, model.id)
            if fresh is None:
                raise Conflict("the model was deleted")
            current = fresh

    async def predict(
        self, target: ServingTarget, images: list[np.ndarray], options: PredictOptions
    ) -> list[Prediction]:
        key = f"{target.model_id}:{target.version}:{self.settings.backend}"
        await self.ensure_local(target)
        async with self.cache.lease(key) as served:
            if len(images) == 1:
                return [await self.batcher.submit(served, images[0], options)]
            return await self.batcher.submit_many(served, images, options)

    async def backend_name(self, target: ServingTarget) -> str:
        key = f"{target.model_id}:{target.version}:{self.settings.backend}"
        async with self.cache.lease(key) as served:
            return served.backend.name

    def _local_dir(self, model_id: str, version: str) -> Path:
        return self.cache_dir / model_id / version

    def artifact_names(self) -> tuple[str, ...]:
        """The serving files a replica needs: model.onnx + meta.json, and the .pt for the torch backend."""
        names = tuple(name for name in SERVING_FILES if name != "meta.json")
        return (*names, "model.pt", "meta.json") if self._needs_weights() else (*names, "meta.json")

    def _needs_weights(self) -> bool:
        # The torch backend (chosen, or what "auto" picks on a GPU without onnxruntime-gpu) reads the .pt.
        return self.settings.backend == "torch" or (
            self.settings.backend == "auto" and self.settings.device.startswith("cuda")
        )

    async def ensure_local(self, target: ServingTarget) -> Path:
        """Download model.onnx + meta.json (and the .pt for the torch backend) once per version."""
        directory = self._local_dir(target.model_id, target.version)
        if (directory / "meta.json").exists():
            return directory
        lock = self._fetch_locks.setdefault(str(directory), asyncio.Lock())
        async with lock:
            if (directory / "meta.json").exists():
                return directory
            staging = directory.with_name(f".{target.version}.partial")
            shutil.rmtree(staging, ignore_errors=True)
            names = [name for name in SERVING_FILES if name != "meta.json"]
            for name in names:
                await download(self.store, f"{target.serving_key}/{name}", staging / name)
            if self._needs_weights() and target.weights_key is not None:
                await download(self.store, target.weights_key, staging / "model.pt")
            # meta.json last: its presence marks a complete directory.
            await download(self.store, f"{target.serving_key}/meta.json", staging / "meta.json")
            shutil.rmtree(directory, ignore_errors=True)
            staging.rename(directory)
        return directory

    def _load(self, key: str) -> ServedModel:
        model_id, version, backend = key.split(":")
        return load_model(
            self._local_dir(model_id, version),
            backend,
            device=self.settings.device,
            threads=self.settings.threads or self.threads.threads_per_stream,
            precision=self.settings.precision,
        )

    def uptime_ms(self) -> float:
        return (time.monotonic() - self.started_at) * 1000
