"""``create_app()``: lifespan, middleware, error handlers and routers."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import Field
from sqlalchemy import text

from yolostack import __version__
from yolostack.api import api_router
from yolostack.auth.dependencies import identify, needs_key
from yolostack.auth.ratelimit import RateLimiter, RateLimitResult, create_rate_limiter
from yolostack.config import Settings, get_settings
from yolostack.core.db import Database
from yolostack.core.errors import (
    Forbidden,
    Unauthorized,
    error_body,
    error_response,
    handle_unexpected_error,
    install_error_handlers,
)
from yolostack.core.limits import BodyLimits
from yolostack.core.openapi import install_openapi
from yolostack.core.responses import Body, ClientResponse, ErrorResponse, client
from yolostack.deployments.endpoints import service_router as deployment_service_router
from yolostack.inference.endpoints import hub_router
from yolostack.inference.service import InferenceService
from yolostack.storage.backends import create_store
from yolostack.storage.endpoints import router as files_router
from yolostack.storage.service import FileLinks
from yolostack.storage.signing import Signer, load_secret
from yolostack.uploads.endpoints import put_router as upload_put_router
from yolostack.web.endpoints import router as web_router
from yolostack.web.pages import STATIC_DIR as WEB_STATIC_DIR
from yolostack.worker.registry import WorkerContext, workers

# The modules whose ``tasks.py`` register background workers (worker/registry.py), in start order; the app
# stops them in reverse order.
WORKER_MODULES = (
    "yolostack.trash.tasks",
    "yolostack.uploads.tasks",
    "yolostack.datasets.tasks",
    "yolostack.models.tasks",
    "yolostack.jobs.tasks",
    "yolostack.webhooks.tasks",
    "yolostack.deployments.tasks",
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings.resolved_database_url)
        limiter = create_rate_limiter(settings.redis_url)
        app.state.database = database
        app.state.rate_limiter = limiter
        app.state.file_links = links = _file_links(settings)
        inference = InferenceService(database, links.store, settings.inference, settings.data_dir / "engine-cache")
        app.state.inference = inference
        context = WorkerContext(settings, database, app.state)
        try:
            # Every background worker, from the registry; stopped (bounded) before what they use is closed.
            async with workers.running(WORKER_MODULES, context) as running:
                app.state.workers = running
                yield
        finally:
            await inference.close()
            await limiter.close()
            await database.dispose()

    app = FastAPI(
        title="yolostack",
        version=__version__,
        summary="Self-hosted Ultralytics Platform and HUB Inference API",
        # Swagger UI (/api/docs) and ReDoc (/api/redoc) are served from local assets by install_openapi.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
        # The SDK does not follow redirects: never answer with a 3xx to add or drop a slash.
        redirect_slashes=False,
    )
    app.state.settings = settings
    install_error_handlers(app)
    install_openapi(app, needs_key=needs_key)
    app.add_middleware(BodyLimits, **settings.limits.body_caps(settings.inference))  # inside _request_context
    app.middleware("http")(_request_context)
    app.include_router(api_router)
    # Signed links: outside /api, no key (the signature is the permission), never rate-limited.
    app.include_router(files_router)
    app.include_router(upload_put_router)
    # The HUB inference API (seed 000): POST / and POST /v1/predict/{modelId}, x-api-key or Bearer.
    app.include_router(hub_router)
    # Each deployment's own URL (serviceUrl): POST /d/{deploymentId}, the HUB format, no rate limit.
    app.include_router(deployment_service_router)
    _add_health_routes(app)
    # The web app: pages for browsers (session cookies), its assets served from the package (no CDN).
    # (the assets first: the owner pages' /{owner}/{project} would take /static/app.css)
    app.mount("/static", StaticFiles(directory=WEB_STATIC_DIR), name="static")
    app.include_router(web_router)
    return app


def _file_links(settings: Settings) -> FileLinks:
    store = create_store(
        settings.storage_url,
        settings.data_dir,
        endpoint_url=settings.storage.s3_endpoint_url,
        region=settings.storage.s3_region,
    )
    return FileLinks(
        store,
        Signer(load_secret(settings.secret_key, settings.data_dir)),
        settings.base_url,
        download_ttl=settings.storage.download_url_ttl_seconds,
        upload_ttl=settings.storage.upload_url_ttl_seconds,
    )


async def _request_context(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """A request id on every response, the key checked before the body is read, and the key's rate-limit
    headers on every limited response."""
    request_id = request.headers.get("x-request-id") or secrets.token_hex(8)
    try:
        if needs_key(request.url.path, request.method):
            # A missing or wrong key is refused before the body is read (BodyLimits reads it, inside): the
            # caller costs one lookup whatever it sends, and learns nothing from validation errors.
            await identify(request)
        response: Response = await call_next(request)
    except (Unauthorized, Forbidden) as error:
        response = error_response(error)
    except Exception as exc:
        # Starlette renders an unhandled error outside every middleware, so the 500 would lack the
        # request id that clients put into their APIError; render it here instead.
        response = await handle_unexpected_error(request, exc)
    response.headers["x-request-id"] = request_id
    result: RateLimitResult | None = getattr(request.state, "rate_limit", None)
    if result is not None:
        for name, value in result.headers().items():
            response.headers.setdefault(name, value)
    return response


class Health(ClientResponse):
    status: Literal["ok"] = "ok"
    version: str


class Ready(ClientResponse):
    status: Literal["ready"] = "ready"
    checks: dict[str, str] = Field(description="Each dependency and 'ok'")


class NotReady(ErrorResponse):
    status: Literal["not ready"] = "not ready"
    checks: dict[str, str] = Field(description="Each dependency and 'ok' or 'unavailable'")


def _add_health_routes(app: FastAPI) -> None:
    @app.get("/health", tags=["health"], response_model=Health)
    async def health() -> Body:
        """Liveness: the process answers."""
        return client(status="ok", version=__version__)

    @app.get(
        "/ready",
        tags=["health"],
        response_model=None,
        responses={200: {"model": Ready}, 503: {"model": NotReady, "description": "A dependency is unavailable"}},
    )
    async def ready(request: Request) -> JSONResponse:
        """Readiness: the database (and Redis, when configured) answer."""
        checks: dict[str, str] = {}
        database: Database = request.app.state.database
        try:
            async with database.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception:
            checks["database"] = "unavailable"
        limiter: RateLimiter = request.app.state.rate_limiter
        ping = getattr(limiter, "ping", None)
        if ping is not None:
            try:
                await ping()
                checks["redis"] = "ok"
            except Exception:
                checks["redis"] = "unavailable"
        if all(value == "ok" for value in checks.values()):
            return JSONResponse({"success": True, "status": "ready", "checks": checks})
        # Still the spec's error shape (§3), with the checks where probes and people look for them.
        body = error_body("SERVICE_UNAVAILABLE", "Not ready: a dependency is unavailable", {"checks": checks})
        return JSONResponse({**body, "status": "not ready", "checks": checks}, status_code=503)
