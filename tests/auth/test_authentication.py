from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User, add_key, create_user
from yolostack.core.db import Database
from yolostack.core.timeutil import utcnow
from yolostack.tables import ApiKey

SUMMARY = "/api/account/summary"


class TestKeyTransport:
    async def test_bearer_header_is_accepted(self, client: httpx.AsyncClient, alice: User) -> None:
        body = ok(await client.get(SUMMARY, headers={"Authorization": f"Bearer {alice.key}"}))
        assert body["username"] == "alice"

    async def test_x_api_key_header_is_accepted(self, client: httpx.AsyncClient, alice: User) -> None:
        body = ok(await client.get(SUMMARY, headers={"x-api-key": alice.key}))
        assert body["username"] == "alice"

    async def test_bearer_scheme_is_case_insensitive(self, client: httpx.AsyncClient, alice: User) -> None:
        ok(await client.get(SUMMARY, headers={"Authorization": f"bearer {alice.key}"}))


class TestRejectedKeys:
    async def test_missing_key_is_401(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.get(SUMMARY)
        assert_error(response, 401, "UNAUTHORIZED")
        assert response.headers["www-authenticate"] == "Bearer"

    @pytest.mark.parametrize("key", ["ul_" + "0" * 40, "not-a-key", "ul_short", "Bearer", "ul_" + "A" * 40], ids=str)
    async def test_invalid_key_is_401(self, client: httpx.AsyncClient, alice: User, key: str) -> None:
        assert_error(await client.get(SUMMARY, headers={"x-api-key": key}), 401, "UNAUTHORIZED")

    async def test_empty_bearer_is_401(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.get(SUMMARY, headers={"Authorization": "Bearer "}), 401, "UNAUTHORIZED")

    async def test_expired_key_is_401(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        soon = await add_key(database, alice, expires_at=utcnow() + timedelta(seconds=1))
        ok(await client.get(SUMMARY, headers={"x-api-key": soon}))
        async with database.engine.begin() as connection:
            await connection.execute(update(ApiKey).values(expires_at=utcnow() - timedelta(seconds=1)))
        body = assert_error(await client.get(SUMMARY, headers={"x-api-key": soon}), 401, "UNAUTHORIZED")
        assert "expired" in body["error"]["message"]

    async def test_revoked_key_is_401(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        other = await add_key(database, alice)
        ok(await client.delete(f"/api/api-keys/{alice.key_id}", headers={"x-api-key": other}))
        body = assert_error(await client.get(SUMMARY, headers=alice.headers), 401, "UNAUTHORIZED")
        assert "revoked" in body["error"]["message"]
        ok(await client.get(SUMMARY, headers={"x-api-key": other}))


class TestScopes:
    async def test_key_without_scopes_has_full_rights(self, client: httpx.AsyncClient, alice: User) -> None:
        for path in (SUMMARY, "/api/projects", "/api/activity", "/api/trash", "/api/api-keys"):
            ok(await client.get(path, headers=alice.headers))

    async def test_missing_scope_is_403(self, client: httpx.AsyncClient, database: Database) -> None:
        scoped = await create_user(database, "carol", scopes=["projects"])
        ok(await client.get("/api/projects", headers=scoped.headers))
        for path in (SUMMARY, "/api/activity", "/api/trash", "/api/api-keys"):
            assert_error(await client.get(path, headers=scoped.headers), 403, "FORBIDDEN")

    async def test_scoped_key_still_needs_to_be_valid(self, client: httpx.AsyncClient, database: Database) -> None:
        await create_user(database, "carol", scopes=["projects"])
        assert_error(await client.get("/api/projects", headers={"x-api-key": "ul_" + "1" * 40}), 401, "UNAUTHORIZED")


class TestLastUsed:
    async def test_use_is_recorded(self, client: httpx.AsyncClient, alice: User) -> None:
        keys = ok(await client.get("/api/api-keys", headers=alice.headers))["keys"]
        (key,) = [key for key in keys if key["keyId"] == alice.key_id]
        assert key["lastUsedAt"] is not None
