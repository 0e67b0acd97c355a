from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from yolostack.core.timeutil import utcnow
from yolostack.tables.base import IdMixin, Table


class UploadStatus(StrEnum):
    pending = "pending"  # URL handed out, no bytes yet
    uploaded = "uploaded"  # bytes stored, not yet confirmed by /api/upload/complete
    completed = "completed"  # checksum verified; the file is visible to its asset
    failed = "failed"
    consumed = "consumed"  # ingested into a dataset; the archive itself was deleted


class UploadSession(IdMixin, Table):
    """One signed-URL upload: ``POST /api/upload/signed-url`` → ``PUT`` → ``POST /api/upload/complete``."""

    __tablename__ = "upload_sessions"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    asset_type: Mapped[str] = mapped_column(String(16))  # datasets | models
    asset_id: Mapped[str] = mapped_column(String(40), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(128))
    declared_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    storage_key: Mapped[str] = mapped_column(String(512))
    status: Mapped[UploadStatus] = mapped_column(String(16), default=UploadStatus.pending)
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    md5: Mapped[str | None] = mapped_column(String(32), default=None)
    error: Mapped[str | None] = mapped_column(String(512), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
