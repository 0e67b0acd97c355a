from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from yolostack.core.responses import ClientResponse, SeedResponse
from yolostack.core.schemas import RequestSchema, Schema
from yolostack.core.validation import NonNegativeInt64

# Names we store under: a plain basename, no path, no control characters.
_FORBIDDEN = set("/\\\x00") | {chr(code) for code in range(32)}


def check_file_name(value: str) -> str:
    """A name we may store under: a plain basename, no path, no control characters (a ``ValueError`` otherwise)."""
    if value in (".", "..") or any(char in _FORBIDDEN for char in value):
        raise ValueError("filename must be a plain file name without a path")
    return value


class SignedUrlRequest(RequestSchema):
    asset_type: Literal["datasets", "models"]
    asset_id: str = Field(min_length=1, max_length=40)
    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(default="application/octet-stream", max_length=128)
    total_bytes: NonNegativeInt64 | None = None

    @field_validator("filename")
    @classmethod
    def _basename(cls, value: str) -> str:
        return check_file_name(value)


class CompleteRequest(RequestSchema):
    session_id: str = Field(min_length=1, max_length=40)
    checksum: str | None = Field(default=None, max_length=128, description="SHA-256 hex (optionally 'sha256:…')")
    md5: str | None = Field(default=None, max_length=64, description="MD5 hex")


class SignedUpload(Schema):
    session_id: str
    upload_url: str = Field(description="PUT the raw bytes here (no API key: the link is the permission)")
    expires_at: datetime
    headers: dict[str, str] = Field(description="Headers to send with the PUT")


class SignedUploadResponse(SeedResponse[SignedUpload], SignedUpload):
    """The session twice: in ``data`` (seed) and at the top level (clients)."""


class UploadedFile(Schema):
    size: int
    content_type: str
    sha256: str | None


class CompletedUpload(Schema):
    session_id: str
    file: UploadedFile


class UploadCompleted(SeedResponse[CompletedUpload]):
    file: UploadedFile


class UploadReceived(ClientResponse):
    size: int = Field(description="Bytes received")
