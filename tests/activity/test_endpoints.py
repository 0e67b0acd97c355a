from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from tests.fixtures.assertions import assert_error, ok
from tests.fixtures.factories import User, add_key
from tests.fixtures.trash import TRASH, create_project, trash_project
from yolostack.activity.service import activity as activity_service
from yolostack.core.db import Database
from yolostack.tables import ActivityEvent

ACTIVITY = "/api/activity"


async def list_activity(client: httpx.AsyncClient, user: User, **params: str | int) -> dict[str, Any]:
    return ok(await client.get(ACTIVITY, params=params, headers=user.headers))


async def event_ids(client: httpx.AsyncClient, user: User, **params: str | int) -> list[str]:
    return [event["id"] for event in (await list_activity(client, user, limit=100, **params))["data"]]


async def archive_all(client: httpx.AsyncClient, user: User) -> None:
    """Start from an empty list: archive what creating the account and its key recorded."""
    ok(await client.post(f"{ACTIVITY}/archive", json={"all": True}, headers=user.headers))
    assert await event_ids(client, user) == []


async def set_created_at(database: Database, times: dict[str, datetime]) -> None:
    async with database.engine.begin() as connection:
        for event_id, at in times.items():
            await connection.execute(update(ActivityEvent).where(ActivityEvent.id == event_id).values(created_at=at))


async def stamped_events(client: httpx.AsyncClient, database: Database, user: User) -> dict[str, str]:
    """Exactly three events of ``user``, dated 1 Jan 00:00, 2 Jan 12:00 and 3 Jan 00:00 2026 (UTC)."""
    await archive_all(client, user)
    for slug in ("first", "second", "third"):
        await create_project(client, user, slug)
    events = (await list_activity(client, user))["data"]
    by_name = {event["resourceName"]: event["id"] for event in events}
    await set_created_at(
        database,
        {
            by_name["first"]: datetime(2026, 1, 1, tzinfo=UTC),
            by_name["second"]: datetime(2026, 1, 2, 12, tzinfo=UTC),
            by_name["third"]: datetime(2026, 1, 3, tzinfo=UTC),
        },
    )
    return by_name


async def record(database: Database, user: User, action: str, *, name: str | None, message: str) -> str:
    async with database.sessionmaker() as session, session.begin():
        event = await activity_service.record(
            session, user.account.id, action, resource_type="test", resource_name=name, message=message
        )
    return event.id


