"""The application shell: health, docs, and the spec §3 rules every response follows."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User

# What this checks (middleware, error rendering and docs) does not depend on the database.
pytestmark = pytest.mark.sqlite_only

SUMMARY = "/api/account/summary"
BOOM = "/test-boom"
SECRET = "/srv/yolostack/secret.py line 42"


async def explode() -> None:
    raise RuntimeError(f"database password in {SECRET}")


@pytest.fixture
async def tolerant_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client that, like a real server's client, sees the 500 instead of the re-raised exception."""
    app.add_api_route(BOOM, explode, methods=["GET"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


class TestHealth:
    async def test_answers_ok(self, client: httpx.AsyncClient) -> None:
        body = ok(await client.get("/health"))
        assert body["status"] == "ok"
        assert isinstance(body["version"], str)

    async def test_needs_no_key(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health", headers={"x-api-key": "ul_" + "0" * 40})
        assert response.status_code == 200


class TestReady:
    async def test_reports_each_check(self, client: httpx.AsyncClient) -> None:
        body = ok(await client.get("/ready"))
        assert body["status"] == "ready"
        # These settings have no Redis: the in-process limiter needs no check.
        assert body["checks"] == {"database": "ok"}


class TestOpenApi:
    async def test_lists_the_api(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/openapi.json")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        schema = response.json()
        assert schema["openapi"].startswith("3.")
        assert {"/api/projects", SUMMARY, "/api/api-keys", "/api/trash", "/health"} <= set(schema["paths"])

    async def test_docs_page_is_html(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/docs")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "/openapi.json" in response.text


class TestUnknownRoute:
    @pytest.mark.parametrize("path", ["/api/nothing-here", "/api/projects/a/b/c", "/nothing-here"])
    async def test_is_404_in_the_error_shape(self, client: httpx.AsyncClient, alice: User, path: str) -> None:
        assert_error(await client.get(path, headers=alice.headers), 404, "NOT_FOUND")

    async def test_without_a_key_is_401(self, client: httpx.AsyncClient) -> None:
        # Every /api path needs a key, so an anonymous caller cannot map which routes exist.
        assert_error(await client.get("/api/nothing-here"), 401, "UNAUTHORIZED")

    async def test_outside_api_is_404(self, client: httpx.AsyncClient) -> None:
        assert_error(await client.get("/nothing-here"), 404, "NOT_FOUND")


class TestWrongMethod:
    async def test_is_405_in_the_error_shape(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.put(SUMMARY, headers=alice.headers, json={})
        assert_error(response, 405, "METHOD_NOT_ALLOWED")
        assert "GET" in response.headers["allow"]


class TestTrailingSlash:
    @pytest.mark.parametrize(
        ("method", "path"),
        [("GET", "/api/projects/"), ("POST", "/api/projects/"), ("GET", f"{SUMMARY}/"), ("GET", "/health/")],
        ids=str,
    )
    async def test_is_never_redirected(self, client: httpx.AsyncClient, alice: User, method: str, path: str) -> None:
        response = await client.request(method, path, headers=alice.headers, json={"name": "x"})
        assert not 300 <= response.status_code < 400, response.headers.get("location")
        assert "location" not in response.headers
        assert response.headers["content-type"].startswith("application/json")
        assert "success" in response.json()


class TestMalformedJson:
    async def test_is_a_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.post(
            "/api/projects",
            headers={**alice.headers, "content-type": "application/json"},
            content=b'{"name": "unfinished',
        )
        assert response.status_code == 422, response.text
        assert_error(response, response.status_code, "VALIDATION_ERROR")

    async def test_without_a_key_is_401_not_a_validation_error(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/api/projects", headers={"content-type": "application/json"}, content=b'{"name": "unfinished'
        )
        assert_error(response, 401, "UNAUTHORIZED")

    async def test_wrong_field_type_names_the_field(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.post("/api/projects", headers=alice.headers, json={"name": ["not", "a", "string"]})
        body = assert_error(response, 422, "VALIDATION_ERROR")
        assert any(detail["field"] == "name" for detail in body["error"]["details"])


class TestInternalError:
    async def test_is_500_in_the_error_shape(self, tolerant_client: httpx.AsyncClient) -> None:
        body = assert_error(await tolerant_client.get(BOOM), 500, "INTERNAL_ERROR")
        assert body["error"]["details"] is None

    async def test_leaks_no_traceback_or_path(self, tolerant_client: httpx.AsyncClient) -> None:
        response = await tolerant_client.get(BOOM)
        assert response.status_code == 500
        for leak in ("Traceback", "RuntimeError", "password", SECRET, ".py", "/srv", "/work"):
            assert leak not in response.text

    async def test_carries_a_request_id(self, tolerant_client: httpx.AsyncClient) -> None:
        response = await tolerant_client.get(BOOM, headers={"x-request-id": "req-500"})
        assert response.status_code == 500
        assert response.headers["x-request-id"] == "req-500"


class TestRequestId:
    @pytest.mark.parametrize(
        ("path", "authenticated", "status"),
        [("/health", False, 200), (SUMMARY, True, 200), (SUMMARY, False, 401), ("/api/nothing-here", True, 404)],
        ids=str,
    )
    async def test_every_response_has_one(
        self, client: httpx.AsyncClient, alice: User, path: str, authenticated: bool, status: int
    ) -> None:
        response = await client.get(path, headers=alice.headers if authenticated else {})
        assert response.status_code == status
        assert response.headers["x-request-id"]

    async def test_each_request_gets_its_own(self, client: httpx.AsyncClient) -> None:
        ids = {(await client.get("/health")).headers["x-request-id"] for _ in range(3)}
        assert len(ids) == 3

    async def test_callers_id_is_echoed(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.get(SUMMARY, headers={**alice.headers, "x-request-id": "trace-123"})
        assert response.headers["x-request-id"] == "trace-123"


class TestContentType:
    @pytest.mark.parametrize(
        ("path", "authenticated"),
        [("/health", False), ("/ready", False), (SUMMARY, True), ("/api/projects", True), (SUMMARY, False)],
        ids=str,
    )
    async def test_json_responses_say_so(
        self, client: httpx.AsyncClient, alice: User, path: str, authenticated: bool
    ) -> None:
        response = await client.get(path, headers=alice.headers if authenticated else {})
        assert response.headers["content-type"].split(";")[0] == "application/json"
        assert "success" in json.loads(response.content)
