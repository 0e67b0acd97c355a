"""Type-prefixed random ids (spec §2): a path segment with ``_`` is an id, one without is a slug."""

import secrets
import string

_ALPHABET = string.ascii_lowercase + string.digits
ID_LENGTH = 20


def new_id(prefix: str) -> str:
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(ID_LENGTH))


def is_id(segment: str) -> bool:
    """Usernames and slugs never contain ``_``, so any segment that does is an id."""
    return "_" in segment
