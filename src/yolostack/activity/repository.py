from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, or_, select, update

from yolostack.core.pagination import PageParams
from yolostack.core.repository import Repository
from yolostack.tables import ActivityEvent


class ActivityRepository(Repository):
    def _scoped(self, account_id: str) -> Select[ActivityEvent]:
        return select(ActivityEvent).where(ActivityEvent.account_id == account_id)

    async def add(self, event: ActivityEvent) -> ActivityEvent:
        self.session.add(event)
        await self.session.flush()
        return event

    async def list_events(
        self,
        account_id: str,
        params: PageParams,
        *,
        start: datetime | None,
        end: datetime | None,
        search: str | None,
        archived: bool,
    ) -> tuple[Sequence[ActivityEvent], int]:
        statement = self._scoped(account_id)
        statement = statement.where(
            ActivityEvent.archived_at.is_not(None) if archived else ActivityEvent.archived_at.is_(None)
        )
        if start is not None:
            statement = statement.where(ActivityEvent.created_at >= start)
        if end is not None:
            statement = statement.where(ActivityEvent.created_at <= end)
        if search:
            # The search is literal text: '%' and '_' in it are not LIKE wildcards.
            escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{escaped}%"
            statement = statement.where(
                or_(
                    ActivityEvent.message.ilike(pattern, escape="\\"),
                    ActivityEvent.action.ilike(pattern, escape="\\"),
                    ActivityEvent.resource_name.ilike(pattern, escape="\\"),
                )
            )
        statement = statement.order_by(ActivityEvent.created_at.desc(), ActivityEvent.id.desc())
        return await self.page(statement, params)

    async def count_unseen(self, account_id: str) -> int:
        return await self.count(
            self._scoped(account_id).where(ActivityEvent.seen_at.is_(None), ActivityEvent.archived_at.is_(None))
        )

    async def mark(self, account_id: str, event_ids: list[str] | None, *, column: str, at: datetime) -> int:
        """Set ``seen_at`` or ``archived_at`` on the caller's events (all of them when no ids are given)."""
        target = getattr(ActivityEvent, column)
        statement = (
            update(ActivityEvent)
            .where(ActivityEvent.account_id == account_id, target.is_(None))
            .values({column: at})
            .execution_options(synchronize_session=False)
        )
        if event_ids is not None:
            statement = statement.where(ActivityEvent.id.in_(event_ids))
        result = await self.session.execute(statement)
        return int(getattr(result, "rowcount", 0) or 0)
