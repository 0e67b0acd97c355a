from datetime import datetime

from pydantic import Field, computed_field, field_validator

from yolostack.auth.scopes import Scope
from yolostack.core.responses import SeedResponse
from yolostack.core.schemas import RequestSchema, Schema


class ApiKeySchema(Schema):
    id: str
    name: str
    key_prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def key_id(self) -> str:
        """The clients read ``keyId``; the seed reads ``id``."""
        return self.id


class ApiKeyCreate(RequestSchema):
    name: str = Field(min_length=1, max_length=128)
    scopes: list[Scope] = Field(default_factory=list, max_length=len(Scope))
    expires_at: datetime | None = None

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("name must not be blank")
        return value

    @field_validator("expires_at")
    @classmethod
    def _aware_expiry(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("expiresAt needs a timezone, e.g. 2027-01-01T00:00:00Z")
        return value


class ApiKeyCreated(ApiKeySchema):
    """Returned once, at creation: the only time the plaintext key is shown."""

    key: str


class ApiKeyList(SeedResponse[list[ApiKeySchema]]):
    keys: list[ApiKeySchema]


class ApiKeyCreatedResponse(SeedResponse[ApiKeyCreated], ApiKeyCreated):
    """The new key twice: in ``data`` (seed) and at the top level (clients)."""


class RevokedKey(Schema):
    id: str
    revoked: bool


class ApiKeyRevoked(SeedResponse[RevokedKey]):
    key_id: str
    revoked: bool
