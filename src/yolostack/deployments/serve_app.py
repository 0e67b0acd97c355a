"""The Ray Serve application of a dedicated deployment: each Serve replica is one ``Replica``.

Imported only inside Ray workers (``import_path`` of the Serve config that ``deployments.ray`` renders);
the API server never imports it. A replica downloads the converted model from the API server with the
deployment's artifact token, loads and warms it, then answers ``POST …/predict`` and ``GET …/health``.

Serve imports this module in a build task on every (re)deploy before any replica starts; the model
runtimes (onnxruntime, openvino, torch) are imported only by the replicas, when they load the model.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx
from ray import serve
from ray.serve.deployment import Application
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from yolostack.core.errors import AppError, NotFound, error_response
from yolostack.deployments.ray import DEPLOYMENT_NAME, ServeArgs
from yolostack.deployments.replica import REPLICA_HEADER, Replica, ReplicaSpec

REPLICA_ENVIRONMENT = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "False", "ORT_DISABLE_TELEMETRY": "1"}
logger = logging.getLogger("ray.serve")


async def download_artifacts(args: ServeArgs, directory: Path) -> None:
    """Fetch ``{artifact_url}/{name}`` for each artifact file into ``directory``."""
    headers = {"Authorization": f"Bearer {args.artifact_token}"} if args.artifact_token else {}
    timeout = httpx.Timeout(300.0, connect=10.0)
    async with httpx.AsyncClient(headers=headers, timeout=timeout, follow_redirects=True) as http:
        for name in args.artifact_files:
            async with http.stream("GET", f"{args.artifact_url.rstrip('/')}/{name}") as response:
                if response.status_code != 200:
                    raise RuntimeError(f"downloading {name} from {args.artifact_url}: HTTP {response.status_code}")
                with (directory / Path(name).name).open("wb") as file:
                    async for chunk in response.aiter_bytes(1 << 20):
                        file.write(chunk)


@serve.deployment(name=DEPLOYMENT_NAME)
class ServeReplica:
    """One model version in one Serve replica; the generation it serves comes as ``user_config``."""

    # Serve awaits an async constructor, so the model is loaded and warm before the replica takes requests.
    async def __init__(self, args: dict[str, Any]) -> None:  # type: ignore[misc]
        # Read by the runtimes when the model loads (ultralytics would otherwise reach the network).
        for name, value in REPLICA_ENVIRONMENT.items():
            os.environ.setdefault(name, value)
        settings = ServeArgs.model_validate(args)
        self.model_dir = Path(tempfile.mkdtemp(prefix="yolostack-serve-"))
        try:
            await download_artifacts(settings, self.model_dir)
            spec = ReplicaSpec(
                deployment_id=settings.deployment_id,
                generation=0,
                replica_id=serve.get_replica_context().replica_id.unique_id,
                model_dir=str(self.model_dir),
                version=settings.version,
                cpu=settings.cpu,
                metadata=settings.metadata,
                inference=settings.inference,
            )
            self.replica = Replica(spec)
            await self.replica.warm_up()
        except BaseException:
            shutil.rmtree(self.model_dir, ignore_errors=True)
            raise

    def reconfigure(self, config: dict[str, Any]) -> None:
        """A new generation that needs no new replicas (a resize) only changes what health reports."""
        generation = int(config.get("generation", 0))
        self.replica.spec = self.replica.spec.model_copy(update={"generation": generation})

    async def __call__(self, request: Request) -> Response:
        path = request.url.path.rstrip("/")
        response: Response
        if request.method == "POST" and path.endswith("/predict"):
            try:
                return await self.replica.respond(request)
            except Exception:
                # Serve would answer a bare 500; ours carries the replica header, so the API server passes
                # it on instead of retrying the request on another replica.
                logger.exception("predict failed")
                response = error_response(AppError())
        elif request.method == "GET" and path.endswith("/health"):
            response = JSONResponse(self.replica.health())
        else:
            response = error_response(NotFound())
        response.headers[REPLICA_HEADER] = self.replica.spec.replica_id
        return response

    def __del__(self) -> None:
        shutil.rmtree(self.model_dir, ignore_errors=True)


def build(args: dict[str, Any]) -> Application:
    """The application builder Serve calls with the config's ``args``."""
    # ``serve.deployment`` turns the class into a ``Deployment``; its stubs keep the class's type.
    application: Application = ServeReplica.bind(args)  # type: ignore[attr-defined]
    return application
