"""Datasets and their images: reads scoped to what the viewer may see; image stats, pages, the export stream."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, select

from yolostack.core.owned import OwnedRepository
from yolostack.core.pagination import PageParams
from yolostack.core.repository import Repository
from yolostack.tables import Account, Dataset, DatasetImage

DatasetRow = tuple[Dataset, Account]


class DatasetRepository(OwnedRepository[Dataset, Account, DatasetRow]):
    """Datasets with their owner; reads see the caller's own and others' public live datasets."""

    table = Dataset
    owners = Account

    async def list_readable(
        self, viewer_id: str, owner_id: str, params: PageParams, task: str | None = None
    ) -> tuple[Sequence[Dataset], int]:
        criteria = [Dataset.task == task] if task else []
        return await self.list_readable_of_owner(viewer_id, owner_id, params, *criteria)

    async def image_stats(self, dataset_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """Per dataset: image count, per split, labeled and errored."""
        if not dataset_ids:
            return {}
        image = DatasetImage

        def count_if(condition: Any) -> Any:
            return func.sum(case((condition, 1), else_=0))

        statement = (
            select(
                image.dataset_id,
                func.count(),
                count_if(image.split == "train"),
                count_if(image.split == "val"),
                count_if(image.split == "test"),
                count_if(image.label_count > 0),
                count_if(image.error.is_not(None)),
            )
            .where(image.dataset_id.in_(dataset_ids))
            .group_by(image.dataset_id)
        )
        stats = {}
        for dataset_id, total, train, val, test, labeled, errors in (await self.session.execute(statement)).all():
            stats[dataset_id] = {
                "total": int(total),
                "train": int(train or 0),
                "val": int(val or 0),
                "test": int(test or 0),
                "labeled": int(labeled or 0),
                "errors": int(errors or 0),
            }
        return stats


class ImageRepository(Repository):
    async def hashes(self, dataset_id: str) -> dict[str, str]:
        statement = select(DatasetImage.hash, DatasetImage.id).where(DatasetImage.dataset_id == dataset_id)
        rows = (await self.session.execute(statement)).all()
        return {str(digest): str(image_id) for digest, image_id in rows}

    async def add_all(self, images: Sequence[DatasetImage]) -> None:
        self.session.add_all(images)
        await self.session.flush()

    async def get(self, image_id: str) -> DatasetImage | None:
        return await self.session.get(DatasetImage, image_id)

    async def list_page(
        self,
        dataset_id: str,
        *,
        limit: int,
        cursor: str | None,
        split: str | None,
        has_label: bool | None,
        has_error: bool | None,
    ) -> Sequence[DatasetImage]:
        """Keyset paging by id: stable under concurrent inserts, cheap at any depth."""
        statement = select(DatasetImage).where(DatasetImage.dataset_id == dataset_id)
        if split:
            statement = statement.where(DatasetImage.split == split)
        if has_label is not None:
            statement = statement.where(DatasetImage.label_count > 0 if has_label else DatasetImage.label_count == 0)
        if has_error is not None:
            statement = statement.where(DatasetImage.error.is_not(None) if has_error else DatasetImage.error.is_(None))
        if cursor:
            statement = statement.where(DatasetImage.id > cursor)
        return (await self.session.scalars(statement.order_by(DatasetImage.id).limit(limit))).all()

    async def stream_for_export(self, dataset_id: str, after: str | None, limit: int) -> Sequence[DatasetImage]:
        statement = select(DatasetImage).where(DatasetImage.dataset_id == dataset_id, DatasetImage.error.is_(None))
        if after:
            statement = statement.where(DatasetImage.id > after)
        return (await self.session.scalars(statement.order_by(DatasetImage.id).limit(limit))).all()

    async def hash_in_use(self, owner_id: str, digest: str) -> bool:
        statement = select(DatasetImage.id).where(DatasetImage.owner_id == owner_id, DatasetImage.hash == digest)
        return await self.session.scalar(statement.limit(1)) is not None
