import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fixtures.assertions import ok
from tests.fixtures.factories import User, create_model
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
from yolostack.tables import Model, Project
from yolostack.trash.registry import KINDS, PurgeHook
from yolostack.trash.service import trash as trash_service
from yolostack.trash.tasks import purge_expired_trash
from yolostack.worker.periodic import PeriodicTask


@dataclass
class Trashed:
    """One account's trash: an expired project (with models), a fresh one, an expired lone model, live rows."""

    old_project: str
    old_models: list[str]
    new_project: str
    new_models: list[str]
    old_model: str
    live_project: str
    live_model: str

    @property
    def expired(self) -> list[str]:
        return [self.old_project, *self.old_models, self.old_model]

    @property
    def kept(self) -> list[str]:
        return [self.new_project, *self.new_models, self.live_project, self.live_model]


async def fill_trash(client: httpx.AsyncClient, database: Database, user: User) -> Trashed:
    old_project = await create_project(client, user, "old")
    old_models = [await create_model(database, user, old_project, slug) for slug in ("o1", "o2")]
    new_project = await create_project(client, user, "new")
    new_models = [await create_model(database, user, new_project, "n1")]
    live_project = await create_project(client, user, "live")
    live_model = await create_model(database, user, live_project, "l1")
    old_model = await create_model(database, user, live_project, "l2")
    await trash_project(client, user, "old")
    await trash_project(client, user, "new")
    await trash_model(database, user, old_model)
    await backdate_trash(database, old_project, days=31)
    await backdate_trash(database, old_model, days=30.01)
    await backdate_trash(database, new_project, days=29.9)
    return Trashed(old_project, old_models, new_project, new_models, old_model, live_project, live_model)


@dataclass
class HookCalls:
    """What the purge hooks saw: per kind, the ids they were given and which of them still had rows."""

    given: dict[str, list[str]] = field(default_factory=dict)
    still_there: dict[str, list[str]] = field(default_factory=dict)


@pytest.fixture
def hook_calls() -> Iterator[HookCalls]:
    calls = HookCalls()

    def hook_for(kind: str) -> PurgeHook:
        table = Project if kind == "project" else Model

        async def hook(session: AsyncSession, ids: list[str]) -> None:
            calls.given.setdefault(kind, []).extend(ids)
            rows = await session.scalars(select(table.id).where(table.id.in_(ids)))
            calls.still_there.setdefault(kind, []).extend(rows.all())

        return hook

    hooks = {kind: hook_for(kind) for kind in ("project", "model")}
    for kind, hook in hooks.items():
        KINDS[kind].purge_hooks.append(hook)
    try:
        yield calls
    finally:
        for kind, hook in hooks.items():
            KINDS[kind].purge_hooks.remove(hook)


