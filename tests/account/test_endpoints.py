"""The account routes the clients call: ``GET /api/account/summary`` and ``GET /api/users?username=``."""

import httpx

from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User, add_key, create_model, create_user
from yolostack.core.db import Database
from yolostack.tables import Plan

SUMMARY = "/api/account/summary"
USERS = "/api/users"


async def create_project(client: httpx.AsyncClient, user: User, slug: str) -> str:
    body = ok(await client.post("/api/projects", json={"project": slug}, headers=user.headers), 201)
    project_id: str = body["id"]
    return project_id


class TestGetAccountSummary:
    async def test_client_fields(self, client: httpx.AsyncClient, alice: User) -> None:
        body = ok(await client.get(SUMMARY, headers=alice.headers))
        assert body["username"] == "alice"
        assert body["name"] == "alice"
        assert body["accountType"] == "personal"
        assert body["plan"] == "free"
        assert isinstance(body["creditsCents"], int)
        assert body["counts"] == {"projects": 0, "datasets": 0, "models": 0}
        assert body["teams"] == []

    async def test_seed_envelope_matches_top_level(self, client: httpx.AsyncClient, alice: User) -> None:
        body = ok(await client.get(SUMMARY, headers=alice.headers))
        data = body["data"]
        for field in ("username", "name", "accountType", "plan", "creditsCents", "counts", "teams"):
            assert data[field] == body[field], field

    async def test_plan_is_the_accounts(self, client: httpx.AsyncClient, database: Database) -> None:
        carol = await create_user(database, "carol", plan=Plan.pro)
        assert ok(await client.get(SUMMARY, headers=carol.headers))["plan"] == "pro"

    async def test_counts_follow_projects_and_models(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        cars = await create_project(client, alice, "cars")
        await create_project(client, alice, "bikes")
        await create_model(database, alice, cars, "yolo-a")
        await create_model(database, alice, cars, "yolo-b")
        body = ok(await client.get(SUMMARY, headers=alice.headers))
        assert body["counts"] == {"projects": 2, "datasets": 0, "models": 2}
        assert body["data"]["counts"] == body["counts"]

    async def test_trashed_project_and_its_models_leave_the_counts(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        cars = await create_project(client, alice, "cars")
        await create_project(client, alice, "bikes")
        await create_model(database, alice, cars, "yolo")
        ok(await client.delete("/api/projects/alice/cars", headers=alice.headers))
        counts = ok(await client.get(SUMMARY, headers=alice.headers))["counts"]
        assert counts == {"projects": 1, "datasets": 0, "models": 0}

    async def test_other_accounts_resources_are_not_counted(
        self, client: httpx.AsyncClient, database: Database, alice: User, bob: User
    ) -> None:
        bobs = await create_project(client, bob, "public-one")
        await create_model(database, bob, bobs, "yolo")
        assert ok(await client.get(SUMMARY, headers=alice.headers))["counts"]["projects"] == 0
        assert ok(await client.get(SUMMARY, headers=alice.headers))["counts"]["models"] == 0
        assert ok(await client.get(SUMMARY, headers=bob.headers))["counts"]["projects"] == 1

    async def test_answers_for_the_keys_owner(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        assert ok(await client.get(SUMMARY, headers=bob.headers))["username"] == "bob"
        assert ok(await client.get(SUMMARY, headers=alice.headers))["username"] == "alice"

    async def test_missing_key_is_401(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.get(SUMMARY), 401, "UNAUTHORIZED")

    async def test_key_with_account_scope_is_allowed(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        key = await add_key(database, alice, scopes=["account"])
        assert ok(await client.get(SUMMARY, headers={"x-api-key": key}))["username"] == "alice"

    async def test_key_without_account_scope_is_403(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        key = await add_key(database, alice, scopes=["projects"])
        assert_error(await client.get(SUMMARY, headers={"x-api-key": key}), 403, "FORBIDDEN")


class TestGetUser:
    async def test_found(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        body = ok(await client.get(USERS, params={"username": "alice"}, headers=bob.headers))
        user = body["user"]
        assert user["username"] == "alice"
        assert user["fullName"] == "alice"
        assert user["accountType"] == "personal"
        assert user["followerCount"] == 0
        assert user["isFollowed"] is False

    async def test_reveals_no_private_fields(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        body = ok(await client.get(USERS, params={"username": "alice"}, headers=bob.headers))
        assert set(body["user"]) == {"username", "fullName", "accountType", "followerCount", "isFollowed"}
        assert alice.account.id not in str(body)

    async def test_unknown_user_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.get(USERS, params={"username": "nobody"}, headers=alice.headers)
        assert_error(response, 404, "NOT_FOUND")

    async def test_bad_username_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        for username in ("bad_name", "Alice", "-alice", "", "a" * 129):
            response = await client.get(USERS, params={"username": username}, headers=alice.headers)
            assert response.status_code == 422, username
            assert_error(response, 422, "VALIDATION_ERROR")

    async def test_missing_username_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        body = assert_error(await client.get(USERS, headers=alice.headers), 422, "VALIDATION_ERROR")
        assert body["error"]["details"][0]["field"] == "username"

    async def test_missing_key_is_401(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.get(USERS, params={"username": "alice"}), 401, "UNAUTHORIZED")
