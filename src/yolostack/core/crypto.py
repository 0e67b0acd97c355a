"""API key material (``ul_`` + 40 lowercase hex, stored only as a SHA-256 hash), random tokens stored the same
way (browser sessions, sign-in links), and passwords (argon2id)."""

import hashlib
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

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


def generate_token() -> str:
    """A random token for a cookie or a link (256 bits), stored as ``hash_api_key(token)``."""
    return secrets.token_urlsafe(32)


# argon2id with the library's defaults (RFC 9106's second recommended setting), maintained by argon2-cffi.
_passwords = PasswordHasher()
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; a bound keeps one sign-in attempt cheap


def hash_password(password: str) -> str:
    return _passwords.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _passwords.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
