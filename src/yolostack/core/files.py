"""Files whose rows are deleted in a transaction go only once that transaction has committed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

logger = logging.getLogger(__name__)

_ORPHANS = "orphaned_storage_keys"


class Deleter(Protocol):
    async def delete(self, key: str) -> None: ...


_CALLBACKS = "after_commit_callbacks"


def on_commit(session: AsyncSession, callback: Callable[[], object]) -> None:
    """Run ``callback`` once ``session`` has committed (e.g. wake a worker for the work just queued)."""
    session.info.setdefault(_CALLBACKS, []).append(callback)


def run_commit_callbacks(session: AsyncSession) -> None:
    for callback in session.info.pop(_CALLBACKS, []):
        callback()


def delete_after_commit(session: AsyncSession, keys: list[str]) -> None:
    """Schedule storage keys for deletion once (and only if) ``session`` commits."""
    session.info.setdefault(_ORPHANS, []).extend(keys)


async def delete_orphans(session: AsyncSession, store: Deleter) -> None:
    """Call after a successful commit; a failed delete leaves a stray file, never a missing one."""
    for key in session.info.pop(_ORPHANS, []):
        try:
            await store.delete(key)
        except Exception:
            logger.exception("could not delete %s after commit", key)


def forget_orphans(session: AsyncSession) -> None:
    session.info.pop(_ORPHANS, None)
    session.info.pop(_CALLBACKS, None)
