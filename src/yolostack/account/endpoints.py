from typing import Annotated

from fastapi import APIRouter, Query

from yolostack.account.schemas import AccountSummaryResponse, PublicUser, UserResponse
from yolostack.account.service import account as account_service
from yolostack.auth.dependencies import AccountAuth, AnyAuth
from yolostack.core.db import DbSession
from yolostack.core.responses import Body, both, client
from yolostack.core.slugs import SLUG_PATTERN

router = APIRouter(tags=["account"])
users_router = APIRouter(tags=["account"])


@router.get("/summary", response_model=AccountSummaryResponse)
async def get_account_summary(auth: AccountAuth, session: DbSession) -> Body:
    """Who the key belongs to; ``yolo login`` accepts a key when this answers 2xx."""
    summary = await account_service.summary(session, auth.account)
    return both(summary, **summary.model_dump(mode="json", by_alias=True))


@users_router.get("", response_model=UserResponse)
async def get_user(
    _: AnyAuth,
    session: DbSession,
    username: Annotated[str, Query(min_length=1, max_length=128, pattern=SLUG_PATTERN)],
) -> Body:
    """Public profile of a user (``ul cloud train`` uses it to tell a workspace prefix from a path)."""
    account = await account_service.get_by_username(session, username)
    user = PublicUser(username=account.username, full_name=account.name, account_type=account.account_type)
    return client(user=user)
