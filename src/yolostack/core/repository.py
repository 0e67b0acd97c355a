"""Repository base: only repositories build SQL, and every query is scoped to its caller."""

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.core.pagination import PageParams

T = TypeVar("T")


class Repository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def count(self, statement: Select[*tuple[Any, ...]]) -> int:
        total = await self.session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
        return int(total or 0)

    async def page(self, statement: Select[T], params: PageParams) -> tuple[Sequence[T], int]:
        total = await self.count(statement)
        rows = await self.session.scalars(statement.offset(params.offset).limit(params.limit))
        return rows.all(), total
