"""Every delete is soft: items go to the trash with what they contain, come back, or go for good."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from math import ceil
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.activity.service import activity as activity_service
from yolostack.core.errors import BadRequest, Conflict, NotFound
from yolostack.core.timeutil import utcnow
from yolostack.trash.registry import KINDS, TrashKind
from yolostack.trash.repository import TrashRepository
from yolostack.trash.schemas import ParentProject, TrashItem, TrashResource

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreResult:
    restored: dict[str, int]
    slug: str


@dataclass(frozen=True)
class DeleteResult:
    deleted: int
    cascaded: dict[str, int]


def _kind(name: str) -> TrashKind:
    kind = KINDS.get(name)
    if kind is None:
        raise BadRequest(f"type '{name}' cannot be trashed here")
    return kind


class TrashService:
    def __init__(self, retention: timedelta = timedelta(days=30)) -> None:
        self.retention = retention

    async def move(self, session: AsyncSession, owner_id: str, kind_name: str, row: Any) -> dict[str, int]:
        """Trash ``row`` and everything it contains; returns how many children went with it, by kind."""
        kind = _kind(kind_name)
        now = utcnow()
        repository = TrashRepository(session)
        row.deleted_at = now
        row.trash_root_id = None
        cascaded = {child.kind: await repository.trash_children(child, row.id, now) for child in kind.children}
        await activity_service.record(
            session,
            owner_id,
            f"{kind.name}.trashed",
            resource_type=kind.name,
            resource_id=row.id,
            resource_name=row.name,
            message=f"{kind.name.capitalize()} '{row.name}' moved to the trash",
            details={"cascaded": cascaded},
        )
        return cascaded

    async def restore(self, session: AsyncSession, owner_id: str, kind_name: str, item_id: str) -> RestoreResult:
        kind = _kind(kind_name)
        repository = TrashRepository(session)
        row = await repository.get_trashed_root(kind, owner_id, item_id)
        if row is None:
            raise NotFound(f"No {kind.name} '{item_id}' in the trash")
        if kind.parent is not None:
            parent_kind_name, parent_column = kind.parent
            parent = await repository.get_any(_kind(parent_kind_name), getattr(row, parent_column.key))
            if parent is not None and parent.deleted_at is not None:
                raise Conflict(f"Restore its {parent_kind_name} '{parent.name}' first: it is in the trash")
        row.slug = await self._free_slug(repository, kind, row)
        row.deleted_at = None
        restored = {child.kind: await repository.restore_children(child, row.id) for child in kind.children}
        await activity_service.record(
            session,
            owner_id,
            f"{kind.name}.restored",
            resource_type=kind.name,
            resource_id=row.id,
            resource_name=row.name,
            message=f"{kind.name.capitalize()} '{row.name}' restored from the trash",
            details={"restored": restored},
        )
        return RestoreResult(restored=restored, slug=row.slug)

    async def _free_slug(self, repository: TrashRepository, kind: TrashKind, row: Any) -> str:
        """A live item may have taken the slug meanwhile; the restored one then gets ``slug-2``, …"""
        scope_value = getattr(row, kind.slug_scope.key)
        slug: str = row.slug
        suffix = 2
        while await repository.live_slug_taken(kind, scope_value, slug):
            slug = f"{row.slug[:120]}-{suffix}"
            suffix += 1
        return slug

    async def delete_forever(self, session: AsyncSession, owner_id: str, kind_name: str, item_id: str) -> DeleteResult:
        kind = _kind(kind_name)
        repository = TrashRepository(session)
        row = await repository.get_trashed_root(kind, owner_id, item_id)
        if row is None:
            raise NotFound(f"No {kind.name} '{item_id}' in the trash")
        result = await self._purge(session, kind, [row.id])
        await activity_service.record(
            session,
            owner_id,
            f"{kind.name}.deleted",
            resource_type=kind.name,
            resource_id=item_id,
            resource_name=row.name,
            message=f"{kind.name.capitalize()} '{row.name}' permanently deleted",
        )
        return result

    async def empty(self, session: AsyncSession, owner_id: str) -> DeleteResult:
        repository = TrashRepository(session)
        deleted = 0
        cascaded: dict[str, int] = {}
        for kind in KINDS.values():
            ids = [row.id for row in await repository.list_roots(kind, owner_id)]
            if not ids:
                continue
            result = await self._purge(session, kind, ids)
            for child_kind, count in result.cascaded.items():
                cascaded[child_kind] = cascaded.get(child_kind, 0) + count
            deleted += result.deleted
        await activity_service.record(
            session,
            owner_id,
            "trash.emptied",
            resource_type="trash",
            message=f"Trash emptied: {deleted} item(s) permanently deleted",
            details={"deleted": deleted, "cascaded": cascaded},
        )
        return DeleteResult(deleted=deleted, cascaded=cascaded)

    async def _purge(self, session: AsyncSession, kind: TrashKind, ids: list[str]) -> DeleteResult:
        """Delete rows for good; children go too (database cascade), after their purge hooks ran.

        A child that was in the trash on its own (trashed before its parent) is a trash item of its own:
        it counts as deleted, not as cascaded, so ``deletedCount`` matches what the trash listed.
        """
        repository = TrashRepository(session)
        deleted = len(ids)
        cascaded: dict[str, int] = {}
        for child in kind.children:
            child_ids = await repository.child_ids(child, ids)
            child_roots = await repository.count_trashed_root_children(child, ids)
            if not child_ids:
                continue
            child_kind = _kind(child.kind)
            for hook in child_kind.purge_hooks:
                await hook(session, child_ids)
            await repository.delete_rows(child_kind, child_ids)
            cascaded[child.kind] = len(child_ids) - child_roots
            deleted += child_roots
        for hook in kind.purge_hooks:
            await hook(session, ids)
        await repository.delete_rows(kind, ids)
        return DeleteResult(deleted=deleted, cascaded=cascaded)

    async def purge_expired(self, session: AsyncSession, now: datetime | None = None) -> int:
        """The periodic job: remove items trashed longer ago than the retention period."""
        before = (now or utcnow()) - self.retention
        repository = TrashRepository(session)
        purged = 0
        for kind in KINDS.values():
            ids = [row.id for row in await repository.expired_roots(kind, before)]
            if ids:
                purged += (await self._purge(session, kind, ids)).deleted
        if purged:
            logger.info("purged %d item(s) trashed before %s", purged, before.isoformat())
        return purged

    async def list_items(self, session: AsyncSession, owner_id: str, type_filter: str | None) -> list[TrashItem]:
        repository = TrashRepository(session)
        now = utcnow()
        items: list[TrashItem] = []
        for kind in KINDS.values():
            if type_filter not in (None, "all", kind.name):
                continue
            for row in await repository.list_roots(kind, owner_id):
                items.append(await self._item(repository, kind, row, now))
        items.sort(key=lambda item: (item.trashed_at, item.id), reverse=True)
        return items

    async def _item(self, repository: TrashRepository, kind: TrashKind, row: Any, now: datetime) -> TrashItem:
        cascaded = 0
        for child in kind.children:
            cascaded += await repository.count_cascaded(child, row.id)
        parent_project = None
        if kind.parent is not None and kind.parent[0] == "project":
            project = await repository.get_any(_kind("project"), getattr(row, kind.parent[1].key))
            if project is not None:
                parent_project = ParentProject(id_=project.id, name=project.name, slug=project.slug)
        remaining = self.retention - (now - row.deleted_at)
        return TrashItem(
            underscore_id=row.id,
            id=row.id,
            type=kind.name,
            name=row.name,
            slug=row.slug,
            trashed_at=row.deleted_at,
            days_remaining=max(ceil(remaining.total_seconds() / 86_400), 0),
            cascaded_count=cascaded,
            parent_project=parent_project,
        )

    async def preview(self, session: AsyncSession, owner_id: str, kind_name: str, item_id: str) -> list[TrashResource]:
        """What deleting this live item would take with it (the SDK's ``trash(id=…, type=…)``)."""
        kind = _kind(kind_name)
        repository = TrashRepository(session)
        row = await repository.get_live(kind, owner_id, item_id)
        if row is None:
            raise NotFound(f"{kind.name.capitalize()} '{item_id}' not found")
        resources = [TrashResource(id=row.id, type=kind.name, name=row.name)]
        for child in kind.children:
            for child_row in await repository.live_children(child, row.id):
                resources.append(TrashResource(id=child_row.id, type=child.kind, name=child_row.name))
        return resources


trash = TrashService()
