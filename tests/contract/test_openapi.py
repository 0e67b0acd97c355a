"""The OpenAPI document as a product surface: typed, secured, tagged, and readable with no internet."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.fixtures.assertions import assert_error
from tests.fixtures.factories import User
from yolostack.auth.dependencies import needs_key

METHODS = {"get", "put", "post", "patch", "delete"}
ERROR_REF = "#/components/schemas/ErrorResponse"


@pytest.fixture
async def schema(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, items in schema["paths"].items()
        for method, operation in items.items()
        if method in METHODS
    ]


def local_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)


class TestSecuritySchemes:
    async def test_declares_bearer_and_x_api_key(self, schema: dict[str, Any]) -> None:
        schemes = schema["components"]["securitySchemes"]
        assert schemes["bearer"] == {
            "type": "http",
            "scheme": "bearer",
            "description": schemes["bearer"]["description"],
        }
        assert schemes["apiKey"]["type"] == "apiKey"
        assert schemes["apiKey"]["in"] == "header"
        assert schemes["apiKey"]["name"] == "x-api-key"

    async def test_every_operation_that_needs_a_key_says_so(self, schema: dict[str, Any]) -> None:
        for method, path, operation in operations(schema):
            expected: list[dict[str, list[str]]] | None = None
            if needs_key(path, method.upper()):
                expected = [{"bearer": []}, {"apiKey": []}]
            assert operation.get("security") == expected, (method, path)

    async def test_keyed_operations_document_401_403_429(self, schema: dict[str, Any]) -> None:
        for method, path, operation in operations(schema):
            if needs_key(path, method.upper()):
                assert {"401", "403", "429"} <= set(operation["responses"]), (method, path)


class TestErrors:
    async def test_validation_errors_use_the_one_error_schema(self, schema: dict[str, Any]) -> None:
        assert "HTTPValidationError" not in schema["components"]["schemas"]
        for method, path, operation in operations(schema):
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and "content" in response:
                    ref = response["content"]["application/json"]["schema"].get("$ref", "")
                    assert ref == ERROR_REF or ref.endswith("/NotReady"), (method, path, status)

    async def test_operations_with_input_document_422(self, schema: dict[str, Any]) -> None:
        for method, path, operation in operations(schema):
            if operation.get("parameters") or "requestBody" in operation:
                assert "422" in operation["responses"], (method, path)

    async def test_error_schema_is_the_spec_shape(self, schema: dict[str, Any]) -> None:
        schemas = schema["components"]["schemas"]
        error = schemas["ErrorResponse"]
        assert set(error["required"]) == {"error"}
        assert error["properties"]["success"]["const"] is False
        assert set(schemas["ErrorInfo"]["properties"]) == {"code", "message", "details"}

    async def test_a_body_starlette_cannot_parse_is_422(self, client: httpx.AsyncClient, alice: User) -> None:
        headers = {**alice.headers, "Content-Type": "multipart/form-data; boundary=b"}
        response = await client.post("/api/models", headers=headers, content=b"--b\r\nNone--b--\r\n")
        assert_error(response, 422, "VALIDATION_ERROR")


class TestOperations:
    async def test_every_operation_is_tagged(self, schema: dict[str, Any]) -> None:
        declared = {tag["name"] for tag in schema["tags"]}
        for method, path, operation in operations(schema):
            assert operation.get("tags"), (method, path)
            assert set(operation["tags"]) <= declared, (method, path)

    async def test_operation_ids_are_unique_and_readable(self, schema: dict[str, Any]) -> None:
        ids = [operation["operationId"] for _, _, operation in operations(schema)]
        assert len(ids) == len(set(ids))
        for method, path, operation in operations(schema):
            if path == "/api/projects":
                assert operation["operationId"] == {"get": "list_projects", "post": "create_project"}[method]

    async def test_every_operation_documents_its_success_body(self, schema: dict[str, Any]) -> None:
        for method, path, operation in operations(schema):
            successes = {status: response for status, response in operation["responses"].items() if status < "300"}
            assert successes, (method, path)
            for status, response in successes.items():
                for media_type, content in response.get("content", {}).items():
                    body = content.get("schema", {})
                    described = "$ref" in body or "anyOf" in body or body.get("properties") or body.get("format")
                    assert described, (method, path, status, media_type, body)

    async def test_links_name_operations_that_exist(self, schema: dict[str, Any]) -> None:
        ids = {operation["operationId"]: operation for _, _, operation in operations(schema)}
        linked = 0
        for method, path, operation in operations(schema):
            for response in operation["responses"].values():
                for name, target in response.get("links", {}).items():
                    assert target["operationId"] in ids, (method, path, name)
                    parameters = {parameter["name"] for parameter in ids[target["operationId"]].get("parameters", [])}
                    assert set(target["parameters"]) <= parameters, (method, path, name)
                    linked += 1
        assert linked >= 10


class TestSwaggerUi:
    async def test_loads_only_local_assets(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/docs")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        assert "http://" not in html
        assert "https://" not in html
        urls = local_urls(html)
        assert urls
        assert "'/openapi.json'" in html
        assert "validatorUrl" in html
        for url in urls:
            assert url.startswith("/"), url
            asset = await client.get(url)
            assert asset.status_code == 200, url
            kind = asset.headers["content-type"]
            if url.endswith(".js"):
                assert "javascript" in kind
                assert len(asset.content) > 500_000
            elif url.endswith(".css"):
                assert kind.startswith("text/css")
            elif url.endswith(".png"):
                assert kind == "image/png"

    async def test_authorize_works_with_both_headers(self, client: httpx.AsyncClient, alice: User) -> None:
        for headers in ({"Authorization": f"Bearer {alice.key}"}, {"x-api-key": alice.key}):
            assert (await client.get("/api/account/summary", headers=headers)).status_code == 200


class TestRedoc:
    async def test_loads_only_local_assets(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/redoc")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        assert "https://" not in html
        assert "fonts.googleapis" not in html
        for url in local_urls(html):
            assert url.startswith("/"), url
            asset = await client.get(url)
            assert asset.status_code == 200, url
        script = await client.get("/api/docs/assets/redoc/redoc.standalone.js")
        assert "javascript" in script.headers["content-type"]
        assert 'spec-url="/openapi.json"' in html or "/openapi.json" in html

    async def test_logo_is_served_beside_the_page(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/redoc/logo-mini.svg")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("image/svg+xml")
