"""Signed tokens for the links the server serves itself: tamper-proof, expiring, bound to one purpose."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from yolostack.storage.signing import InvalidSignature, Signer, load_secret

SECRET = b"s" * 32
CLAIMS = {"k": "models/alice/best.pt", "n": "best.pt"}


@pytest.fixture
def signer() -> Signer:
    return Signer(SECRET)


def forged_payload(token: str, **changes: object) -> str:
    """The token with its readable payload edited and the original signature kept."""
    payload, _, signature = token.partition(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    edited = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"{edited}.{signature}"


def assert_refused(signer: Signer, purpose: str, token: str) -> None:
    with pytest.raises(InvalidSignature) as raised:
        signer.verify(purpose, token)
    assert raised.value.status_code == 403
    assert raised.value.code == "FORBIDDEN"


class TestSign:
    def test_token_is_url_safe(self, signer: Signer) -> None:
        token = signer.sign("get", {"k": "a/b c+d/é.pt"}, 60)
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


class TestVerify:
    def test_returns_the_claims(self, signer: Signer) -> None:
        claims = signer.verify("get", signer.sign("get", CLAIMS, 60))
        assert {key: claims[key] for key in CLAIMS} == CLAIMS

    def test_another_signer_with_the_same_secret_accepts(self, signer: Signer) -> None:
        token = signer.sign("get", CLAIMS, 60)
        assert Signer(SECRET).verify("get", token)["k"] == CLAIMS["k"]

    def test_tampered_payload_is_403(self, signer: Signer) -> None:
        token = signer.sign("get", CLAIMS, 60)
        assert_refused(signer, "get", forged_payload(token, k="models/bob/best.pt"))

    def test_extended_expiry_is_403(self, signer: Signer) -> None:
        token = signer.sign("get", CLAIMS, 60)
        assert_refused(signer, "get", forged_payload(token, x=4_000_000_000))

    def test_tampered_signature_is_403(self, signer: Signer) -> None:
        token = signer.sign("get", CLAIMS, 60)
        flipped = "0" if token[-1] != "0" else "1"
        assert_refused(signer, "get", token[:-1] + flipped)

    def test_missing_signature_is_403(self, signer: Signer) -> None:
        payload, _, _ = signer.sign("get", CLAIMS, 60).partition(".")
        assert_refused(signer, "get", payload)

    def test_garbage_is_403(self, signer: Signer) -> None:
        assert_refused(signer, "get", "not-a-token")

    def test_other_secret_is_403(self, signer: Signer) -> None:
        token = Signer(b"o" * 32).sign("get", CLAIMS, 60)
        assert_refused(signer, "get", token)

    def test_expired_is_403(self, signer: Signer) -> None:
        assert_refused(signer, "get", signer.sign("get", CLAIMS, -1))

    def test_wrong_purpose_is_403(self, signer: Signer) -> None:
        assert_refused(signer, "put", signer.sign("get", CLAIMS, 60))


class TestLoadSecret:
    def test_generates_one_on_first_call(self, tmp_path: Path) -> None:
        secret = load_secret(None, tmp_path / "data")
        assert len(secret) >= 32
        assert (tmp_path / "data" / "secret.key").read_text().strip().encode() == secret

    def test_file_is_private(self, tmp_path: Path) -> None:
        load_secret(None, tmp_path)
        assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600

    def test_stable_across_calls(self, tmp_path: Path) -> None:
        assert load_secret(None, tmp_path) == load_secret(None, tmp_path)

    def test_leaves_no_draft_behind(self, tmp_path: Path) -> None:
        load_secret(None, tmp_path)
        load_secret(None, tmp_path)
        assert sorted(path.name for path in tmp_path.iterdir()) == ["secret.key"]

    def test_configured_secret_wins(self, tmp_path: Path) -> None:
        load_secret(None, tmp_path)
        assert load_secret("c" * 32, tmp_path) == b"c" * 32

    def test_configured_secret_writes_no_file(self, tmp_path: Path) -> None:
        load_secret("c" * 32, tmp_path)
        assert list(tmp_path.iterdir()) == []

    def test_links_survive_a_restart(self, tmp_path: Path) -> None:
        token = Signer(load_secret(None, tmp_path)).sign("get", CLAIMS, 60)
        assert Signer(load_secret(None, tmp_path)).verify("get", token)["n"] == "best.pt"
