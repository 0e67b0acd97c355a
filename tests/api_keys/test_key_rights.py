"""A scoped key can neither create nor revoke a key with more rights than its own (no scopes = every right)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User, add_key
from yolostack.core.crypto import hash_api_key
from yolostack.core.db import Database
from yolostack.tables import ApiKey

KEYS = "/api/api-keys"


def key_header(key: str) -> dict[str, str]:
    return {"x-api-key": key}


async def key_id(database: Database, plaintext: str) -> str:
    async with database.sessionmaker() as session:
        found = await session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_api_key(plaintext)))
    assert found is not None
    return found


async def create(client: httpx.AsyncClient, key: str, scopes: list[str]) -> httpx.Response:
    body: dict[str, Any] = {"name": "minted", "scopes": scopes}
    return await client.post(KEYS, json=body, headers=key_header(key))


class TestCreate:
    @pytest.mark.parametrize(
        "scopes", [[], ["api-keys", "projects"], ["api-keys", "datasets", "projects", "training"]], ids=str
    )
    async def test_more_rights_than_the_caller_is_403(
        self, client: httpx.AsyncClient, database: Database, alice: User, scopes: list[str]
    ) -> None:
        caller = await add_key(database, alice, scopes=["api-keys", "datasets", "training"])
        body = assert_error(await create(client, caller, scopes), 403, "FORBIDDEN")
        assert body["error"]["details"][0]["field"] == "scopes"
        listed = ok(await client.get(KEYS, headers=alice.headers))["keys"]
        assert all(key["name"] != "minted" for key in listed)

    @pytest.mark.parametrize("scopes", [["api-keys"], ["datasets", "training"], ["api-keys", "datasets", "training"]])
    async def test_a_subset_is_created(
        self, client: httpx.AsyncClient, database: Database, alice: User, scopes: list[str]
    ) -> None:
        caller = await add_key(database, alice, scopes=["api-keys", "datasets", "training"])
        created = ok(await create(client, caller, scopes), 201)
        assert created["scopes"] == sorted(scopes)

    async def test_an_unscoped_key_creates_anything(self, client: httpx.AsyncClient, alice: User) -> None:
        assert ok(await create(client, alice.key, []), 201)["scopes"] == []
        assert ok(await create(client, alice.key, ["webhooks"]), 201)["scopes"] == ["webhooks"]


class TestRevoke:
    async def test_a_key_with_more_rights_is_403_and_stays(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        caller = await add_key(database, alice, scopes=["api-keys", "projects"])
        wider = await add_key(database, alice, scopes=["api-keys", "projects", "datasets"])
        for target, plaintext in ((alice.key_id, alice.key), (await key_id(database, wider), wider)):
            response = await client.delete(f"{KEYS}/{target}", headers=key_header(caller))
            assert_error(response, 403, "FORBIDDEN")
            ok(await client.get(KEYS, headers=key_header(plaintext)))  # still works

    async def test_a_key_within_its_rights_is_revoked(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        caller = await add_key(database, alice, scopes=["api-keys", "projects"])
        narrower = await add_key(database, alice, scopes=["projects"])
        ok(await client.delete(f"{KEYS}/{await key_id(database, narrower)}", headers=key_header(caller)))
        assert_error(await client.get("/api/projects", headers=key_header(narrower)), 401, "UNAUTHORIZED")
        # Itself, too: its own rights are no more than its own.
        ok(await client.delete(f"{KEYS}/{await key_id(database, caller)}", headers=key_header(caller)))

    async def test_an_unscoped_key_revokes_anything(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        scoped = await add_key(database, alice, scopes=["datasets"])
        ok(await client.delete(f"{KEYS}/{await key_id(database, scoped)}", headers=alice.headers))
