from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User, add_key, create_model
from tests.fixtures.trash import (
    TRASH,
    backdate_trash,
    create_project,
    existing_ids,
    trash_model,
    trash_project,
    trashed_ids,
)
from yolostack.core.db import Database
from yolostack.core.timeutil import utcnow


async def list_trash(client: httpx.AsyncClient, user: User, **params: str | int) -> dict[str, Any]:
    return ok(await client.get(TRASH, params=params, headers=user.headers))


async def project_with_models(
    client: httpx.AsyncClient, database: Database, user: User, slug: str, models: list[str]
) -> tuple[str, list[str]]:
    project_id = await create_project(client, user, slug)
    model_ids = [await create_model(database, user, project_id, model) for model in models]
    return project_id, model_ids


async def delete_trash(client: httpx.AsyncClient, user: User, body: dict[str, Any]) -> httpx.Response:
    return await client.request("DELETE", TRASH, json=body, headers=user.headers)


class TestListTrash:
    async def test_empty_trash(self, client: httpx.AsyncClient, alice: User) -> None:
        body = await list_trash(client, alice)
        assert body["items"] == []
        assert body["data"] == []
        assert (body["total"], body["page"], body["limit"], body["totalPages"]) == (0, 1, 20, 0)
        assert body["meta"] == {"page": 1, "limit": 20, "total": 0}
        assert body["summary"]["totalItems"] == 0
        assert body["summary"]["totalSizeBytes"] == 0
        assert isinstance(body["region"], str)

    async def test_trashed_project_is_listed_with_its_cascade(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        project_id, _ = await project_with_models(client, database, alice, "alpha", ["m1", "m2"])
        before = utcnow()
        await trash_project(client, alice, "alpha")
        body = await list_trash(client, alice)
        (item,) = body["items"]
        assert item["_id"] == item["id"] == project_id
        assert (item["type"], item["name"], item["slug"]) == ("project", "alpha", "alpha")
        assert item["cascadedCount"] == 2
        assert item["daysRemaining"] == 30
        assert item.get("parentProject") is None
        trashed_at = datetime.fromisoformat(item["trashedAt"])
        assert before - timedelta(seconds=1) <= trashed_at <= utcnow()
        assert body["data"] == body["items"]
        assert body["total"] == body["meta"]["total"] == 1

    async def test_trashed_model_names_its_project(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        project_id, (model_id,) = await project_with_models(client, database, alice, "alpha", ["m1"])
        await trash_model(database, alice, model_id)
        (item,) = (await list_trash(client, alice))["items"]
        assert (item["_id"], item["type"], item["slug"], item["cascadedCount"]) == (model_id, "model", "m1", 0)
        assert item["parentProject"] == {"_id": project_id, "name": "alpha", "slug": "alpha"}

    async def test_days_remaining_counts_down(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        project_id = await create_project(client, alice, "alpha")
        await trash_project(client, alice, "alpha")
        await backdate_trash(database, project_id, days=10.5)
        (item,) = (await list_trash(client, alice))["items"]
        assert item["daysRemaining"] == 20

    async def test_overdue_item_has_no_days_left(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        project_id = await create_project(client, alice, "alpha")
        await trash_project(client, alice, "alpha")
        await backdate_trash(database, project_id, days=45)
        (item,) = (await list_trash(client, alice))["items"]
        assert item["daysRemaining"] == 0

    async def test_newest_first(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        ids = [await create_project(client, alice, slug) for slug in ("old", "new", "middle")]
        for slug in ("old", "new", "middle"):
            await trash_project(client, alice, slug)
        await backdate_trash(database, ids[0], days=3)
        await backdate_trash(database, ids[2], days=1)
        items = (await list_trash(client, alice))["items"]
        assert [item["slug"] for item in items] == ["new", "middle", "old"]

    async def test_live_items_are_not_listed(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        await project_with_models(client, database, alice, "alive", ["m1"])
        body = await list_trash(client, alice)
        assert body["items"] == []
        assert body["total"] == 0

    async def test_type_filter(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        project_id = await create_project(client, alice, "gone")
        _, (model_id,) = await project_with_models(client, database, alice, "alive", ["m1"])
        await trash_project(client, alice, "gone")
        await trash_model(database, alice, model_id)

        def ids(body: dict[str, Any]) -> set[str]:
            return {item["id"] for item in body["items"]}

        assert ids(await list_trash(client, alice, type="project")) == {project_id}
        assert ids(await list_trash(client, alice, type="model")) == {model_id}
        assert ids(await list_trash(client, alice, type="all")) == {project_id, model_id}
        assert ids(await list_trash(client, alice)) == {project_id, model_id}
        filtered = await list_trash(client, alice, type="dataset")
        assert filtered["items"] == []
        assert filtered["total"] == 0

    async def test_unknown_type_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.get(TRASH, params={"type": "deployment"}, headers=alice.headers)
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_pagination(self, client: httpx.AsyncClient, alice: User) -> None:
        slugs = [f"p{index}" for index in range(5)]
        for slug in slugs:
            await create_project(client, alice, slug)
            await trash_project(client, alice, slug)
        pages = [await list_trash(client, alice, page=page, limit=2) for page in (1, 2, 3, 4)]
        assert [len(page["items"]) for page in pages] == [2, 2, 1, 0]
        for number, page in enumerate(pages, start=1):
            assert (page["total"], page["page"], page["limit"], page["totalPages"]) == (5, number, 2, 3)
            assert page["meta"] == {"page": number, "limit": 2, "total": 5}
            assert page["summary"]["totalItems"] == 5
        seen = [item["slug"] for page in pages for item in page["items"]]
        assert sorted(seen) == slugs
        everything = await list_trash(client, alice, limit=100)
        assert [item["slug"] for item in everything["items"]] == seen

    @pytest.mark.parametrize("params", [{"page": 0}, {"limit": 0}, {"limit": 101}], ids=str)
    async def test_invalid_paging_is_validation_error(
        self, client: httpx.AsyncClient, alice: User, params: dict[str, int]
    ) -> None:
        assert_error(await client.get(TRASH, params=params, headers=alice.headers), 422, "VALIDATION_ERROR")

    async def test_summary_counts_by_type(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        for slug in ("one", "two"):
            await create_project(client, alice, slug)
            await trash_project(client, alice, slug)
        _, (model_id,) = await project_with_models(client, database, alice, "alive", ["m1"])
        await trash_model(database, alice, model_id)
        summary = (await list_trash(client, alice, type="project"))["summary"]
        assert summary["totalItems"] == 2
        assert summary["byType"]["projects"]["count"] == 2
        assert summary["byType"]["models"]["count"] == 0
        summary = (await list_trash(client, alice))["summary"]
        assert summary["totalItems"] == 3
        assert summary["byType"]["projects"]["count"] == 2
        assert summary["byType"]["models"]["count"] == 1
        assert summary["byType"]["datasets"]["count"] == 0

    async def test_other_accounts_items_are_not_listed(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        await create_project(client, alice, "secret")
        await trash_project(client, alice, "secret")
        bob_project = await create_project(client, bob, "mine")
        await trash_project(client, bob, "mine")
        body = await list_trash(client, bob)
        assert [item["id"] for item in body["items"]] == [bob_project]
        assert body["summary"]["totalItems"] == 1


class TestPreviewTrash:
    async def test_project_preview_lists_its_live_models(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        project_id, (m1, m2, m3) = await project_with_models(client, database, alice, "alpha", ["m1", "m2", "m3"])
        await trash_model(database, alice, m3)
        body = await list_trash(client, alice, id=project_id, type="project")
        resources = body["resources"]
        assert resources[0] == {"id": project_id, "type": "project", "name": "alpha"}
        assert sorted((r["id"], r["type"], r["name"]) for r in resources[1:]) == sorted(
            [(m1, "model", "m1"), (m2, "model", "m2")]
        )
        assert body["data"] == resources
        assert "items" not in body
        # A preview changes nothing.
        assert await trashed_ids(database, [project_id, m1, m2]) == set()

    async def test_model_preview(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        _, (model_id,) = await project_with_models(client, database, alice, "alpha", ["m1"])
        body = await list_trash(client, alice, id=model_id, type="model")
        assert body["resources"] == [{"id": model_id, "type": "model", "name": "m1"}]

    @pytest.mark.parametrize("type_", [None, "all"], ids=str)
    async def test_needs_a_type(self, client: httpx.AsyncClient, alice: User, type_: str | None) -> None:
        project_id = await create_project(client, alice, "alpha")
        params = {"id": project_id} if type_ is None else {"id": project_id, "type": type_}
        assert_error(await client.get(TRASH, params=params, headers=alice.headers), 422, "VALIDATION_ERROR")

    async def test_unknown_id_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        params = {"id": "project_doesnotexist", "type": "project"}
        assert_error(await client.get(TRASH, params=params, headers=alice.headers), 404, "NOT_FOUND")

    async def test_other_account_gets_404(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        project_id = await create_project(client, alice, "secret")
        params = {"id": project_id, "type": "project"}
        assert_error(await client.get(TRASH, params=params, headers=bob.headers), 404, "NOT_FOUND")


class TestRestoreTrashItem:
    async def test_restores_project_and_its_models(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        project_id, model_ids = await project_with_models(client, database, alice, "alpha", ["m1", "m2"])
        await trash_project(client, alice, "alpha")
        body = ok(await client.post(TRASH, json={"id": project_id, "type": "project"}, headers=alice.headers))
        assert body["restoredModels"] == 2
        assert body["data"]["restoredModels"] == 2
        assert body["data"]["id"] == project_id
        assert body["slug"] == "alpha"
        detail = ok(await client.get(f"/api/projects/{alice.username}/alpha", headers=alice.headers))
        assert sorted(model["id"] for model in detail["models"]) == sorted(model_ids)
        assert (await list_trash(client, alice))["items"] == []
        assert await trashed_ids(database, [project_id, *model_ids]) == set()

    async def test_seed_body_with_item_id(self, client: httpx.AsyncClient, alice: User) -> None:
        project_id = await create_project(client, alice, "alpha")
        await trash_project(client, alice, "alpha")
        body = ok(await client.post(TRASH, json={"itemId": project_id, "type": "project"}, headers=alice.headers))
        assert body["restoredModels"] == 0
        ok(await client.get(f"/api/projects/{project_id}", headers=alice.headers))

    async def test_models_trashed_before_the_project_stay_trashed(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        project_id, (early, late) = await project_with_models(client, database, alice, "alpha", ["early", "late"])
        await trash_model(database, alice, early)
        assert await trash_project(client, alice, "alpha") == 1
        body = ok(await client.post(TRASH, json={"id": project_id, "type": "project"}, headers=alice.headers))
        assert body["restoredModels"] == 1
        detail = ok(await client.get(f"/api/projects/{alice.username}/alpha", headers=alice.headers))
        assert [model["id"] for model in detail["models"]] == [late]
        assert [item["id"] for item in (await list_trash(client, alice))["items"]] == [early]
        assert await trashed_ids(database, [project_id, early, late]) == {early}

    async def test_model_in_trashed_project_is_conflict(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        _, (model_id,) = await project_with_models(client, database, alice, "alpha", ["m1"])
        await trash_model(database, alice, model_id)
        await trash_project(client, alice, "alpha")
        response = await client.post(TRASH, json={"id": model_id, "type": "model"}, headers=alice.headers)
        assert_error(response, 409, "CONFLICT")
        assert await trashed_ids(database, [model_id]) == {model_id}

    async def test_model_restores_once_its_project_is_back(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        project_id, (model_id,) = await project_with_models(client, database, alice, "alpha", ["m1"])
        await trash_model(database, alice, model_id)
        await trash_project(client, alice, "alpha")
        ok(await client.post(TRASH, json={"id": project_id, "type": "project"}, headers=alice.headers))
        body = ok(await client.post(TRASH, json={"id": model_id, "type": "model"}, headers=alice.headers))
        assert body["restoredModels"] == 0
        assert body["slug"] == "m1"
        detail = ok(await client.get(f"/api/projects/{alice.username}/alpha", headers=alice.headers))
        assert [model["id"] for model in detail["models"]] == [model_id]

    async def test_taken_project_slug_gets_a_suffix(self, client: httpx.AsyncClient, alice: User) -> None:
        old_id = await create_project(client, alice, "alpha")
        await trash_project(client, alice, "alpha")
        new_id = await create_project(client, alice, "alpha")
        body = ok(await client.post(TRASH, json={"id": old_id, "type": "project"}, headers=alice.headers))
        assert body["slug"] == body["data"]["slug"] == "alpha-2"
        restored = ok(await client.get(f"/api/projects/{alice.username}/alpha-2", headers=alice.headers))
        assert restored["project"]["id"] == old_id
        live = ok(await client.get(f"/api/projects/{alice.username}/alpha", headers=alice.headers))
        assert live["project"]["id"] == new_id

    async def test_suffix_skips_taken_suffixes(self, client: httpx.AsyncClient, alice: User) -> None:
        old_id = await create_project(client, alice, "alpha")
        await trash_project(client, alice, "alpha")
        await create_project(client, alice, "alpha")
        await create_project(client, alice, "alpha-2")
        body = ok(await client.post(TRASH, json={"id": old_id, "type": "project"}, headers=alice.headers))
        assert body["slug"] == "alpha-3"

    async def test_taken_model_slug_gets_a_suffix(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        project_id, (old_id,) = await project_with_models(client, database, alice, "alpha", ["m1"])
        await trash_model(database, alice, old_id)
        new_id = await create_model(database, alice, project_id, "m1")
        body = ok(await client.post(TRASH, json={"id": old_id, "type": "model"}, headers=alice.headers))
        assert body["slug"] == "m1-2"
        detail = ok(await client.get(f"/api/projects/{alice.username}/alpha", headers=alice.headers))
        assert {model["model"]: model["id"] for model in detail["models"]} == {"m1": new_id, "m1-2": old_id}

    async def test_unknown_id_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.post(
            TRASH, json={"id": "project_doesnotexist", "type": "project"}, headers=alice.headers
        )
        assert_error(response, 404, "NOT_FOUND")

    async def test_live_item_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        project_id = await create_project(client, alice, "alpha")
        response = await client.post(TRASH, json={"id": project_id, "type": "project"}, headers=alice.headers)
        assert_error(response, 404, "NOT_FOUND")

    async def test_wrong_type_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        project_id = await create_project(client, alice, "alpha")
        await trash_project(client, alice, "alpha")
        response = await client.post(TRASH, json={"id": project_id, "type": "model"}, headers=alice.headers)
        assert_error(response, 404, "NOT_FOUND")

    async def test_other_account_gets_404(self, client: httpx.AsyncClient, alice: User, bob: User) -> None:
        project_id = await create_project(client, alice, "secret")
        await trash_project(client, alice, "secret")
        response = await client.post(TRASH, json={"id": project_id, "type": "project"}, headers=bob.headers)
        assert_error(response, 404, "NOT_FOUND")
        assert [item["id"] for item in (await list_trash(client, alice))["items"]] == [project_id]

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"type": "project"},
            {"id": "project_x"},
            {"id": "project_x", "type": "deployment"},
            {"id": "", "type": "project"},
        ],
        ids=str,
    )
    async def test_invalid_body_is_validation_error(
        self, client: httpx.AsyncClient, alice: User, body: dict[str, Any]
    ) -> None:
        assert_error(await client.post(TRASH, json=body, headers=alice.headers), 422, "VALIDATION_ERROR")

    async def test_unknown_dataset_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.post(TRASH, json={"id": "dataset_x", "type": "dataset"}, headers=alice.headers)
        assert_error(response, 404, "NOT_FOUND")


class TestEmptyTrash:
    async def test_deletes_everything_for_good(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        gone_id, gone_models = await project_with_models(client, database, alice, "gone", ["m1", "m2"])
        live_id, (live_model, trashed_model) = await project_with_models(client, database, alice, "alive", ["a", "b"])
        await trash_project(client, alice, "gone")
        await trash_model(database, alice, trashed_model)
        body = ok(await client.post(f"{TRASH}/empty", headers=alice.headers))
        assert body["deletedCount"] == body["data"]["deletedCount"] == 2
        assert body["cascadedModels"] == 2
        assert (await list_trash(client, alice))["items"] == []
        every_id = [gone_id, *gone_models, live_id, live_model, trashed_model]
        assert await existing_ids(database, every_id) == {live_id, live_model}
        detail = ok(await client.get(f"/api/projects/{alice.username}/alive", headers=alice.headers))
        assert [model["id"] for model in detail["models"]] == [live_model]

    async def test_counts_every_listed_item(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        project_id, (early, late) = await project_with_models(client, database, alice, "alpha", ["early", "late"])
        await trash_model(database, alice, early)
        await trash_project(client, alice, "alpha")
        listed = await list_trash(client, alice)
        assert listed["total"] == 2
        body = ok(await client.post(f"{TRASH}/empty", headers=alice.headers))
        assert body["deletedCount"] == listed["total"]
        assert body["cascadedModels"] == 1
        assert await existing_ids(database, [project_id, early, late]) == set()

    async def test_empty_trash_deletes_nothing(self, client: httpx.AsyncClient, alice: User) -> None:
        live_id = await create_project(client, alice, "alive")
        body = ok(await client.post(f"{TRASH}/empty", headers=alice.headers))
        assert body["deletedCount"] == 0
        ok(await client.get(f"/api/projects/{live_id}", headers=alice.headers))

    async def test_other_accounts_trash_is_untouched(
        self, client: httpx.AsyncClient, database: Database, alice: User, bob: User
    ) -> None:
        alice_project = await create_project(client, alice, "mine")
        await trash_project(client, alice, "mine")
        body = ok(await client.post(f"{TRASH}/empty", headers=bob.headers))
        assert body["deletedCount"] == 0
        assert await trashed_ids(database, [alice_project]) == {alice_project}


class TestDeleteTrash:
    async def test_deletes_one_item_and_its_models(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        gone_id, gone_models = await project_with_models(client, database, alice, "gone", ["m1", "m2"])
        kept_id = await create_project(client, alice, "kept")
        await trash_project(client, alice, "gone")
        await trash_project(client, alice, "kept")
        body = ok(await delete_trash(client, alice, {"id": gone_id, "type": "project"}))
        assert body["deletedCount"] == body["data"]["deletedCount"] == 1
        assert body["cascadedModels"] == body["data"]["cascadedModels"] == 2
        assert await existing_ids(database, [gone_id, *gone_models, kept_id]) == {kept_id}
        assert [item["id"] for item in (await list_trash(client, alice))["items"]] == [kept_id]

    async def test_project_takes_its_separately_trashed_models(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        project_id, (early, late) = await project_with_models(client, database, alice, "alpha", ["early", "late"])
        await trash_model(database, alice, early)
        await trash_project(client, alice, "alpha")
        body = ok(await delete_trash(client, alice, {"id": project_id, "type": "project"}))
        # Both trash entries (the project and the model trashed before it) are gone; one model went with it.
        assert (body["deletedCount"], body["cascadedModels"]) == (2, 1)
        assert await existing_ids(database, [project_id, early, late]) == set()
        assert (await list_trash(client, alice))["items"] == []

    async def test_deletes_one_model(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        project_id, (gone, kept) = await project_with_models(client, database, alice, "alpha", ["gone", "kept"])
        await trash_model(database, alice, gone)
        body = ok(await delete_trash(client, alice, {"id": gone, "type": "model"}))
        assert (body["deletedCount"], body["cascadedModels"]) == (1, 0)
        assert await existing_ids(database, [project_id, gone, kept]) == {project_id, kept}

    async def test_seed_body_with_item_id(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        project_id = await create_project(client, alice, "gone")
        await trash_project(client, alice, "gone")
        body = ok(await delete_trash(client, alice, {"itemId": project_id, "type": "project"}))
        assert body["deletedCount"] == 1
        assert await existing_ids(database, [project_id]) == set()

    async def test_all_empties_the_trash(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        first_id, first_models = await project_with_models(client, database, alice, "first", ["m1"])
        second_id = await create_project(client, alice, "second")
        live_id = await create_project(client, alice, "alive")
        await trash_project(client, alice, "first")
        await trash_project(client, alice, "second")
        body = ok(await delete_trash(client, alice, {"all": True}))
        assert (body["deletedCount"], body["cascadedModels"]) == (2, 1)
        assert await existing_ids(database, [first_id, *first_models, second_id, live_id]) == {live_id}
        assert (await list_trash(client, alice))["total"] == 0

    async def test_live_item_is_404(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        project_id = await create_project(client, alice, "alive")
        assert_error(await delete_trash(client, alice, {"id": project_id, "type": "project"}), 404, "NOT_FOUND")
        assert await existing_ids(database, [project_id]) == {project_id}

    async def test_other_account_gets_404(
        self, client: httpx.AsyncClient, database: Database, alice: User, bob: User
    ) -> None:
        project_id = await create_project(client, alice, "secret")
        await trash_project(client, alice, "secret")
        assert_error(await delete_trash(client, bob, {"id": project_id, "type": "project"}), 404, "NOT_FOUND")
        assert await trashed_ids(database, [project_id]) == {project_id}

    async def test_all_leaves_other_accounts_trash(
        self, client: httpx.AsyncClient, database: Database, alice: User, bob: User
    ) -> None:
        project_id = await create_project(client, alice, "secret")
        await trash_project(client, alice, "secret")
        assert ok(await delete_trash(client, bob, {"all": True}))["deletedCount"] == 0
        assert await trashed_ids(database, [project_id]) == {project_id}

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"all": False},
            {"id": "project_x", "type": "project", "all": True},
            {"id": "project_x"},
            {"type": "project"},
            {"id": "project_x", "type": "deployment"},
        ],
        ids=str,
    )
    async def test_invalid_body_is_validation_error(
        self, client: httpx.AsyncClient, alice: User, body: dict[str, Any]
    ) -> None:
        assert_error(await delete_trash(client, alice, body), 422, "VALIDATION_ERROR")

    async def test_missing_body_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_error(await client.delete(TRASH, headers=alice.headers), 422, "VALIDATION_ERROR")

    async def test_invalid_body_deletes_nothing(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        project_id = await create_project(client, alice, "kept")
        await trash_project(client, alice, "kept")
        body = {"id": project_id, "type": "project", "all": True}
        assert_error(await delete_trash(client, alice, body), 422, "VALIDATION_ERROR")
        assert await trashed_ids(database, [project_id]) == {project_id}


class TestTrashAuth:
    ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", TRASH, None),
        ("POST", TRASH, {"id": "project_x", "type": "project"}),
        ("POST", f"{TRASH}/empty", None),
        ("DELETE", TRASH, {"all": True}),
    ]

    @pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=lambda value: str(value))
    async def test_missing_key_is_401(
        self, client: httpx.AsyncClient, alice: User, method: str, path: str, body: dict[str, Any] | None
    ) -> None:
        assert_error(await client.request(method, path, json=body), 401, "UNAUTHORIZED")

    @pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=lambda value: str(value))
    async def test_key_without_trash_scope_is_403(
        self,
        client: httpx.AsyncClient,
        database: Database,
        alice: User,
        method: str,
        path: str,
        body: dict[str, Any] | None,
    ) -> None:
        project_id = await create_project(client, alice, "kept")
        await trash_project(client, alice, "kept")
        key = await add_key(database, alice, scopes=["projects"])
        response = await client.request(method, path, json=body, headers={"x-api-key": key})
        assert_error(response, 403, "FORBIDDEN")
        assert await trashed_ids(database, [project_id]) == {project_id}

    async def test_trash_scope_is_enough(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        key = await add_key(database, alice, scopes=["trash"])
        ok(await client.get(TRASH, headers={"x-api-key": key}))
