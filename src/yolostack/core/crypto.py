"""API key material: ``ul_`` + 40 lowercase hex, stored only as a SHA-256 hash."""

import hashlib
import re
import secrets

API_KEY_PATTERN = re.compile(r"^ul_[0-9a-f]{40}$")
KEY_PREFIX_LENGTH = 11  # "ul_" + 8 hex: enough to recognise a key in a list, useless to an attacker


def generate_api_key() -> str:
    return "ul_" + secrets.token_hex(20)


def hash_api_key(key: str) -> str:
    # The key carries 160 random bits, so a plain digest cannot be brute-forced; no salt is needed.
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str:
    return key[:KEY_PREFIX_LENGTH]


def looks_like_api_key(value: str) -> bool:
    return API_KEY_PATTERN.fullmatch(value) is not None