class TestListActivity:
    async def test_mutations_are_recorded_newest_first(self, client: httpx.AsyncClient, alice: User) -> None:
        before = [event["action"] for event in (await list_activity(client, alice))["data"]]
        assert "api_key.created" in before  # the fixture's key
        project_id = await create_project(client, alice, "alpha")
        ok(await client.patch(f"/api/projects/{alice.username}/alpha", json={"name": "beta"}, headers=alice.headers))
        await trash_project(client, alice, "beta")
        ok(await client.post(TRASH, json={"id": project_id, "type": "project"}, headers=alice.headers))
        await trash_project(client, alice, "beta")
        deleted = await client.request(
            "DELETE", TRASH, json={"id": project_id, "type": "project"}, headers=alice.headers
        )
        ok(deleted)
        created = ok(await client.post("/api/api-keys", json={"name": "ci"}, headers=alice.headers), 201)
        ok(await client.delete(f"/api/api-keys/{created['id']}", headers=alice.headers))
        ok(await client.post(f"{TRASH}/empty", headers=alice.headers))

        events = (await list_activity(client, alice))["data"]
        assert [event["action"] for event in events] == [
            "trash.emptied",
            "api_key.revoked",
            "api_key.created",
            "project.deleted",
            "project.trashed",
            "project.restored",
            "project.trashed",
            "project.updated",
            "project.created",
            *before,
        ]
        project_events = [event for event in events if event["resourceType"] == "project"]
        assert {event["resourceId"] for event in project_events} == {project_id}
        times = [datetime.fromisoformat(event["createdAt"]) for event in events]
        assert times == sorted(times, reverse=True)

    async def test_event_fields(self, client: httpx.AsyncClient, alice: User) -> None:
        await archive_all(client, alice)
        project_id = await create_project(client, alice, "alpha", name="Alpha")
        body = await list_activity(client, alice)
        event = body["data"][0]
        assert event["id"].startswith("event_")
        assert event["action"] == "project.created"
        assert (event["resourceType"], event["resourceId"], event["resourceName"]) == ("project", project_id, "Alpha")
        assert "Alpha" in event["message"]
        assert isinstance(event["details"], dict)
        assert datetime.fromisoformat(event["createdAt"]).tzinfo is not None
        assert event["seenAt"] is None
        assert event["archivedAt"] is None
        assert body["events"] == body["data"]
        assert body["total"] == body["meta"]["total"] == 1

    async def test_trash_event_details(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        await create_project(client, alice, "alpha")
        await trash_project(client, alice, "alpha")
        (trashed,) = [
            event for event in (await list_activity(client, alice))["data"] if event["action"] == "project.trashed"
        ]
        assert trashed["details"] == {"cascaded": {"model": 0}}
        ok(await client.post(f"{TRASH}/empty", headers=alice.headers))
        emptied = (await list_activity(client, alice))["data"][0]
        assert emptied["action"] == "trash.emptied"
        assert emptied["details"]["deleted"] == 1

    async def test_pagination(self, client: httpx.AsyncClient, alice: User) -> None:
        await archive_all(client, alice)
        for index in range(5):
            await create_project(client, alice, f"p{index}")
        pages = [await list_activity(client, alice, page=page, limit=2) for page in (1, 2, 3, 4)]
        assert [len(page["data"]) for page in pages] == [2, 2, 1, 0]
        for number, page in enumerate(pages, start=1):
            assert page["meta"] == {"page": number, "limit": 2, "total": 5}
            assert page["total"] == 5
        paged = [event["id"] for page in pages for event in page["data"]]
        assert paged == await event_ids(client, alice)

    @pytest.mark.parametrize("params", [{"page": 0}, {"limit": 0}, {"limit": 101}], ids=str)
    async def test_invalid_paging_is_validation_error(
        self, client: httpx.AsyncClient, alice: User, params: dict[str, int]
    ) -> None:
        assert_error(await client.get(ACTIVITY, params=params, headers=alice.headers), 422, "VALIDATION_ERROR")

    async def test_search_matches_message(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        wanted = await record(database, alice, "test.one", name="first", message="The Zebra crossed")
        await record(database, alice, "test.two", name="second", message="Nothing to see")
        assert await event_ids(client, alice, search="zebra") == [wanted]

    async def test_search_matches_action(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        wanted = await record(database, alice, "zebra.crossed", name="first", message="One")
        await record(database, alice, "test.two", name="second", message="Two")
        assert await event_ids(client, alice, search="ZEBRA.cross") == [wanted]

    async def test_search_matches_resource_name(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        wanted = await record(database, alice, "test.one", name="Zebra", message="One")
        await record(database, alice, "test.two", name="Horse", message="Two")
        assert await event_ids(client, alice, search="zeb") == [wanted]

    async def test_search_without_match_is_empty(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_project(client, alice, "alpha")
        body = await list_activity(client, alice, search="no-such-thing")
        assert body["data"] == []
        assert body["meta"]["total"] == 0

    @pytest.mark.parametrize("wildcard", ["%", "_"])
    async def test_search_wildcards_are_literal(
        self, client: httpx.AsyncClient, database: Database, alice: User, wildcard: str
    ) -> None:
        await archive_all(client, alice)
        wanted = await record(database, alice, "test.one", name=None, message=f"100{wildcard} done")
        await record(database, alice, "test.two", name=None, message="half done")
        assert await event_ids(client, alice, search=wildcard) == [wanted]

    async def test_date_range_is_inclusive(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        by_name = await stamped_events(client, database, alice)
        ids = await event_ids(client, alice, startDate="2026-01-02T12:00:00Z", endDate="2026-01-03T00:00:00Z")
        assert ids == [by_name["third"], by_name["second"]]

    async def test_start_date_alone(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        by_name = await stamped_events(client, database, alice)
        assert await event_ids(client, alice, startDate="2026-01-02T00:00:00Z") == [by_name["third"], by_name["second"]]

    async def test_end_date_alone(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        by_name = await stamped_events(client, database, alice)
        assert await event_ids(client, alice, endDate="2026-01-02T11:59:59Z") == [by_name["first"]]

    async def test_date_only_end_date_covers_that_day(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        by_name = await stamped_events(client, database, alice)
        ids = await event_ids(client, alice, startDate="2026-01-02", endDate="2026-01-02")
        assert ids == [by_name["second"]]

    async def test_offsets_are_honoured(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        by_name = await stamped_events(client, database, alice)
        # 2026-01-02T13:00+02:00 is 11:00 UTC, before the second event.
        assert await event_ids(client, alice, endDate="2026-01-02T13:00:00+02:00") == [by_name["first"]]

    async def test_date_without_offset_is_utc(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        by_name = await stamped_events(client, database, alice)
        ids = await event_ids(client, alice, startDate="2026-01-02T12:00:00Z", endDate="2026-01-02T12:00:00")
        assert ids == [by_name["second"]]

    async def test_start_after_end_is_validation_error(self, client: httpx.AsyncClient, alice: User) -> None:
        params = {"startDate": "2026-01-03T00:00:00Z", "endDate": "2026-01-02T00:00:00Z"}
        response = await client.get(ACTIVITY, params=params, headers=alice.headers)
        assert_error(response, 422, "VALIDATION_ERROR")

    @pytest.mark.parametrize("params", [{"startDate": "yesterday"}, {"endDate": "2026-13-01"}], ids=str)
    async def test_malformed_date_is_validation_error(
        self, client: httpx.AsyncClient, alice: User, params: dict[str, str]
    ) -> None:
        body = assert_error(await client.get(ACTIVITY, params=params, headers=alice.headers), 422, "VALIDATION_ERROR")
        (field,) = params
        assert field in body["error"]["message"]

    async def test_unseen_count(self, client: httpx.AsyncClient, alice: User) -> None:
        await archive_all(client, alice)
        for slug in ("one", "two", "three"):
            await create_project(client, alice, slug)
        assert (await list_activity(client, alice))["unseenCount"] == 3
        first, *_ = await event_ids(client, alice)
        ok(await client.post(f"{ACTIVITY}/mark-seen", json={"eventIds": [first]}, headers=alice.headers))
        assert (await list_activity(client, alice))["unseenCount"] == 2
        ok(await client.post(f"{ACTIVITY}/archive", json={"eventIds": [first]}, headers=alice.headers))
        assert (await list_activity(client, alice))["unseenCount"] == 2

    async def test_archived_unseen_events_are_not_counted(self, client: httpx.AsyncClient, alice: User) -> None:
        await create_project(client, alice, "one")
        first, *rest = await event_ids(client, alice)
        ok(await client.post(f"{ACTIVITY}/archive", json={"eventIds": [first]}, headers=alice.headers))
        assert (await list_activity(client, alice))["unseenCount"] == len(rest)

    async def test_archived_lists_only_archived(self, client: httpx.AsyncClient, alice: User) -> None:
        await archive_all(client, alice)
        for slug in ("one", "two"):
            await create_project(client, alice, slug)
        first, second = await event_ids(client, alice)
        ok(await client.post(f"{ACTIVITY}/archive", json={"eventIds": [first]}, headers=alice.headers))
        assert await event_ids(client, alice) == [second]
        archived = await list_activity(client, alice, archived="true")
        assert archived["data"][0]["id"] == first
        assert all(event["archivedAt"] is not None for event in archived["data"])
        assert second not in [event["id"] for event in archived["data"]]
        assert await event_ids(client, alice, archived="false") == [second]

    async def test_other_accounts_events_are_not_listed(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        await create_project(client, alice, "secret")
        mine = await event_ids(client, bob)
        theirs = await event_ids(client, alice)
        assert set(mine).isdisjoint(theirs)
        body = await list_activity(client, bob, search="secret")
        assert body["data"] == []
        assert (await list_activity(client, bob))["unseenCount"] == len(mine)


class _Marking:
    """Shared scenarios for the two routes that stamp events: mark-seen and archive."""

    route: str
    field: str

    async def stamped(self, database: Database, user: User) -> dict[str, bool]:
        """Every event of ``user``: whether this route's timestamp is set."""
        async with database.sessionmaker() as session:
            column = getattr(ActivityEvent, self.field)
            rows = await session.execute(
                select(ActivityEvent.id, column.is_not(None)).where(ActivityEvent.account_id == user.account.id)
            )
            return {event_id: bool(is_set) for event_id, is_set in rows.all()}

    async def post(self, client: httpx.AsyncClient, user: User, body: dict[str, Any] | None) -> dict[str, Any]:
        return ok(await client.post(f"{ACTIVITY}/{self.route}", json=body, headers=user.headers))

    async def events(self, client: httpx.AsyncClient, user: User) -> list[str]:
        """At least three events of ``user``, newest first."""
        for slug in ("one", "two"):
            await create_project(client, user, slug)
        ids = await event_ids(client, user)
        assert len(ids) >= 3
        return ids

    @pytest.mark.parametrize("key", ["eventIds", "ids"])
    async def test_marks_the_given_events(
        self, client: httpx.AsyncClient, database: Database, alice: User, key: str
    ) -> None:
        events = await self.events(client, alice)
        chosen = {events[0], events[-1]}
        body = await self.post(client, alice, {key: sorted(chosen)})
        assert body["updated"] == body["data"]["updated"] == 2
        assert await self.stamped(database, alice) == {event: event in chosen for event in events}

    async def test_no_body_marks_all(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        events = await self.events(client, alice)
        body = ok(await client.post(f"{ACTIVITY}/{self.route}", headers=alice.headers))
        assert body["updated"] == len(events)
        assert await self.stamped(database, alice) == dict.fromkeys(events, True)

    @pytest.mark.parametrize("body", [{"all": True}, {}], ids=str)
    async def test_all_marks_all(
        self, client: httpx.AsyncClient, database: Database, alice: User, body: dict[str, Any]
    ) -> None:
        events = await self.events(client, alice)
        assert (await self.post(client, alice, body))["updated"] == len(events)
        assert await self.stamped(database, alice) == dict.fromkeys(events, True)

    async def test_empty_list_marks_nothing(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        events = await self.events(client, alice)
        assert (await self.post(client, alice, {"eventIds": []}))["updated"] == 0
        assert await self.stamped(database, alice) == dict.fromkeys(events, False)

    async def test_marked_events_are_not_counted_twice(self, client: httpx.AsyncClient, alice: User) -> None:
        first, *rest = await self.events(client, alice)
        assert (await self.post(client, alice, {"eventIds": [first]}))["updated"] == 1
        assert (await self.post(client, alice, {"eventIds": [first]}))["updated"] == 0
        assert (await self.post(client, alice, None))["updated"] == len(rest)

    async def test_unknown_ids_are_ignored(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        first, *rest = await self.events(client, alice)
        assert (await self.post(client, alice, {"eventIds": ["event_doesnotexist", first]}))["updated"] == 1
        assert await self.stamped(database, alice) == {first: True, **dict.fromkeys(rest, False)}

    async def test_other_accounts_events_are_not_touched(
        self, client: httpx.AsyncClient, database: Database, alice: User, bob: User
    ) -> None:
        events = await self.events(client, alice)
        bobs = await event_ids(client, bob)
        assert (await self.post(client, bob, {"eventIds": events}))["updated"] == 0
        assert await self.stamped(database, alice) == dict.fromkeys(events, False)
        assert (await self.post(client, bob, {"all": True}))["updated"] == len(bobs)
        assert await self.stamped(database, alice) == dict.fromkeys(events, False)
        assert await self.stamped(database, bob) == dict.fromkeys(bobs, True)

    @pytest.mark.parametrize("body", [{"eventIds": "event_x"}, {"ids": [1, 2]}, {"all": "maybe"}], ids=str)
    async def test_invalid_body_is_validation_error(
        self, client: httpx.AsyncClient, database: Database, alice: User, body: dict[str, Any]
    ) -> None:
        events = await self.events(client, alice)
        response = await client.post(f"{ACTIVITY}/{self.route}", json=body, headers=alice.headers)
        assert_error(response, 422, "VALIDATION_ERROR")
        assert await self.stamped(database, alice) == dict.fromkeys(events, False)


class TestMarkActivitySeen(_Marking):
    route = "mark-seen"
    field = "seen_at"

    async def test_seen_events_stay_listed(self, client: httpx.AsyncClient, alice: User) -> None:
        events = await self.events(client, alice)
        await self.post(client, alice, None)
        body = await list_activity(client, alice, limit=100)
        assert [event["id"] for event in body["data"]] == events
        assert all(event["seenAt"] is not None for event in body["data"])
        assert body["unseenCount"] == 0


class TestArchiveActivity(_Marking):
    route = "archive"
    field = "archived_at"

    async def test_archived_events_leave_the_list(self, client: httpx.AsyncClient, alice: User) -> None:
        first, second, *rest = await self.events(client, alice)
        await self.post(client, alice, {"eventIds": [second]})
        assert await event_ids(client, alice) == [first, *rest]
        assert await event_ids(client, alice, archived="true") == [second]


class TestActivityAuth:
    ROUTES = [("GET", ACTIVITY), ("POST", f"{ACTIVITY}/mark-seen"), ("POST", f"{ACTIVITY}/archive")]

    @pytest.mark.parametrize(("method", "path"), ROUTES, ids=str)
    async def test_missing_key_is_401(self, client: httpx.AsyncClient, alice: User, method: str, path: str) -> None:
        assert_error(await client.request(method, path), 401, "UNAUTHORIZED")

    @pytest.mark.parametrize(("method", "path"), ROUTES, ids=str)
    async def test_key_without_activity_scope_is_403(
        self, client: httpx.AsyncClient, database: Database, alice: User, method: str, path: str
    ) -> None:
        key = await add_key(database, alice, scopes=["projects"])
        before = (await list_activity(client, alice, limit=100))["data"]
        assert_error(await client.request(method, path, headers={"x-api-key": key}), 403, "FORBIDDEN")
        after = (await list_activity(client, alice, limit=100))["data"]
        assert after == before
        assert all(event["seenAt"] is None and event["archivedAt"] is None for event in after)

    async def test_activity_scope_is_enough(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        key = await add_key(database, alice, scopes=["activity"])
        ok(await client.get(ACTIVITY, headers={"x-api-key": key}))
        ok(await client.post(f"{ACTIVITY}/mark-seen", headers={"x-api-key": key}))
