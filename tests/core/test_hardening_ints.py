"""Out-of-range integers, in the query of every route and in bodies, are a 422 ``VALIDATION_ERROR``: never an
overflow in the database (SQLite and BIGINT stop at 2**63, PostgreSQL INTEGER at 2**31), never a 500."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User, create_user
from yolostack.core.db import Database
from yolostack.core.pagination import MAX_PAGE
from yolostack.tables import Plan

HUGE = ["100000000000000000000", str(2**63), str(2**31), str(-(2**63) - 1), "1e400", "nan", "inf", "1.5"]


def _int_queries(dependant: Dependant) -> Iterator[tuple[str, bool]]:
    for param in dependant.query_params:
        if param.field_info.annotation in (int, int | None):
            bounded = any(getattr(rule, "le", None) is not None for rule in param.field_info.metadata)
            yield param.alias, bounded
    for dependency in dependant.dependencies:
        yield from _int_queries(dependency)


def int_query_routes(app: FastAPI) -> list[tuple[str, str, bool]]:
    """Every GET route's integer query parameters, as (path with dummy ids, parameter, declares its bounds)."""
    found = []
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or "GET" not in (route.methods or ()):
            continue
        path = str(route.path)
        for name, bounded in dict.fromkeys(_int_queries(route.dependant)):
            concrete = re.sub(r"\{owner(:[^}]*)?\}", "alice", path)
            concrete = re.sub(r"\{[^}]+\}", "x_1", concrete)  # an id's shape: some routes match ids only
            found.append((concrete, name, bounded))
    return found


class TestQueryIntegers:
    async def test_every_integer_query_refuses_what_no_column_holds(
        self, app: FastAPI, client: httpx.AsyncClient, database: Database
    ) -> None:
        alice = await create_user(database, "alice", plan=Plan.enterprise)  # many requests: a large budget
        routes = int_query_routes(app)
        assert {("/api/projects", "page", True), ("/api/jobs/x_1/logs", "after", True)} <= set(routes)
        for path, name, bounded in routes:
            for value in HUGE:
                response = await client.get(path, params={name: value}, headers=alice.headers)
                if not bounded:
                    # Only the deployments' logs ``limit`` (int | None, checked by the route once it applies):
                    # never a 5xx, whatever answers first.
                    assert 400 <= response.status_code < 500, (path, name, value, response.text)
                    continue
                assert_error(response, 422, "VALIDATION_ERROR")
                assert response.json()["error"]["details"][0]["field"] == name, (path, name, value)
        unbounded = {path for path, _, bounded in routes if not bounded}
        assert unbounded <= {"/api/deployments/x_1/x_1", "/api/deployments/alice/x_1/logs"}, unbounded

    async def test_the_largest_page_is_an_empty_page(self, client: httpx.AsyncClient, alice: User) -> None:
        body = ok(await client.get("/api/projects", params={"page": MAX_PAGE, "limit": 100}, headers=alice.headers))
        assert body["data"] == []
        assert_error(
            await client.get("/api/projects", params={"page": MAX_PAGE + 1}, headers=alice.headers),
            422,
            "VALIDATION_ERROR",
        )

    async def test_the_largest_log_cursor_is_an_empty_page(self, client: httpx.AsyncClient, alice: User) -> None:
        # The job does not exist: the cursor is validated first, and a valid one reaches the lookup.
        response = await client.get("/api/jobs/x_1/logs", params={"after": 2**31 - 1}, headers=alice.headers)
        assert_error(response, 404, "NOT_FOUND")


class TestBodyIntegers:
    @pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**30], ids=str)
    async def test_an_integer_past_64_bits_is_422(self, client: httpx.AsyncClient, alice: User, value: int) -> None:
        request = {"assetType": "models", "assetId": "model_x", "filename": "a.pt", "totalBytes": value}
        response = await client.post("/api/upload/signed-url", json=request, headers=alice.headers)
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_a_64_bit_integer_reaches_the_rules(self, client: httpx.AsyncClient, alice: User) -> None:
        request = {"assetType": "models", "assetId": "model_x", "filename": "a.pt", "totalBytes": 2**63 - 1}
        response = await client.post("/api/upload/signed-url", json=request, headers=alice.headers)
        assert 400 <= response.status_code < 500, response.text
