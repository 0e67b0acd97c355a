"""Usernames and slugs are ``[a-z0-9-]`` (never ``_``), the same rule the clients' slugify follows."""

import re

MAX_SLUG_LENGTH = 128
# Words of [a-z0-9] joined by single hyphens: what ultralytics' slugify produces. Length is checked apart
# (pydantic's regex engine has no look-ahead), so schemas pair this with max_length=MAX_SLUG_LENGTH.
SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
_SLUG_RE = re.compile(SLUG_PATTERN)


def is_slug(value: str) -> bool:
    return len(value) <= MAX_SLUG_LENGTH and _SLUG_RE.fullmatch(value) is not None


def slugify(value: str) -> str:
    """Lowercase, keep ``[a-z0-9 -]``, spaces to ``-``, collapse ``-``, cut to 128, strip ``-``."""
    text = re.sub(r"[^a-z0-9 -]", "", value.lower()).replace(" ", "-")
    return re.sub(r"-+", "-", text)[:MAX_SLUG_LENGTH].strip("-")
