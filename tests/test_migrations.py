"""Migrations on a fresh database of each backend: up, all the way down, up again, and matching the ORM."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from tests.fixtures.database import BACKENDS, dispose_database_url, new_database_url
from yolostack.core import db
from yolostack.core.db import Database
from yolostack.tables import Table

ORM_TABLES = set(Table.metadata.tables)


@pytest.fixture(params=BACKENDS)
async def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of its own, never migrated."""
    backend: str = request.param
    url = await new_database_url(backend, tmp_path)
    yield url
    await dispose_database_url(backend, url)


async def inspect_database(url: str, look: Any) -> Any:
    database = Database(url)
    try:
        async with database.engine.connect() as connection:
            return await connection.run_sync(look)
    finally:
        await database.dispose()


def table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Table.metadata))


async def migrate(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(db.upgrade, url, revision)


async def revert(url: str, revision: str = "base") -> None:
    await asyncio.to_thread(db.downgrade, url, revision)


class TestUpgrade:
    async def test_creates_every_table(self, fresh_url: str) -> None:
        await migrate(fresh_url)
        assert await inspect_database(fresh_url, table_names) == ORM_TABLES | {"alembic_version"}

    async def test_schema_matches_the_tables(self, fresh_url: str) -> None:
        await migrate(fresh_url)
        assert await inspect_database(fresh_url, schema_differences) == []

    async def test_records_the_head_revision(self, fresh_url: str) -> None:
        await migrate(fresh_url)

        def versions(connection: Connection) -> list[str]:
            return [row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))]

        head = ScriptDirectory.from_config(db.alembic_config(fresh_url)).get_current_head()
        assert await inspect_database(fresh_url, versions) == [head]

    async def test_second_run_changes_nothing(self, fresh_url: str) -> None:
        await migrate(fresh_url)
        await migrate(fresh_url)
        assert await inspect_database(fresh_url, schema_differences) == []


class TestDowngrade:
    async def test_to_base_drops_every_table(self, fresh_url: str) -> None:
        await migrate(fresh_url)
        await revert(fresh_url)
        assert await inspect_database(fresh_url, table_names) <= {"alembic_version"}

    async def test_upgrade_after_downgrade_restores_the_schema(self, fresh_url: str) -> None:
        await migrate(fresh_url)
        await revert(fresh_url)
        await migrate(fresh_url)
        assert await inspect_database(fresh_url, table_names) == ORM_TABLES | {"alembic_version"}
        assert await inspect_database(fresh_url, schema_differences) == []
