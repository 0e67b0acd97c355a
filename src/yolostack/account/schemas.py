from typing import Literal

from yolostack.core.responses import ClientResponse, SeedResponse
from yolostack.core.schemas import Schema


class ResourceCounts(Schema):
    projects: int
    datasets: int
    models: int


class AccountSummary(Schema):
    """What ``yolo login`` and every ``ul cloud`` owner lookup read (clients.md §1.4)."""

    username: str
    name: str
    account_type: Literal["personal", "team"]
    plan: Literal["free", "pro", "enterprise"]
    credits_cents: int
    counts: ResourceCounts
    teams: list[dict[str, str]]


class PublicUser(Schema):
    username: str
    full_name: str
    account_type: str
    follower_count: int = 0
    is_followed: bool = False


class AccountSummaryResponse(SeedResponse[AccountSummary], AccountSummary):
    """The summary twice: in ``data`` (seed) and at the top level (``yolo login``, ``ul``)."""


class UserResponse(ClientResponse):
    user: PublicUser
