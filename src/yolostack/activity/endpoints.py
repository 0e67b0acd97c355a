from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated

from fastapi import APIRouter, Body, Query

from yolostack.activity.schemas import ActivityEventSchema, ActivityPage, ActivitySelection, ActivityUpdated
from yolostack.activity.service import activity as activity_service
from yolostack.auth.dependencies import ActivityAuth
from yolostack.core.db import DbSession
from yolostack.core.errors import BadRequest
from yolostack.core.pagination import PageMeta, PageParamsQuery
from yolostack.core.responses import Body as ResponseBody
from yolostack.core.responses import both

router = APIRouter(tags=["activity"])

DATE_HELP = "ISO date or date-time, inclusive (a bare date covers that whole day); UTC unless an offset is given"


@router.get("", response_model=ActivityPage)
async def list_activity(
    auth: ActivityAuth,
    session: DbSession,
    pagination: PageParamsQuery,
    start_date: Annotated[str | None, Query(alias="startDate", max_length=64, description=DATE_HELP)] = None,
    end_date: Annotated[str | None, Query(alias="endDate", max_length=64, description=DATE_HELP)] = None,
    search: Annotated[str | None, Query(max_length=200)] = None,
    archived: bool = False,
) -> ResponseBody:
    """List the account's activity events, newest first."""
    start = _parse_date("startDate", start_date, end_of_day=False)
    end = _parse_date("endDate", end_date, end_of_day=True)
    if start and end and start > end:
        raise BadRequest("startDate must not be after endDate", details=[{"field": "startDate"}])
    events, total = await activity_service.list_events(
        session,
        auth.account_id,
        pagination,
        start=start,
        end=end,
        search=search,
        archived=archived,
    )
    rows = [ActivityEventSchema.model_validate(event) for event in events]
    unseen = await activity_service.count_unseen(session, auth.account_id)
    return both(rows, meta=PageMeta.of(pagination, total), events=rows, total=total, unseenCount=unseen)


@router.post("/mark-seen", response_model=ActivityUpdated)
async def mark_activity_seen(
    auth: ActivityAuth, session: DbSession, selection: Annotated[ActivitySelection | None, Body()] = None
) -> ResponseBody:
    """Mark the given events (or all of them) as seen."""
    ids = (selection or ActivitySelection(all=True)).selected_ids()
    updated = await activity_service.mark_seen(session, auth.account_id, ids)
    return both({"updated": updated}, updated=updated)


@router.post("/archive", response_model=ActivityUpdated)
async def archive_activity(
    auth: ActivityAuth, session: DbSession, selection: Annotated[ActivitySelection | None, Body()] = None
) -> ResponseBody:
    """Archive the given events (or all of them); archived events leave the default list."""
    ids = (selection or ActivitySelection(all=True)).selected_ids()
    updated = await activity_service.archive(session, auth.account_id, ids)
    return both({"updated": updated}, updated=updated)


def _parse_date(field: str, value: str | None, *, end_of_day: bool) -> datetime | None:
    """An ISO date or date-time, as UTC when it has no offset; a bare date as an end covers that whole day."""
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        pass
    else:
        return datetime.combine(day, time.max if end_of_day else time.min, tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(
            f"{field}: expected an ISO date or date-time, e.g. 2026-01-31 or 2026-01-31T12:00:00Z",
            details=[{"field": field, "message": "invalid ISO date"}],
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
