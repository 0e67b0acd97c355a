"""A NUL character (valid JSON and valid in a URL) cannot be stored in PostgreSQL text: it is refused or simply
matches nothing, never a 500 (the fuzzer's most frequent find)."""

from __future__ import annotations

import httpx

from tests.fixtures.assertions import assert_error
from tests.fixtures.factories import User


class TestNulCharacters:
    async def test_in_a_json_string_is_a_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.post("/api/projects", headers=alice.headers, json={"name": "a\u0000b"})
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_in_a_json_key_is_a_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        body = {"name": "ok", "metadata": {"a\u0000": 1}}
        assert_error(await client.post("/api/projects", headers=alice.headers, json=body), 422, "VALIDATION_ERROR")

    async def test_in_a_path_finds_nothing(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.get("/api/projects/alice/a%00b", headers=alice.headers)
        assert response.status_code in (404, 422), response.text

    async def test_in_a_query_is_not_a_server_error(self, client: httpx.AsyncClient, alice: User) -> None:
        ok = await client.post("/api/projects", headers=alice.headers, json={"name": "p"})
        assert ok.status_code == 201, ok.text
        response = await client.get("/api/projects/alice/p?search=a%00b", headers=alice.headers)
        assert response.status_code in (200, 422), response.text
