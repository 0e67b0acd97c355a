from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Query

from yolostack.activity.schemas import ActivityEventSchema, ActivitySelection
from yolostack.activity.service import activity as activity_service
from yolostack.auth.dependencies import ActivityAuth
from yolostack.core.db import DbSession
from yolostack.core.errors import BadRequest
from yolostack.core.pagination import PageMeta, PageParamsQuery
from yolostack.core.responses import Body as ResponseBody
from yolostack.core.responses import both

router = APIRouter(tags=["activity"])


@router.get("")
async def list_activity(
    auth: ActivityAuth,
    session: DbSession,
    pagination: PageParamsQuery,
    start_date: Annotated[datetime | None, Query(alias="startDate", description="ISO date/time, inclusive")] = None,
    end_date: Annotated[datetime | None, Query(alias="endDate", description="ISO date/time, inclusive")] = None,
    search: Annotated[str | None, Query(max_length=200)] = None,
    archived: bool = False,
) -> ResponseBody:
    """List the account's activity events, newest first."""
    if start_date and end_date and start_date > end_date:
        raise BadRequest("startDate must not be after endDate")
    events, total = await activity_service.list_events(
        session,
        auth.account_id,
        pagination,
        start=_aware(start_date),
        end=_aware(end_date),
        search=search,
        archived=archived,
    )
    rows = [ActivityEventSchema.model_validate(event) for event in events]
    unseen = await activity_service.count_unseen(session, auth.account_id)
    return both(rows, meta=PageMeta.of(pagination, total), events=rows, total=total, unseenCount=unseen)


@router.post("/mark-seen")
async def mark_activity_seen(
    auth: ActivityAuth, session: DbSession, selection: Annotated[ActivitySelection | None, Body()] = None
) -> ResponseBody:
    """Mark the given events (or all of them) as seen."""
    ids = (selection or ActivitySelection(all=True)).selected_ids()
    updated = await activity_service.mark_seen(session, auth.account_id, ids)
    return both({"updated": updated}, updated=updated)


@router.post("/archive")
async def archive_activity(
    auth: ActivityAuth, session: DbSession, selection: Annotated[ActivitySelection | None, Body()] = None
) -> ResponseBody:
    """Archive the given events (or all of them); archived events leave the default list."""
    ids = (selection or ActivitySelection(all=True)).selected_ids()
    updated = await activity_service.archive(session, auth.account_id, ids)
    return both({"updated": updated}, updated=updated)


def _aware(value: datetime | None) -> datetime | None:
    """A date without an offset is read as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
