"""Tamper-proof, expiring tokens for URLs the server serves itself (local-disk files, upload PUTs)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from yolostack.core.errors import AppError


class InvalidSignature(AppError):
    status_code = 403
    code = "FORBIDDEN"
    default_message = "This link is invalid or has expired"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """``payload.signature``: the payload is readable JSON, the signature an HMAC-SHA256 over it."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, purpose: str, claims: dict[str, Any], expires_in: int) -> str:
        body = {**claims, "p": purpose, "x": int(time.time()) + expires_in}
        payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        return f"{payload}.{self._mac(payload)}"

    def verify(self, purpose: str, token: str) -> dict[str, Any]:
        payload, _, signature = token.partition(".")
        if not payload or not hmac.compare_digest(signature, self._mac(payload)):
            raise InvalidSignature()
        try:
            claims: dict[str, Any] = json.loads(_unb64(payload))
        except ValueError as error:
            raise InvalidSignature() from error
        if claims.get("p") != purpose or int(claims.get("x", 0)) < time.time():
            raise InvalidSignature()
        return claims

    def _mac(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()[:43]


def load_secret(configured: str | None, data_dir: Path) -> bytes:
    """The configured secret, else one generated on first start and kept (0600) in the data directory."""
    if configured:
        return configured.encode()
    path = data_dir / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".secret.{secrets.token_hex(8)}")
        draft.touch(mode=0o600)
        draft.write_text(secrets.token_hex(32))
        try:
            # link() fails if another process got there first; then everyone uses that one.
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip().encode()
