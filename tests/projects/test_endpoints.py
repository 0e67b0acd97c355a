"""Projects: seed routes by id (``/api/projects[/{projectId}]``) and client routes by ``{owner}/{slug}``."""

import asyncio
from typing import Any

import httpx
from sqlalchemy import select, update

from tests.fixtures.activity_log import activity_events
from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User, add_key, create_model
from yolostack.core.db import Database
from yolostack.tables import Model, Visibility
from yolostack.trash.service import trash as trash_service

PROJECTS = "/api/projects"


async def create_project(client: httpx.AsyncClient, user: User, slug: str, **fields: Any) -> dict[str, Any]:
    """Create through the clients' body shape; returns the response body."""
    body = {"project": slug, "name": fields.pop("name", slug), **fields}
    return ok(await client.post(PROJECTS, json=body, headers=user.headers), 201)


async def set_model(database: Database, model_id: str, **values: Any) -> None:
    async with database.engine.begin() as connection:
        await connection.execute(update(Model).where(Model.id == model_id).values(**values))


async def model_rows(database: Database, project_id: str) -> list[Model]:
    async with database.sessionmaker() as session:
        return list((await session.scalars(select(Model).where(Model.project_id == project_id))).all())


class TestCreateProject:
    async def test_seed_body_derives_slug_from_name(self, client: httpx.AsyncClient, alice: User) -> None:
        body = ok(
            await client.post(
                PROJECTS, json={"name": "My First Project", "description": "traffic"}, headers=alice.headers
            ),
            201,
        )
        data = body["data"]
        assert data["id"].startswith("project_")
        assert data["slug"] == "my-first-project"
        assert data["name"] == "My First Project"
        assert data["description"] == "traffic"
        assert data["visibility"] == "private"
        assert data["modelCount"] == 0
        assert body["id"] == data["id"]
        assert body["project"] == "my-first-project"

    async def test_client_body_returns_top_level_fields(self, client: httpx.AsyncClient, alice: User) -> None:
        body = await create_project(
            client,
            alice,
            "cars",
            name="Cars",
            description="street scenes",
            metadata={"source": "cli"},
            visibility="public",
            tags=["traffic"],
            license="agpl-3.0",
            owner="alice",
        )
        assert body["id"].startswith("project_")
        assert body["owner"] == "alice"
        assert body["project"] == "cars"
        assert body["region"]
        assert body["data"]["visibility"] == "public"
        assert body["data"]["tags"] == ["traffic"]
        assert body["data"]["license"] == "agpl-3.0"
        detail = ok(await client.get(f"{PROJECTS}/{body['id']}", headers=alice.headers))["data"]
        assert detail["metadata"] == {"source": "cli"}
        assert detail["description"] == "street scenes"

    async def test_client_body_without_name_uses_slug(self, client: httpx.AsyncClient, alice: User) -> None:
        body = ok(await client.post(PROJECTS, json={"project": "bare"}, headers=alice.headers), 201)
        assert body["project"] == "bare"
        assert body["name"] == "bare"

    async def test_existing_slug_is_409(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_project(client, alice, "cars")
        response = await client.post(PROJECTS, json={"project": "cars", "name": "Cars again"}, headers=alice.headers)
        assert_error(response, 409, "CONFLICT")

    async def test_existing_slug_from_seed_name_is_409(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_project(client, alice, "my-cars")
        assert_error(await client.post(PROJECTS, json={"name": "My Cars"}, headers=alice.headers), 409, "CONFLICT")

    async def test_concurrent_creates_of_one_slug_give_one_409(self, client: httpx.AsyncClient, alice: User) -> None:
        for slug in ("race-a", "race-b", "race-c"):
            responses = await asyncio.gather(
                *(client.post(PROJECTS, json={"project": slug}, headers=alice.headers) for _ in range(2))
            )
            assert sorted(response.status_code for response in responses) == [201, 409], [r.text for r in responses]
            assert_error(max(responses, key=lambda response: response.status_code), 409, "CONFLICT")
        assert ok(await client.get(PROJECTS, headers=alice.headers))["meta"]["total"] == 3

    async def test_conflict_records_no_event(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_project(client, alice, "cars")
        await client.post(PROJECTS, json={"project": "cars"}, headers=alice.headers)
        assert len(await activity_events(client, alice, "project.created")) == 1

    async def test_same_slug_for_another_account_is_allowed(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        first = await create_project(client, alice, "cars")
        second = await create_project(client, bob, "cars")
        assert first["id"] != second["id"]
        assert second["owner"] == "bob"

    async def test_other_owner_is_404(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        response = await client.post(PROJECTS, json={"project": "cars", "owner": "bob"}, headers=alice.headers)
        assert_error(response, 404, "NOT_FOUND")
        assert ok(await client.get(f"{PROJECTS}/bob", headers=bob.headers))["projects"] == []

    async def test_bad_slug_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        for slug in ("my_project", "MyProject", "-cars", "cars-", "a b", "", "x" * 129, 7):
            response = await client.post(PROJECTS, json={"project": slug, "name": "Cars"}, headers=alice.headers)
            assert response.status_code == 422, slug
            assert assert_error(response, 422, "VALIDATION_ERROR")["error"]["details"][0]["field"] == "project"

    async def test_bad_name_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        bodies: list[dict[str, Any]] = [
            {},
            {"name": ""},
            {"name": "   "},
            {"name": "!!!"},
            {"project": "cars", "name": ""},
            {"name": "n" * 257},
        ]
        for body in bodies:
            response = await client.post(PROJECTS, json=body, headers=alice.headers)
            assert response.status_code == 422, body
            assert_error(response, 422, "VALIDATION_ERROR")

    async def test_huge_metadata_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        body = {"project": "cars", "metadata": {"blob": "x" * 500_001}}
        response = await client.post(PROJECTS, json=body, headers=alice.headers)
        error = assert_error(response, 422, "VALIDATION_ERROR")["error"]
        assert error["details"][0]["field"] == "metadata"

    async def test_long_metadata_key_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        body = {"project": "cars", "metadata": {"k" * 129: 1}}
        assert_error(await client.post(PROJECTS, json=body, headers=alice.headers), 422, "VALIDATION_ERROR")

    async def test_wrong_visibility_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        body = {"project": "cars", "visibility": "secret"}
        error = assert_error(await client.post(PROJECTS, json=body, headers=alice.headers), 422, "VALIDATION_ERROR")
        assert error["error"]["details"][0]["field"] == "visibility"

    async def test_nothing_is_created_on_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        await client.post(PROJECTS, json={"project": "cars", "visibility": "secret"}, headers=alice.headers)
        assert ok(await client.get(PROJECTS, headers=alice.headers))["meta"]["total"] == 0

    async def test_records_activity(self, client: httpx.AsyncClient, alice: User) -> None:
        body = await create_project(client, alice, "cars", name="Cars")
        (event,) = await activity_events(client, alice, "project.created")
        assert event["resourceType"] == "project"
        assert event["resourceId"] == body["id"]
        assert event["resourceName"] == "Cars"

    async def test_missing_key_is_401(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.post(PROJECTS, json={"project": "cars"}), 401, "UNAUTHORIZED")

    async def test_key_without_projects_scope_is_403(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        key = await add_key(database, alice, scopes=["datasets"])
        response = await client.post(PROJECTS, json={"project": "cars"}, headers={"x-api-key": key})
        assert_error(response, 403, "FORBIDDEN")
        assert ok(await client.get(PROJECTS, headers=alice.headers))["meta"]["total"] == 0

    async def test_key_with_projects_scope_may_create(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        key = await add_key(database, alice, scopes=["projects"])
        ok(await client.post(PROJECTS, json={"project": "cars"}, headers={"x-api-key": key}), 201)


class TestListProjects:
    async def test_seed_envelope_with_meta(self, client: httpx.AsyncClient, alice: User) -> None:
        created = await create_project(client, alice, "cars")
        body = ok(await client.get(PROJECTS, headers=alice.headers))
        assert body["meta"] == {"page": 1, "limit": 20, "total": 1}
        (project,) = body["data"]
        assert project["id"] == created["id"]
        assert project["slug"] == "cars"
        assert project["owner"] == "alice"

    async def test_pages_cover_every_project_once(self, client: httpx.AsyncClient, alice: User) -> None:
        slugs = {f"p{index}" for index in range(5)}
        for slug in slugs:
            await create_project(client, alice, slug)
        seen: list[str] = []
        for page in (1, 2, 3):
            body = ok(await client.get(PROJECTS, params={"page": page, "limit": 2}, headers=alice.headers))
            assert body["meta"] == {"page": page, "limit": 2, "total": 5}
            assert len(body["data"]) == (2 if page < 3 else 1)
            seen += [project["slug"] for project in body["data"]]
        assert sorted(seen) == sorted(slugs)
        past_end = ok(await client.get(PROJECTS, params={"page": 4, "limit": 2}, headers=alice.headers))
        assert past_end["data"] == []
        assert past_end["meta"]["total"] == 5

    async def test_newest_first(self, client: httpx.AsyncClient, alice: User) -> None:
        for slug in ("first", "second", "third"):
            await create_project(client, alice, slug)
        projects = ok(await client.get(PROJECTS, headers=alice.headers))["data"]
        created = [project["createdAt"] for project in projects]
        assert created == sorted(created, reverse=True)

    async def test_only_own_projects(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        await create_project(client, alice, "mine")
        await create_project(client, bob, "public-one", visibility="public")
        body = ok(await client.get(PROJECTS, headers=alice.headers))
        assert [project["slug"] for project in body["data"]] == ["mine"]
        assert body["meta"]["total"] == 1

    async def test_counts_live_models(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        created = await create_project(client, alice, "cars")
        await create_model(database, alice, created["id"], "yolo-a")
        await create_model(database, alice, created["id"], "yolo-b")
        (project,) = ok(await client.get(PROJECTS, headers=alice.headers))["data"]
        assert project["modelCount"] == 2

    async def test_bad_pagination_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        for params in ({"limit": 0}, {"limit": 101}, {"page": 0}, {"page": -1}, {"limit": "many"}):
            response = await client.get(PROJECTS, params=params, headers=alice.headers)
            assert response.status_code == 422, params
            assert_error(response, 422, "VALIDATION_ERROR")

    async def test_missing_key_is_401(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.get(PROJECTS), 401, "UNAUTHORIZED")

    async def test_key_without_projects_scope_is_403(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        key = await add_key(database, alice, scopes=["models", "datasets"])
        assert_error(await client.get(PROJECTS, headers={"x-api-key": key}), 403, "FORBIDDEN")


class TestListOwnerProjects:
    async def test_client_fields(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        created = await create_project(client, alice, "cars", name="Cars")
        await create_model(database, alice, created["id"], "yolo")
        body = ok(await client.get(f"{PROJECTS}/alice", headers=alice.headers))
        assert body["total"] == 1
        assert body["region"]
        (project,) = body["projects"]
        assert project["id"] == created["id"]
        assert project["owner"] == "alice"
        assert project["project"] == "cars"
        assert project["name"] == "Cars"
        assert project["visibility"] == "private"
        assert project["modelCount"] == 1
        assert project["starCount"] == 0
        assert project["isStarred"] is False
        assert project["createdAt"]
        assert project["updatedAt"]

    async def test_limit_caps_items_not_total(self, client: httpx.AsyncClient, alice: User) -> None:
        for slug in ("a1", "a2", "a3"):
            await create_project(client, alice, slug)
        body = ok(await client.get(f"{PROJECTS}/alice", params={"limit": 2}, headers=alice.headers))
        assert len(body["projects"]) == 2
        assert body["total"] == 3

    async def test_other_account_sees_only_public(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        await create_project(client, alice, "hidden")
        await create_project(client, alice, "shown", visibility="public")
        body = ok(await client.get(f"{PROJECTS}/alice", headers=bob.headers))
        assert [project["project"] for project in body["projects"]] == ["shown"]
        assert body["total"] == 1

    async def test_unknown_owner_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.get(f"{PROJECTS}/nobody", headers=alice.headers), 404, "NOT_FOUND")

    async def test_limit_out_of_range_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        for limit in (0, 101):
            response = await client.get(f"{PROJECTS}/alice", params={"limit": limit}, headers=alice.headers)
            assert response.status_code == 422, limit
            assert_error(response, 422, "VALIDATION_ERROR")


class TestGetProjectById:
    async def test_seed_envelope(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        created = await create_project(client, alice, "cars", name="Cars", metadata={"k": "v"})
        await create_model(database, alice, created["id"], "yolo")
        body = ok(await client.get(f"{PROJECTS}/{created['id']}", headers=alice.headers))
        data = body["data"]
        assert data["id"] == created["id"]
        assert data["slug"] == "cars"
        assert data["project"] == "cars"
        assert data["owner"] == "alice"
        assert data["name"] == "Cars"
        assert data["metadata"] == {"k": "v"}
        assert data["modelCount"] == 1

    async def test_unknown_id_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.get(f"{PROJECTS}/project_doesnotexist0000000", headers=alice.headers)
        assert_error(response, 404, "NOT_FOUND")

    async def test_other_account_gets_404(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        created = await create_project(client, alice, "cars")
        assert_error(await client.get(f"{PROJECTS}/{created['id']}", headers=bob.headers), 404, "NOT_FOUND")

    async def test_public_project_of_other_account_is_readable(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        created = await create_project(client, alice, "cars", visibility="public")
        data = ok(await client.get(f"{PROJECTS}/{created['id']}", headers=bob.headers))["data"]
        assert data["owner"] == "alice"
        assert data["visibility"] == "public"


class TestGetProject:
    async def test_client_fields(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        created = await create_project(client, alice, "cars", name="Cars", metadata={"k": [1, 2]})
        model_id = await create_model(database, alice, created["id"], "yolo")
        body = ok(await client.get(f"{PROJECTS}/alice/cars", headers=alice.headers))
        assert body["isOwner"] is True
        project = body["project"]
        assert project["id"] == created["id"]
        assert project["owner"] == "alice"
        assert project["project"] == "cars"
        assert project["name"] == "Cars"
        assert project["metadata"] == {"k": [1, 2]}
        assert project["modelCount"] == 1
        (model,) = body["models"]
        assert model["id"] == model_id
        assert model["model"] == "yolo"
        assert model["name"] == "yolo"
        assert model["hasWeights"] is False
        assert "status" in model

    async def test_search_filters_models(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        created = await create_project(client, alice, "cars")
        await create_model(database, alice, created["id"], "alpha")
        await create_model(database, alice, created["id"], "beta")
        body = ok(await client.get(f"{PROJECTS}/alice/cars", params={"search": "alp"}, headers=alice.headers))
        assert [model["model"] for model in body["models"]] == ["alpha"]
        assert body["project"]["modelCount"] == 2

    async def test_search_is_literal(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        created = await create_project(client, alice, "cars")
        await set_model(database, await create_model(database, alice, created["id"], "plain"), name="plain")
        await set_model(database, await create_model(database, alice, created["id"], "under"), name="v8_s")
        await set_model(database, await create_model(database, alice, created["id"], "pct"), name="100% map")
        for search, expected in (("_", ["under"]), ("%", ["pct"]), ("8_s", ["under"]), ("a", ["pct", "plain"])):
            response = await client.get(f"{PROJECTS}/alice/cars", params={"search": search}, headers=alice.headers)
            assert sorted(model["model"] for model in ok(response)["models"]) == expected, search

    async def test_private_models_of_public_project_are_hidden_from_others(
        self, client: httpx.AsyncClient, database: Database, alice: User, bob: User
    ) -> None:
        created = await create_project(client, alice, "cars", visibility="public")
        await set_model(
            database, await create_model(database, alice, created["id"], "open"), visibility=Visibility.public
        )
        await create_model(database, alice, created["id"], "closed")
        theirs = ok(await client.get(f"{PROJECTS}/alice/cars", headers=bob.headers))
        assert [model["model"] for model in theirs["models"]] == ["open"]
        assert theirs["project"]["modelCount"] == 1
        (listed,) = ok(await client.get(f"{PROJECTS}/alice", headers=bob.headers))["projects"]
        assert listed["modelCount"] == 1
        assert ok(await client.get(f"{PROJECTS}/{created['id']}", headers=bob.headers))["data"]["modelCount"] == 1
        mine = ok(await client.get(f"{PROJECTS}/alice/cars", headers=alice.headers))
        assert sorted(model["model"] for model in mine["models"]) == ["closed", "open"]
        assert mine["project"]["modelCount"] == 2

    async def test_unknown_slug_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.get(f"{PROJECTS}/alice/nothing", headers=alice.headers), 404, "NOT_FOUND")

    async def test_other_account_gets_404(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        await create_project(client, alice, "cars")
        first = assert_error(await client.get(f"{PROJECTS}/alice/cars", headers=bob.headers), 404, "NOT_FOUND")
        second = assert_error(await client.get(f"{PROJECTS}/alice/absent", headers=bob.headers), 404, "NOT_FOUND")
        # A private project must be indistinguishable from a missing one.
        assert first["error"]["message"].replace("cars", "absent") == second["error"]["message"]

    async def test_public_project_of_other_account_is_readable(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        await create_project(client, alice, "cars", visibility="public")
        body = ok(await client.get(f"{PROJECTS}/alice/cars", headers=bob.headers))
        assert body["isOwner"] is False
        assert body["project"]["owner"] == "alice"

    async def test_missing_key_is_401(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_project(client, alice, "cars")
        assert_error(await client.get(f"{PROJECTS}/alice/cars"), 401, "UNAUTHORIZED")

    async def test_key_without_projects_scope_is_403(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        await create_project(client, alice, "cars")
        key = await add_key(database, alice, scopes=["account"])
        assert_error(await client.get(f"{PROJECTS}/alice/cars", headers={"x-api-key": key}), 403, "FORBIDDEN")


class TestUpdateProject:
    async def test_client_fields(self, client: httpx.AsyncClient, alice: User) -> None:
        created = await create_project(client, alice, "cars")
        body = ok(
            await client.patch(
                f"{PROJECTS}/alice/cars",
                json={"description": "new", "visibility": "public", "metadata": {"a": 1}, "tags": ["x"]},
                headers=alice.headers,
            )
        )
        assert body["project"] == "cars"
        data = body["data"]
        assert data["id"] == created["id"]
        assert data["description"] == "new"
        assert data["visibility"] == "public"
        assert data["metadata"] == {"a": 1}
        assert data["tags"] == ["x"]
        stored = ok(await client.get(f"{PROJECTS}/alice/cars", headers=alice.headers))["project"]
        assert stored["description"] == "new"
        assert stored["visibility"] == "public"
        assert stored["metadata"] == {"a": 1}

    async def test_rename_changes_slug(self, client: httpx.AsyncClient, alice: User) -> None:
        created = await create_project(client, alice, "cars")
        body = ok(await client.patch(f"{PROJECTS}/alice/cars", json={"name": "Fast Cars"}, headers=alice.headers))
        assert body["project"] == "fast-cars"
        moved = ok(await client.get(f"{PROJECTS}/alice/fast-cars", headers=alice.headers))["project"]
        assert moved["id"] == created["id"]
        assert moved["name"] == "Fast Cars"
        assert_error(await client.get(f"{PROJECTS}/alice/cars", headers=alice.headers), 404, "NOT_FOUND")

    async def test_rename_onto_existing_slug_is_409(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_project(client, alice, "cars")
        await create_project(client, alice, "bikes")
        response = await client.patch(f"{PROJECTS}/alice/cars", json={"name": "Bikes"}, headers=alice.headers)
        assert_error(response, 409, "CONFLICT")
        ok(await client.get(f"{PROJECTS}/alice/cars", headers=alice.headers))

    async def test_untouched_fields_are_kept(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_project(client, alice, "cars", description="keep", visibility="public", metadata={"k": 1})
        ok(await client.patch(f"{PROJECTS}/alice/cars", json={"tags": ["t"]}, headers=alice.headers))
        project = ok(await client.get(f"{PROJECTS}/alice/cars", headers=alice.headers))["project"]
        assert project["description"] == "keep"
        assert project["visibility"] == "public"
        assert project["metadata"] == {"k": 1}

    async def test_records_activity(self, client: httpx.AsyncClient, alice: User) -> None:
        created = await create_project(client, alice, "cars")
        ok(await client.patch(f"{PROJECTS}/alice/cars", json={"description": "d"}, headers=alice.headers))
        (event,) = await activity_events(client, alice, "project.updated")
        assert event["resourceId"] == created["id"]
        assert event["details"]["fields"] == ["description"]

    async def test_bad_input_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_project(client, alice, "cars", description="orig")
        bodies: list[dict[str, Any]] = [
            {"name": ""},
            {"name": "  "},
            {"name": None},
            {"visibility": "secret"},
            {"visibility": None},
            {"metadata": {"blob": "x" * 500_001}},
            {"tags": ["t" * 65]},
            {"description": "d" * 10_001},
        ]
        for body in bodies:
            response = await client.patch(f"{PROJECTS}/alice/cars", json=body, headers=alice.headers)
            assert response.status_code == 422, str(body)[:60]
            assert_error(response, 422, "VALIDATION_ERROR")
        project = ok(await client.get(f"{PROJECTS}/alice/cars", headers=alice.headers))["project"]
        assert (project["name"], project["visibility"], project["description"]) == ("cars", "private", "orig")

    async def test_name_without_letters_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_project(client, alice, "cars")
        response = await client.patch(f"{PROJECTS}/alice/cars", json={"name": "!!!"}, headers=alice.headers)
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_other_account_gets_404(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        await create_project(client, alice, "cars")
        response = await client.patch(f"{PROJECTS}/alice/cars", json={"name": "Mine"}, headers=bob.headers)
        assert_error(response, 404, "NOT_FOUND")
        ok(await client.get(f"{PROJECTS}/alice/cars", headers=alice.headers))

    async def test_public_project_of_other_account_is_403(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        await create_project(client, alice, "cars", visibility="public", description="orig")
        response = await client.patch(f"{PROJECTS}/alice/cars", json={"description": "defaced"}, headers=bob.headers)
        assert_error(response, 403, "FORBIDDEN")
        project = ok(await client.get(f"{PROJECTS}/alice/cars", headers=alice.headers))["project"]
        assert project["description"] == "orig"

    async def test_missing_key_is_401(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_project(client, alice, "cars")
        assert_error(await client.patch(f"{PROJECTS}/alice/cars", json={"description": "d"}), 401, "UNAUTHORIZED")

    async def test_key_without_projects_scope_is_403(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        await create_project(client, alice, "cars")
        key = await add_key(database, alice, scopes=["models"])
        response = await client.patch(f"{PROJECTS}/alice/cars", json={"description": "d"}, headers={"x-api-key": key})
        assert_error(response, 403, "FORBIDDEN")


class TestDeleteProject:
    async def test_moves_project_and_models_to_trash(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        created = await create_project(client, alice, "cars")
        for slug in ("yolo-a", "yolo-b"):
            await create_model(database, alice, created["id"], slug)
        body = ok(await client.delete(f"{PROJECTS}/alice/cars", headers=alice.headers))
        assert body["cascadedModels"] == 2
        assert_error(await client.get(f"{PROJECTS}/alice/cars", headers=alice.headers), 404, "NOT_FOUND")
        assert all(model.deleted_at is not None for model in await model_rows(database, created["id"]))
        trash = ok(await client.get("/api/trash", headers=alice.headers))
        assert [(item["id"], item["type"]) for item in trash["items"]] == [(created["id"], "project")]

    async def test_without_models_cascades_none(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_project(client, alice, "cars")
        body = ok(await client.delete(f"{PROJECTS}/alice/cars", headers=alice.headers))
        assert body["cascadedModels"] == 0

    async def test_already_trashed_models_are_not_counted(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        created = await create_project(client, alice, "cars")
        await create_model(database, alice, created["id"], "live")
        await create_model(database, alice, created["id"], "gone")
        # Trash one model on its own first: it is not part of the project's cascade.
        async with database.sessionmaker() as session, session.begin():
            model = await session.scalar(select(Model).where(Model.slug == "gone"))
            assert model is not None
            await trash_service.move(session, alice.account.id, "model", model)
        body = ok(await client.delete(f"{PROJECTS}/alice/cars", headers=alice.headers))
        assert body["cascadedModels"] == 1

    async def test_trashed_slug_can_be_created_again(self, client: httpx.AsyncClient, alice: User) -> None:
        first = await create_project(client, alice, "cars")
        ok(await client.delete(f"{PROJECTS}/alice/cars", headers=alice.headers))
        second = await create_project(client, alice, "cars")
        assert second["id"] != first["id"]
        assert ok(await client.get(f"{PROJECTS}/alice/cars", headers=alice.headers))["project"]["id"] == second["id"]

    async def test_trashed_project_leaves_lists(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_project(client, alice, "cars")
        await create_project(client, alice, "bikes")
        ok(await client.delete(f"{PROJECTS}/alice/cars", headers=alice.headers))
        seed = ok(await client.get(PROJECTS, headers=alice.headers))
        assert [project["slug"] for project in seed["data"]] == ["bikes"]
        assert seed["meta"]["total"] == 1
        owner = ok(await client.get(f"{PROJECTS}/alice", headers=alice.headers))
        assert [project["project"] for project in owner["projects"]] == ["bikes"]

    async def test_twice_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_project(client, alice, "cars")
        ok(await client.delete(f"{PROJECTS}/alice/cars", headers=alice.headers))
        assert_error(await client.delete(f"{PROJECTS}/alice/cars", headers=alice.headers), 404, "NOT_FOUND")

    async def test_records_activity(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        created = await create_project(client, alice, "cars")
        await create_model(database, alice, created["id"], "yolo")
        ok(await client.delete(f"{PROJECTS}/alice/cars", headers=alice.headers))
        (event,) = await activity_events(client, alice, "project.trashed")
        assert event["resourceId"] == created["id"]
        assert event["details"]["cascaded"] == {"model": 1}

    async def test_other_account_gets_404(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        await create_project(client, alice, "cars")
        assert_error(await client.delete(f"{PROJECTS}/alice/cars", headers=bob.headers), 404, "NOT_FOUND")
        ok(await client.get(f"{PROJECTS}/alice/cars", headers=alice.headers))

    async def test_public_project_of_other_account_is_403(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        await create_project(client, alice, "cars", visibility="public")
        assert_error(await client.delete(f"{PROJECTS}/alice/cars", headers=bob.headers), 403, "FORBIDDEN")
        ok(await client.get(f"{PROJECTS}/alice/cars", headers=alice.headers))

    async def test_missing_key_is_401(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_project(client, alice, "cars")
        assert_error(await client.delete(f"{PROJECTS}/alice/cars"), 401, "UNAUTHORIZED")

    async def test_key_without_projects_scope_is_403(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        await create_project(client, alice, "cars")
        key = await add_key(database, alice, scopes=["trash"])
        assert_error(await client.delete(f"{PROJECTS}/alice/cars", headers={"x-api-key": key}), 403, "FORBIDDEN")
        ok(await client.get(f"{PROJECTS}/alice/cars", headers=alice.headers))


class TestDeleteProjectById:
    async def test_seed_envelope_and_cascade(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        created = await create_project(client, alice, "cars")
        await create_model(database, alice, created["id"], "yolo")
        body = ok(await client.delete(f"{PROJECTS}/{created['id']}", headers=alice.headers))
        assert body["data"] == {"id": created["id"], "trashed": True, "cascadedModels": 1}
        assert body["cascadedModels"] == 1
        assert_error(await client.get(f"{PROJECTS}/{created['id']}", headers=alice.headers), 404, "NOT_FOUND")

    async def test_slug_instead_of_id_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_project(client, alice, "cars")
        assert_error(await client.delete(f"{PROJECTS}/cars", headers=alice.headers), 404, "NOT_FOUND")
        ok(await client.get(f"{PROJECTS}/alice/cars", headers=alice.headers))

    async def test_other_account_gets_404(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        created = await create_project(client, alice, "cars")
        assert_error(await client.delete(f"{PROJECTS}/{created['id']}", headers=bob.headers), 404, "NOT_FOUND")
        ok(await client.get(f"{PROJECTS}/{created['id']}", headers=alice.headers))

    async def test_public_project_of_other_account_is_403(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        created = await create_project(client, alice, "cars", visibility="public")
        assert_error(await client.delete(f"{PROJECTS}/{created['id']}", headers=bob.headers), 403, "FORBIDDEN")
        ok(await client.get(f"{PROJECTS}/{created['id']}", headers=alice.headers))

    async def test_key_without_projects_scope_is_403(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        created = await create_project(client, alice, "cars")
        key = await add_key(database, alice, scopes=["models"])
        response = await client.delete(f"{PROJECTS}/{created['id']}", headers={"x-api-key": key})
        assert_error(response, 403, "FORBIDDEN")
