"""API keys: list (both dialects), create (plaintext once), revoke."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from tests.fixtures.activity_log import activity_events
from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User, add_key, create_user
from yolostack.core.crypto import hash_api_key
from yolostack.core.db import Database
from yolostack.core.timeutil import utcnow
from yolostack.tables import ApiKey

KEYS = "/api/api-keys"
SUMMARY = "/api/account/summary"
KEY_PATTERN = re.compile(r"^ul_[0-9a-f]{40}$")
LISTED_FIELDS = {"id", "keyId", "name", "keyPrefix", "scopes", "createdAt", "expiresAt", "lastUsedAt"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def create_key(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    return ok(await client.post(KEYS, json={"name": "ci", **body}, headers=headers), 201)


async def stored_key(database: Database, key_id: str) -> ApiKey:
    async with database.sessionmaker() as session:
        key = await session.scalar(select(ApiKey).where(ApiKey.id == key_id))
    assert key is not None
    return key


class TestListApiKeys:
    async def test_both_dialects(self, client: httpx.AsyncClient, alice: User) -> None:
        body = ok(await client.get(KEYS, headers=alice.headers))
        (listed,) = body["keys"]
        assert body["data"] == body["keys"]
        assert listed["keyId"] == alice.key_id
        assert listed["id"] == alice.key_id
        assert listed["name"] == "test key"
        assert listed["keyPrefix"] == alice.key[: len(listed["keyPrefix"])]
        assert listed["createdAt"]
        assert listed["scopes"] == []

    async def test_never_shows_a_secret(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        extra = await add_key(database, alice, scopes=["projects"])
        response = await client.get(KEYS, headers=alice.headers)
        keys = ok(response)["keys"]
        assert len(keys) == 2
        for listed in keys:
            assert set(listed) == LISTED_FIELDS
            assert len(listed["keyPrefix"]) < 20
        for secret in (alice.key, extra, hash_api_key(alice.key), hash_api_key(extra)):
            assert secret not in response.text

    async def test_only_own_keys(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        keys = ok(await client.get(KEYS, headers=alice.headers))["keys"]
        assert [listed["keyId"] for listed in keys] == [alice.key_id]

    async def test_revoked_keys_are_not_listed(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        other = await add_key(database, alice)
        ok(await client.delete(f"{KEYS}/{alice.key_id}", headers=bearer(other)))
        keys = ok(await client.get(KEYS, headers=bearer(other)))["keys"]
        assert alice.key_id not in [listed["keyId"] for listed in keys]
        assert len(keys) == 1

    async def test_missing_key_is_401(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.get(KEYS), 401, "UNAUTHORIZED")

    async def test_key_without_api_keys_scope_is_403(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        key = await add_key(database, alice, scopes=["projects", "account"])
        assert_error(await client.get(KEYS, headers=bearer(key)), 403, "FORBIDDEN")


class TestCreateApiKey:
    async def test_returns_plaintext_once(self, client: httpx.AsyncClient, alice: User) -> None:
        body = await create_key(client, alice.headers, name="laptop", scopes=["projects", "models"])
        assert KEY_PATTERN.fullmatch(body["key"])
        assert body["data"]["key"] == body["key"]
        assert body["keyId"].startswith("key_")
        assert body["data"]["id"] == body["keyId"]
        assert body["name"] == "laptop"
        assert body["scopes"] == ["models", "projects"]
        assert body["key"].startswith(body["keyPrefix"])
        assert body["expiresAt"] is None
        listing = await client.get(KEYS, headers=alice.headers)
        assert body["keyId"] in [listed["keyId"] for listed in ok(listing)["keys"]]
        assert body["key"] not in listing.text

    async def test_new_key_works_at_once(self, client: httpx.AsyncClient, alice: User) -> None:
        body = await create_key(client, alice.headers)
        assert ok(await client.get(SUMMARY, headers=bearer(body["key"])))["username"] == "alice"
        assert ok(await client.get(SUMMARY, headers={"x-api-key": body["key"]}))["username"] == "alice"

    async def test_only_the_hash_is_stored(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        body = await create_key(client, alice.headers)
        stored = await stored_key(database, body["keyId"])
        assert stored.key_hash == hash_api_key(body["key"])
        assert body["key"] not in (stored.key_hash, stored.key_prefix)

    async def test_each_key_is_new(self, client: httpx.AsyncClient, alice: User) -> None:
        first = await create_key(client, alice.headers)
        second = await create_key(client, alice.headers)
        assert first["key"] != second["key"]
        assert first["keyId"] != second["keyId"]

    async def test_scoped_key_is_limited_to_its_scopes(self, client: httpx.AsyncClient, alice: User) -> None:
        body = await create_key(client, alice.headers, scopes=["projects"])
        ok(await client.get("/api/projects", headers=bearer(body["key"])))
        assert_error(await client.get(SUMMARY, headers=bearer(body["key"])), 403, "FORBIDDEN")

    async def test_expiry_is_kept(self, client: httpx.AsyncClient, alice: User) -> None:
        expires = utcnow().replace(microsecond=0) + timedelta(days=30)
        body = await create_key(client, alice.headers, expiresAt=iso(expires))
        assert datetime.fromisoformat(body["expiresAt"]) == expires
        keys = ok(await client.get(KEYS, headers=alice.headers))["keys"]
        (listed,) = [listed for listed in keys if listed["keyId"] == body["keyId"]]
        assert datetime.fromisoformat(listed["expiresAt"]) == expires

    async def test_expiry_with_offset_is_accepted(self, client: httpx.AsyncClient, alice: User) -> None:
        expires = (utcnow() + timedelta(days=1)).replace(microsecond=0)
        local = expires.astimezone(datetime.now().astimezone().tzinfo).isoformat()
        body = await create_key(client, alice.headers, expiresAt=local)
        assert datetime.fromisoformat(body["expiresAt"]) == expires

    async def test_expired_key_gets_401_later(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        body = await create_key(client, alice.headers, expiresAt=iso(utcnow() + timedelta(hours=1)))
        ok(await client.get(SUMMARY, headers=bearer(body["key"])))
        async with database.engine.begin() as connection:
            await connection.execute(
                update(ApiKey).where(ApiKey.id == body["keyId"]).values(expires_at=utcnow() - timedelta(seconds=1))
            )
        error = assert_error(await client.get(SUMMARY, headers=bearer(body["key"])), 401, "UNAUTHORIZED")
        assert "expired" in error["error"]["message"]
        ok(await client.get(SUMMARY, headers=alice.headers))

    async def test_past_expiry_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.post(
            KEYS, json={"name": "old", "expiresAt": iso(utcnow() - timedelta(minutes=1))}, headers=alice.headers
        )
        body = assert_error(response, 422, "VALIDATION_ERROR")
        assert body["error"]["details"] == [{"field": "expiresAt"}]

    async def test_naive_expiry_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        naive = (utcnow() + timedelta(days=1)).replace(tzinfo=None).isoformat()
        response = await client.post(KEYS, json={"name": "naive", "expiresAt": naive}, headers=alice.headers)
        body = assert_error(response, 422, "VALIDATION_ERROR")
        assert body["error"]["details"][0]["field"] == "expiresAt"

    async def test_unparseable_expiry_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.post(KEYS, json={"name": "x", "expiresAt": "next week"}, headers=alice.headers)
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_unknown_scope_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.post(KEYS, json={"name": "x", "scopes": ["projects", "root"]}, headers=alice.headers)
        body = assert_error(response, 422, "VALIDATION_ERROR")
        assert body["error"]["details"][0]["field"].startswith("scopes")

    async def test_bad_name_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        for body in ({}, {"name": ""}, {"name": "   "}, {"name": "n" * 129}, {"name": 5}):
            response = await client.post(KEYS, json=body, headers=alice.headers)
            assert response.status_code == 422, body
            assert_error(response, 422, "VALIDATION_ERROR")

    async def test_nothing_is_created_on_error(self, client: httpx.AsyncClient, alice: User) -> None:
        await client.post(KEYS, json={"name": "x", "scopes": ["root"]}, headers=alice.headers)
        await client.post(
            KEYS, json={"name": "x", "expiresAt": iso(utcnow() - timedelta(days=1))}, headers=alice.headers
        )
        assert len(ok(await client.get(KEYS, headers=alice.headers))["keys"]) == 1
        events = await activity_events(client, alice, "api_key.created")
        assert [event["resourceId"] for event in events] == [alice.key_id]

    async def test_scoped_key_cannot_mint_broader_scopes(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        key = await add_key(database, alice, scopes=["api-keys", "projects"])
        for scopes in (["models"], ["api-keys", "projects", "models"], ["account"]):
            response = await client.post(KEYS, json={"name": "x", "scopes": scopes}, headers=bearer(key))
            assert response.status_code == 403, scopes
            assert_error(response, 403, "FORBIDDEN")

    async def test_scoped_key_cannot_mint_full_rights(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        key = await add_key(database, alice, scopes=["api-keys", "projects"])
        for body in ({"name": "x"}, {"name": "x", "scopes": []}):
            assert_error(await client.post(KEYS, json=body, headers=bearer(key)), 403, "FORBIDDEN")

    async def test_scoped_key_can_mint_a_subset(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        key = await add_key(database, alice, scopes=["api-keys", "projects"])
        body = await create_key(client, bearer(key), scopes=["projects"])
        assert body["scopes"] == ["projects"]
        ok(await client.get("/api/projects", headers=bearer(body["key"])))

    async def test_api_keys_scope_key_can_mint_its_own_scope(
        self, client: httpx.AsyncClient, database: Database
    ) -> None:
        carol = await create_user(database, "carol", scopes=["api-keys"])
        body = await create_key(client, carol.headers, scopes=["api-keys"])
        assert body["scopes"] == ["api-keys"]
        ok(await client.get(KEYS, headers=bearer(body["key"])))

    async def test_full_rights_key_can_mint_any_scopes(self, client: httpx.AsyncClient, alice: User) -> None:
        body = await create_key(client, alice.headers, scopes=["billing", "account"])
        assert body["scopes"] == ["account", "billing"]

    async def test_records_activity(self, client: httpx.AsyncClient, alice: User) -> None:
        body = await create_key(client, alice.headers, name="laptop", scopes=["projects"])
        events = [
            e for e in await activity_events(client, alice, "api_key.created") if e["resourceId"] == body["keyId"]
        ]
        (event,) = events
        assert event["resourceName"] == "laptop"
        assert event["details"] == {"scopes": ["projects"]}
        assert body["key"] not in str(event)

    async def test_missing_key_is_401(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.post(KEYS, json={"name": "x"}), 401, "UNAUTHORIZED")

    async def test_key_without_api_keys_scope_is_403(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        key = await add_key(database, alice, scopes=["projects"])
        response = await client.post(KEYS, json={"name": "x", "scopes": ["projects"]}, headers=bearer(key))
        assert_error(response, 403, "FORBIDDEN")


class TestRevokeApiKey:
    async def test_revokes(self, client: httpx.AsyncClient, alice: User) -> None:
        created = await create_key(client, alice.headers)
        body = ok(await client.delete(f"{KEYS}/{created['keyId']}", headers=alice.headers))
        assert body["keyId"] == created["keyId"]
        assert body["revoked"] is True
        assert body["data"] == {"id": created["keyId"], "revoked": True}
        error = assert_error(await client.get(SUMMARY, headers=bearer(created["key"])), 401, "UNAUTHORIZED")
        assert "revoked" in error["error"]["message"]
        ok(await client.get(SUMMARY, headers=alice.headers))

    async def test_revoked_at_is_stored(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        created = await create_key(client, alice.headers)
        ok(await client.delete(f"{KEYS}/{created['keyId']}", headers=alice.headers))
        assert (await stored_key(database, created["keyId"])).revoked_at is not None

    async def test_key_may_revoke_itself(self, client: httpx.AsyncClient, alice: User) -> None:
        ok(await client.delete(f"{KEYS}/{alice.key_id}", headers=alice.headers))
        assert_error(await client.get(SUMMARY, headers=alice.headers), 401, "UNAUTHORIZED")

    async def test_already_revoked_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        created = await create_key(client, alice.headers)
        ok(await client.delete(f"{KEYS}/{created['keyId']}", headers=alice.headers))
        assert_error(await client.delete(f"{KEYS}/{created['keyId']}", headers=alice.headers), 404, "NOT_FOUND")

    async def test_unknown_id_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.delete(f"{KEYS}/key_doesnotexist000000000", headers=alice.headers), 404, "NOT_FOUND")

    async def test_other_account_gets_404(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        assert_error(await client.delete(f"{KEYS}/{bob.key_id}", headers=alice.headers), 404, "NOT_FOUND")
        assert ok(await client.get(SUMMARY, headers=bob.headers))["username"] == "bob"

    async def test_records_activity(self, client: httpx.AsyncClient, alice: User) -> None:
        created = await create_key(client, alice.headers, name="laptop")
        ok(await client.delete(f"{KEYS}/{created['keyId']}", headers=alice.headers))
        (event,) = await activity_events(client, alice, "api_key.revoked")
        assert event["resourceId"] == created["keyId"]
        assert event["resourceName"] == "laptop"

    async def test_missing_key_is_401(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.delete(f"{KEYS}/{alice.key_id}"), 401, "UNAUTHORIZED")
        ok(await client.get(SUMMARY, headers=alice.headers))

    async def test_key_without_api_keys_scope_is_403(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        key = await add_key(database, alice, scopes=["projects"])
        assert_error(await client.delete(f"{KEYS}/{alice.key_id}", headers=bearer(key)), 403, "FORBIDDEN")
        ok(await client.get(SUMMARY, headers=alice.headers))
