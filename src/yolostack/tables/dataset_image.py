from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from yolostack.core.timeutil import utcnow
from yolostack.tables.base import IdMixin, Table


class DatasetImage(IdMixin, Table):
    """One image of a dataset: the bytes are content-addressed (``hash``), labels live here."""

    __tablename__ = "dataset_images"
    __table_args__ = (
        Index("ix_dataset_images_dataset_split", "dataset_id", "split"),
        Index("uq_dataset_images_dataset_hash", "dataset_id", "hash", unique=True),
    )

    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    hash: Mapped[str] = mapped_column(String(64), index=True)  # SHA-256 of the bytes
    ext: Mapped[str] = mapped_column(String(8))  # ".jpg"
    name: Mapped[str] = mapped_column(String(512))  # the file name it arrived with
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    split: Mapped[str] = mapped_column(String(8), default="train")
    # Clients' Label shape: [{classId, bbox?, segments?, keypoints?, obb?}], normalized coordinates.
    labels: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    label_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(1024), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def storage_key(self) -> str:
        return image_key(self.owner_id, self.hash, self.ext)


def image_key(owner_id: str, digest: str, ext: str) -> str:
    """Per account, by content: the same bytes in ten datasets are stored (and counted) once."""
    return f"images/{owner_id}/{digest[:2]}/{digest}{ext}"