class TestPurgeExpiredTrash:
    async def test_expired_items_go_with_their_models(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        trashed = await fill_trash(client, database, alice)
        assert await purge_expired_trash(database) == 2
        everything = trashed.expired + trashed.kept
        assert await existing_ids(database, everything) == set(trashed.kept)
        assert await trashed_ids(database, everything) == {trashed.new_project, *trashed.new_models}
        listed = ok(await client.get(TRASH, headers=alice.headers))["items"]
        assert [item["id"] for item in listed] == [trashed.new_project]

    async def test_live_rows_are_untouched(self, client: httpx.AsyncClient, database: Database, alice: User) -> None:
        project_id = await create_project(client, alice, "live")
        model_id = await create_model(database, alice, project_id, "m1")
        assert await purge_expired_trash(database) == 0
        async with database.sessionmaker() as session, session.begin():
            assert await trash_service.purge_expired(session, now=utcnow() + timedelta(days=365)) == 0
        assert await existing_ids(database, [project_id, model_id]) == {project_id, model_id}
        assert await trashed_ids(database, [project_id, model_id]) == set()

    async def test_nothing_expired_purges_nothing(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        project_id = await create_project(client, alice, "fresh")
        model_id = await create_model(database, alice, project_id, "m1")
        await trash_project(client, alice, "fresh")
        assert await purge_expired_trash(database) == 0
        assert await trashed_ids(database, [project_id, model_id]) == {project_id, model_id}

    async def test_now_decides_what_has_expired(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        project_id = await create_project(client, alice, "fresh")
        model_id = await create_model(database, alice, project_id, "m1")
        await trash_project(client, alice, "fresh")
        async with database.sessionmaker() as session, session.begin():
            assert await trash_service.purge_expired(session, now=utcnow() + timedelta(days=29)) == 0
        assert await existing_ids(database, [project_id, model_id]) == {project_id, model_id}
        async with database.sessionmaker() as session, session.begin():
            assert await trash_service.purge_expired(session, now=utcnow() + timedelta(days=31)) == 1
        assert await existing_ids(database, [project_id, model_id]) == set()

    async def test_expired_project_takes_its_separately_trashed_models(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        project_id = await create_project(client, alice, "old")
        early, late = [await create_model(database, alice, project_id, slug) for slug in ("early", "late")]
        await trash_model(database, alice, early)
        await trash_project(client, alice, "old")
        await backdate_trash(database, project_id, days=31)
        # The model trashed on its own went in just now, but it cannot outlive its project.
        assert await purge_expired_trash(database) == 2
        assert await existing_ids(database, [project_id, early, late]) == set()

    async def test_every_account_is_purged(
        self, client: httpx.AsyncClient, database: Database, alice: User, bob: User
    ) -> None:
        ids = []
        for user in (alice, bob):
            project_id = await create_project(client, user, "old")
            await trash_project(client, user, "old")
            await backdate_trash(database, project_id, days=40)
            ids.append(project_id)
        assert await purge_expired_trash(database) == 2
        assert await existing_ids(database, ids) == set()

    async def test_hooks_get_the_ids_before_the_rows_go(
        self, client: httpx.AsyncClient, database: Database, alice: User, hook_calls: HookCalls
    ) -> None:
        trashed = await fill_trash(client, database, alice)
        await purge_expired_trash(database)
        assert sorted(hook_calls.given["project"]) == [trashed.old_project]
        assert sorted(hook_calls.given["model"]) == sorted([*trashed.old_models, trashed.old_model])
        assert {kind: sorted(ids) for kind, ids in hook_calls.still_there.items()} == {
            kind: sorted(ids) for kind, ids in hook_calls.given.items()
        }

    async def test_hooks_run_on_permanent_delete(
        self, client: httpx.AsyncClient, database: Database, alice: User, hook_calls: HookCalls
    ) -> None:
        project_id = await create_project(client, alice, "gone")
        model_id = await create_model(database, alice, project_id, "m1")
        await trash_project(client, alice, "gone")
        body = {"id": project_id, "type": "project"}
        ok(await client.request("DELETE", TRASH, json=body, headers=alice.headers))
        assert hook_calls.given == {"project": [project_id], "model": [model_id]}

    async def test_hooks_are_not_called_for_restore(
        self, client: httpx.AsyncClient, database: Database, alice: User, hook_calls: HookCalls
    ) -> None:
        project_id = await create_project(client, alice, "back")
        await trash_project(client, alice, "back")
        ok(await client.post(TRASH, json={"id": project_id, "type": "project"}, headers=alice.headers))
        assert hook_calls.given == {}

    async def test_failing_hook_keeps_the_rows(
        self, client: httpx.AsyncClient, database: Database, alice: User
    ) -> None:
        project_id = await create_project(client, alice, "old")
        await trash_project(client, alice, "old")
        await backdate_trash(database, project_id, days=40)

        async def failing(session: AsyncSession, ids: list[str]) -> None:
            raise RuntimeError("storage unavailable")

        KINDS["project"].purge_hooks.append(failing)
        try:
            with pytest.raises(RuntimeError):
                await purge_expired_trash(database)
        finally:
            KINDS["project"].purge_hooks.remove(failing)
        assert await trashed_ids(database, [project_id]) == {project_id}


async def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


class TestPeriodicTask:
    async def test_runs_repeatedly(self) -> None:
        calls: list[int] = []

        async def run() -> None:
            calls.append(len(calls))

        task = PeriodicTask("test", 0.01, run)
        task.start()
        try:
            await wait_until(lambda: len(calls) >= 3)
        finally:
            await task.stop()

    async def test_survives_an_exception(self, caplog: pytest.LogCaptureFixture) -> None:
        calls: list[int] = []

        async def run() -> None:
            calls.append(len(calls))
            if len(calls) == 1:
                raise RuntimeError("first round fails")

        task = PeriodicTask("flaky", 0.01, run)
        with caplog.at_level(logging.ERROR, logger="yolostack.worker.periodic"):
            task.start()
            try:
                await wait_until(lambda: len(calls) >= 3)
            finally:
                await task.stop()
        assert any("flaky" in record.getMessage() and record.exc_info for record in caplog.records)

    async def test_stop_ends_the_loop(self) -> None:
        calls: list[int] = []

        async def run() -> None:
            calls.append(len(calls))

        task = PeriodicTask("test", 0.01, run)
        task.start()
        await wait_until(lambda: len(calls) >= 1)
        await task.stop()
        stopped_at = len(calls)
        await asyncio.sleep(0.05)
        assert len(calls) == stopped_at

    async def test_initial_delay_comes_first(self) -> None:
        calls: list[int] = []

        async def run() -> None:
            calls.append(len(calls))

        task = PeriodicTask("test", 0.01, run, initial_delay=60)
        task.start()
        await asyncio.sleep(0.05)
        assert calls == []
        await task.stop()

    async def test_stop_before_start_is_harmless(self) -> None:
        async def run() -> None:
            raise AssertionError("never started")

        await PeriodicTask("test", 0.01, run).stop()
