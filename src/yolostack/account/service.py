from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.account.repository import AccountRepository
from yolostack.account.schemas import AccountSummary, ResourceCounts
from yolostack.activity.service import activity as activity_service
from yolostack.core.errors import BadRequest, Conflict, NotFound
from yolostack.core.ids import new_id
from yolostack.core.slugs import is_slug
from yolostack.tables import Account, AccountType, Plan

# First path segments of the app's own pages and routes: a user named so would shadow them (spec §8), since
# an owner's pages sit at /{owner}/….
RESERVED_USERNAMES = frozenset(
    {"api", "d", "files", "health", "ready", "login", "logout", "settings", "static", "v1", "docs", "new"}
)


class AccountService:
    async def create(
        self,
        session: AsyncSession,
        *,
        username: str,
        name: str | None = None,
        plan: Plan = Plan.free,
        is_admin: bool = False,
    ) -> Account:
        if not is_slug(username):
            raise BadRequest("username must be lowercase letters, digits and single hyphens ([a-z0-9-])")
        if username in RESERVED_USERNAMES:
            raise BadRequest(f"username '{username}' is reserved for the web app's own pages")
        repository = AccountRepository(session)
        if await repository.get_by_username(username) is not None:
            raise Conflict(f"username '{username}' is taken")
        account = await repository.add(
            Account(id=new_id("user"), username=username, name=name or username, plan=plan, is_admin=is_admin)
        )
        await activity_service.record(
            session,
            account.id,
            "account.created",
            resource_type="account",
            resource_id=account.id,
            resource_name=username,
            message=f"Account '{username}' created on the {plan} plan",
        )
        return account

    async def list_all(self, session: AsyncSession) -> Sequence[Account]:
        return await AccountRepository(session).list_all()

    async def count(self, session: AsyncSession) -> int:
        return await AccountRepository(session).count_all()

    async def get_by_username(self, session: AsyncSession, username: str) -> Account:
        account = await AccountRepository(session).get_by_username(username)
        if account is None:
            raise NotFound(f"user '{username}' not found")
        return account

    async def summary(self, session: AsyncSession, account: Account) -> AccountSummary:
        counts = await AccountRepository(session).resource_counts(account.id)
        return AccountSummary(
            username=account.username,
            name=account.name,
            account_type=AccountType(account.account_type).value,
            plan=Plan(account.plan).value,
            credits_cents=0,
            counts=ResourceCounts(**counts),
            teams=[],
        )


account = AccountService()
