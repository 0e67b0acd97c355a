"""Every mutating action records an event here; the activity routes read and mark them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.activity.repository import ActivityRepository
from yolostack.core.ids import new_id
from yolostack.core.pagination import PageParams
from yolostack.core.timeutil import utcnow
from yolostack.tables import ActivityEvent


class ActivityService:
    async def record(
        self,
        session: AsyncSession,
        account_id: str,
        action: str,
        *,
        resource_type: str,
        resource_id: str | None = None,
        resource_name: str | None = None,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> ActivityEvent:
        event = ActivityEvent(
            id=new_id("event"),
            account_id=account_id,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            resource_name=resource_name,
            message=message,
            details=details or {},
        )
        return await ActivityRepository(session).add(event)

    async def list_events(
        self,
        session: AsyncSession,
        account_id: str,
        params: PageParams,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        search: str | None = None,
        archived: bool = False,
    ) -> tuple[Sequence[ActivityEvent], int]:
        return await ActivityRepository(session).list_events(
            account_id, params, start=start, end=end, search=search, archived=archived
        )

    async def count_unseen(self, session: AsyncSession, account_id: str) -> int:
        return await ActivityRepository(session).count_unseen(account_id)

    async def mark_seen(self, session: AsyncSession, account_id: str, event_ids: list[str] | None) -> int:
        return await ActivityRepository(session).mark(account_id, event_ids, column="seen_at", at=utcnow())

    async def archive(self, session: AsyncSession, account_id: str, event_ids: list[str] | None) -> int:
        return await ActivityRepository(session).mark(account_id, event_ids, column="archived_at", at=utcnow())


activity = ActivityService()
