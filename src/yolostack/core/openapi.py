"""The OpenAPI document and its two readers, Swagger UI (``/api/docs``) and ReDoc (``/api/redoc``).

FastAPI writes the document from the routes; this adds what it cannot know: the two ways to send a key
(``securitySchemes``), the error responses every operation can answer (one schema, spec §3, in place of
FastAPI's ``HTTPValidationError``), readable operation ids and tag descriptions. The docs pages load their
scripts from the pinned ``fastapi-standalone-docs`` package, never from a CDN (air-gapped installs).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from starlette.responses import FileResponse, HTMLResponse

from yolostack.core.responses import ERROR_DESCRIPTIONS, ErrorResponse

DOCS_URL = "/api/docs"
REDOC_URL = "/api/redoc"
ASSETS_URL = "/api/docs/assets"
ASSETS_DIR = Path(str(files("fastapi_standalone_docs"))) / "static"

# Both headers the clients send a key in: the Platform clients' Bearer and the HUB API's x-api-key.
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (ul_…) as `Authorization: Bearer <key>` — the Platform clients' way",
    },
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "The same API key in the `x-api-key` header — the HUB inference API's way",
    },
}
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]

TAGS: dict[str, str] = {
    "account": "The caller's account and other users' public profiles",
    "api-keys": "API keys: create (shown once), list, revoke",
    "projects": "Projects, which group models",
    "datasets": "Datasets: create, ingest a zip/NDJSON, export, list classes and images",
    "images": "One dataset image and its annotations",
    "models": "Models: upload weights, files, predict",
    "training": "Training runs and the trainer's inbound telemetry",
    "exports": "Model exports to other formats",
    "deployments": "Dedicated deployments: lifecycle, metrics, logs, predict",
    "inference": "The HUB inference API (x-api-key or Bearer)",
    "jobs": "Background jobs: status, logs, events from runners",
    "webhooks": "Outbound webhooks and their deliveries",
    "activity": "The account's activity feed",
    "trash": "Deleted items, restorable for 30 days",
    "storage": "Storage usage and limits",
    "uploads": "Signed upload URLs for large files",
    "files": "Signed download links (the signature is the permission)",
    "health": "Liveness and readiness probes",
}

# The statuses FastAPI writes itself for a route with parameters; ours replace them.
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def install_openapi(app: FastAPI, *, needs_key: Callable[[str, str], bool]) -> None:
    """Serve the customised document at ``app.openapi_url`` and the docs pages from local assets.

    ``needs_key(path, method)`` is the rule the request middleware applies: those operations declare the
    security schemes and the 401/403/429 they can answer.
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = customise(schema, needs_key)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    _add_docs_routes(app)


def customise(schema: dict[str, Any], needs_key: Callable[[str, str], bool]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    schemas = components.setdefault("schemas", {})
    error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorResponse"] = error_schema
    names = _operation_ids(schema)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            operation["operationId"] = names.get((path, method), operation.get("operationId"))
            if not operation.get("tags"):
                operation["tags"] = [_tag_for(path)]
            _document_errors(path, operation, needs_key(path, method.upper()))
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    used = {tag for operations in schema.get("paths", {}).values() for op in operations.values() for tag in op["tags"]}
    schema["tags"] = [{"name": name, "description": TAGS.get(name, "")} for name in _ordered_tags(used)]
    return schema


def _document_errors(path: str, operation: dict[str, Any], secured: bool) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses: list[int] = []
    if secured:
        operation["security"] = SECURITY
        # 404 too: a keyed route looks up what its path or body names (a project, a dataset, an owner).
        statuses += [401, 403, 404, 429]
    parameters = operation.get("parameters", [])
    if parameters or "requestBody" in operation:
        statuses.append(422)
    if "{" in path and 404 not in statuses:
        statuses.append(404)
    if "requestBody" in operation:
        statuses.append(413)
    for status in statuses:
        existing = responses.get(str(status))
        if existing is None or _is_fastapi_validation(existing):
            responses[str(status)] = _error_response(status)
    # Keep the listing readable: success first, then errors by status.
    operation["responses"] = dict(sorted(responses.items(), key=lambda item: item[0]))


def _error_response(status: int) -> dict[str, Any]:
    return {
        "description": ERROR_DESCRIPTIONS.get(status, "Error"),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }


def _is_fastapi_validation(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def _operation_ids(schema: dict[str, Any]) -> dict[tuple[str, str], str]:
    """Each operation's function name (``list_projects``); a name used twice gets its path words added.

    FastAPI's ids are ``{function name}{path}_{method}`` with every non-word character as ``_``.
    """
    operations = []
    for path, items in schema.get("paths", {}).items():
        for method, operation in items.items():
            generated = str(operation.get("operationId", ""))
            suffix = re.sub(r"\W", "_", path) + f"_{method}"
            name = generated.removesuffix(suffix) if generated.endswith(suffix) else generated
            operations.append((path, method, name or generated))
    counts = Counter(name for _, _, name in operations)
    ids: dict[tuple[str, str], str] = {}
    for path, method, name in operations:
        if counts[name] > 1:
            words = "_".join(re.findall(r"[a-z0-9]+", path.lower().replace("/api/", "/")))
            name = f"{name}__{words}_{method}"
        ids[(path, method)] = name
    return ids


def _tag_for(path: str) -> str:
    parts = [part for part in path.split("/") if part and part != "api"]
    return parts[0] if parts and not parts[0].startswith("{") else "inference"


def _ordered_tags(used: set[str]) -> list[str]:
    known = [name for name in TAGS if name in used]
    return known + sorted(used - set(TAGS))


def _add_docs_routes(app: FastAPI) -> None:
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} — API",
            swagger_js_url=f"{ASSETS_URL}/swagger/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/fastapi/favicon.png",
            # No validator badge: it would send the document to validator.swagger.io.
            swagger_ui_parameters={"persistAuthorization": True, "validatorUrl": None, "tryItOutEnabled": True},
        )

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} — API",
            redoc_js_url=f"{ASSETS_URL}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/fastapi/favicon.png",
            with_google_fonts=False,
        )

    # The packaged ReDoc script asks for its logo beside the page (``location.pathname + "/logo-mini.svg"``).
    @app.get(f"{REDOC_URL}/logo-mini.svg", include_in_schema=False)
    async def redoc_logo() -> FileResponse:
        return FileResponse(ASSETS_DIR / "redoc" / "logo-mini.svg", media_type="image/svg+xml")
