"""Datasets in the trash: the kind, and the hook that frees image files no other dataset uses."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.core.files import delete_after_commit
from yolostack.tables import Dataset, DatasetExport, DatasetImage, image_key
from yolostack.trash.registry import TrashKind, register


async def release_files(session: AsyncSession, dataset_ids: list[str]) -> None:
    """The datasets' exports go; images are content-addressed per account, so an image file goes only
    when no surviving dataset shares it."""
    if not dataset_ids:
        return
    leaving = (
        await session.execute(
            select(DatasetImage.owner_id, DatasetImage.hash, DatasetImage.ext)
            .where(DatasetImage.dataset_id.in_(dataset_ids))
            .distinct()
        )
    ).all()
    orphaned = []
    for owner_id, digest, ext in leaving:
        still_used = await session.scalar(
            select(DatasetImage.id)
            .where(
                DatasetImage.owner_id == owner_id,
                DatasetImage.hash == digest,
                DatasetImage.dataset_id.not_in(dataset_ids),
            )
            .limit(1)
        )
        if still_used is None:
            orphaned.append(image_key(owner_id, digest, ext))
    exports = await session.scalars(select(DatasetExport.storage_key).where(DatasetExport.dataset_id.in_(dataset_ids)))
    delete_after_commit(session, [*orphaned, *exports.all()])


DATASET_KIND = TrashKind(
    name="dataset",
    table=Dataset,
    owner_column=Dataset.owner_id,
    slug_scope=Dataset.owner_id,
    purge_hooks=[release_files],
)

register(DATASET_KIND)
