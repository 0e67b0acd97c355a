"""Schema base: camelCase on the wire, snake_case in Python, readable from ORM rows."""

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Schema(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class RequestSchema(Schema):
    """Request bodies: unknown fields the real clients send (tags, license, …) are ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")
