from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from yolostack.core.repository import Repository
from yolostack.trash.registry import Child, TrashKind


class TrashRepository(Repository):
    """Rows of any trashable table, always scoped to one owner except in the purge job."""

    async def get_live(self, kind: TrashKind, owner_id: str, item_id: str) -> Any | None:
        table = kind.table
        return await self.session.scalar(
            select(table).where(table.id == item_id, kind.owner_column == owner_id, table.deleted_at.is_(None))
        )

    async def get_trashed_root(self, kind: TrashKind, owner_id: str, item_id: str) -> Any | None:
        table = kind.table
        return await self.session.scalar(
            select(table).where(
                table.id == item_id,
                kind.owner_column == owner_id,
                table.deleted_at.is_not(None),
                table.trash_root_id.is_(None),
            )
        )

    async def get_any(self, kind: TrashKind, item_id: str) -> Any | None:
        return await self.session.get(kind.table, item_id)

    async def list_roots(self, kind: TrashKind, owner_id: str) -> Sequence[Any]:
        table = kind.table
        statement = select(table).where(
            kind.owner_column == owner_id, table.deleted_at.is_not(None), table.trash_root_id.is_(None)
        )
        return (await self.session.scalars(statement)).all()

    async def expired_roots(self, kind: TrashKind, before: datetime) -> Sequence[Any]:
        table = kind.table
        statement = select(table).where(table.deleted_at < before, table.trash_root_id.is_(None))
        return (await self.session.scalars(statement)).all()

    async def live_children(self, child: Child, parent_id: str) -> Sequence[Any]:
        table = child.table
        statement = select(table).where(child.parent_column == parent_id, table.deleted_at.is_(None))
        return (await self.session.scalars(statement)).all()

    async def child_ids(self, child: Child, parent_ids: list[str]) -> list[str]:
        statement = select(child.table.id).where(child.parent_column.in_(parent_ids))
        return list((await self.session.scalars(statement)).all())

    async def count_trashed_root_children(self, child: Child, parent_ids: list[str]) -> int:
        """Children of ``parent_ids`` that are in the trash as items of their own (trashed before their parent)."""
        table = child.table
        statement = (
            select(func.count())
            .select_from(table)
            .where(child.parent_column.in_(parent_ids), table.deleted_at.is_not(None), table.trash_root_id.is_(None))
        )
        return int(await self.session.scalar(statement) or 0)

    async def trash_children(self, child: Child, parent_id: str, at: datetime) -> int:
        table = child.table
        statement = (
            update(table)
            .where(child.parent_column == parent_id, table.deleted_at.is_(None))
            .values(deleted_at=at, trash_root_id=parent_id)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(await self.session.execute(statement))

    async def restore_children(self, child: Child, root_id: str) -> int:
        table = child.table
        statement = (
            update(table)
            .where(table.trash_root_id == root_id)
            .values(deleted_at=None, trash_root_id=None)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(await self.session.execute(statement))

    async def count_cascaded(self, child: Child, root_id: str) -> int:
        statement = select(func.count()).select_from(child.table).where(child.table.trash_root_id == root_id)
        return int(await self.session.scalar(statement) or 0)

    async def live_slug_taken(self, kind: TrashKind, scope_value: str, slug: str) -> bool:
        table = kind.table
        statement = select(table.id).where(
            kind.slug_scope == scope_value, table.slug == slug, table.deleted_at.is_(None)
        )
        return await self.session.scalar(statement) is not None

    async def delete_rows(self, kind: TrashKind, ids: list[str]) -> int:
        if not ids:
            return 0
        statement = delete(kind.table).where(kind.table.id.in_(ids)).execution_options(synchronize_session=False)
        return _rowcount(await self.session.execute(statement))


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
