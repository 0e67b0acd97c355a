from enum import StrEnum

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from yolostack.tables.base import IdMixin, Table, TimestampMixin


class Plan(StrEnum):
    free = "free"
    pro = "pro"
    enterprise = "enterprise"


class AccountType(StrEnum):
    personal = "personal"
    team = "team"


class Account(IdMixin, TimestampMixin, Table):
    __tablename__ = "accounts"

    username: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(256))
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    plan: Mapped[Plan] = mapped_column(String(16), default=Plan.free)
    account_type: Mapped[AccountType] = mapped_column(String(16), default=AccountType.personal)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # Enterprise limits are configurable per account; NULL means the plan's default.
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer, default=None)
    rate_limit_per_day: Mapped[int | None] = mapped_column(Integer, default=None)
    # argon2id (``core.crypto.hash_password``); NULL: no password, the web app is entered with a key or link.
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
