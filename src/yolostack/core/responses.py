"""The two response dialects (spec §3), built here so no endpoint hand-builds an envelope.

- ``seed``: the seed documents' ``{success, data, meta?}`` envelope.
- ``client``: the real clients' bare top-level fields (plus ``success``).
- ``both``: routes both use carry the envelope and the top-level fields at once.
"""

from typing import Any

from pydantic import BaseModel

from yolostack.core.pagination import PageMeta

Body = dict[str, Any]


def dump(value: Any) -> Any:
    """Render schemas (camelCase wire names) and containers of them as plain JSON data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list | tuple):
        return [dump(item) for item in value]
    if isinstance(value, dict):
        return {key: dump(item) for key, item in value.items()}
    return value


def seed(data: Any, *, meta: PageMeta | None = None) -> Body:
    body: Body = {"success": True, "data": dump(data)}
    if meta is not None:
        body["meta"] = meta.as_dict()
    return body


def client(**fields: Any) -> Body:
    return {"success": True, **{key: dump(value) for key, value in fields.items()}}


def both(data: Any, *, meta: PageMeta | None = None, **fields: Any) -> Body:
    return {**seed(data, meta=meta), **client(**fields)}
