"""Seed pagination (``page``/``limit``, default 1/20) and its ``meta``."""

from dataclasses import dataclass
from math import ceil
from typing import Annotated

from fastapi import Depends, Query

MAX_LIMIT = 100
# Far past any real listing, and (page - 1) * limit stays an OFFSET both databases take (SQLite and
# PostgreSQL stop at 2**63): a larger page is a 422, never an overflow.
MAX_PAGE = 10_000_000


@dataclass(frozen=True)
class PageParams:
    page: int
    limit: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


def _page_params(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page number, from 1")] = 1,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")] = 20,
) -> PageParams:
    return PageParams(page=page, limit=limit)


PageParamsQuery = Annotated[PageParams, Depends(_page_params)]


@dataclass(frozen=True)
class PageMeta:
    page: int
    limit: int
    total: int

    @classmethod
    def of(cls, params: PageParams, total: int) -> "PageMeta":
        return cls(page=params.page, limit=params.limit, total=total)

    @property
    def total_pages(self) -> int:
        return ceil(self.total / self.limit) if self.total else 0

    def as_dict(self) -> dict[str, int]:
        return {"page": self.page, "limit": self.limit, "total": self.total}
