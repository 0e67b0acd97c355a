"""Field rules shared by several domains."""

import json
from typing import Any

from fastapi import Request

from yolostack.core.errors import BadRequest

MAX_METADATA_CHARS = 500_000
MAX_METADATA_KEY_CHARS = 128


def check_metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Custom JSON metadata: keys up to 128 characters, at most 500,000 serialized characters."""
    if value is None:
        return None
    long_keys = [key for key in value if len(key) > MAX_METADATA_KEY_CHARS]
    if long_keys:
        raise ValueError(f"metadata keys must be at most {MAX_METADATA_KEY_CHARS} characters")
    if len(json.dumps(value, separators=(",", ":"))) > MAX_METADATA_CHARS:
        raise ValueError(f"metadata must serialize to at most {MAX_METADATA_CHARS} characters")
    return value


async def json_object(request: Request) -> dict[str, Any]:
    """The request's JSON body, which must be an object (a 400 in the spec's format otherwise)."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise BadRequest("the body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body
