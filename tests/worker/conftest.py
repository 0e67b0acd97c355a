"""A migrated database with no app (so no worker of the app's own takes the rows a test queues), and an
account to own them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fixtures.database import truncate_all
from tests.fixtures.factories import User, create_user
from yolostack.core.db import Database


@pytest.fixture
async def bare_database(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    try:
        await truncate_all(database)
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def owner(bare_database: Database) -> User:
    return await create_user(bare_database, "owner")
