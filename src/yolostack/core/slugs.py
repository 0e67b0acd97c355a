"""Usernames and slugs are ``[a-z0-9-]`` (never ``_``), the same rule the clients' slugify follows."""

import re

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,126}[a-z0-9])?$"
_SLUG_RE = re.compile(SLUG_PATTERN)


def is_slug(value: str) -> bool:
    return _SLUG_RE.fullmatch(value) is not None and "--" not in value


def slugify(value: str) -> str:
    """Lowercase, keep ``[a-z0-9 -]``, spaces to ``-``, collapse ``-``, strip; as ``ultralytics`` does."""
    text = re.sub(r"[^a-z0-9 -]", "", value.lower()).replace(" ", "-")
    return re.sub(r"-+", "-", text).strip("-")[:128]
