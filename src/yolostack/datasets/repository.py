from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, case, func, or_, select
from yolostack.core.pagination import PageParams
from yolostack.core.repository import Repository
from yolostack.tables import Account, Dataset, DatasetImage, Visibility

DatasetRow = tuple[Dataset, Account]


class DatasetRepository(Repository):
    """Datasets with their owner; reads see the caller's own and others' public live datasets."""

    def _readable(self, viewer_id: str) -> Select[Dataset, Account]:
        return (
            select(Dataset, Account)
            .join(Account, Account.id == Dataset.owner_id)
            .where(
                Dataset.deleted_at.is_(None),
                or_(Dataset.owner_id == viewer_id, Dataset.visibility == Visibility.public),
            )
        )

    async def _first(self, statement: Select[Dataset, Account]) -> DatasetRow | None:
        row = (await self.session.execute(statement)).first()
        return None if row is None else (row[0], row[1])

    async def get_readable(self, viewer_id: str, dataset_id: str) -> DatasetRow | None:
        return await self._first(self._readable(viewer_id).where(Dataset.id == dataset_id))

    async def get_readable_by_slug(self, viewer_id: str, owner: str, slug: str) -> DatasetRow | None:
        return await self._first(self._readable(viewer_id).where(Account.username == owner, Dataset.slug == slug))

    async def list_readable(
        self, viewer_id: str, owner_id: str, params: PageParams, task: str | None = None
    ) -> tuple[Sequence[Dataset], int]:
        statement = select(Dataset).where(
            Dataset.owner_id == owner_id,
            Dataset.deleted_at.is_(None),
            or_(Dataset.owner_id == viewer_id, Dataset.visibility == Visibility.public),
        )
        if task:
            statement = statement.where(Dataset.task == task)
        return await self.page(statement.order_by(Dataset.created_at.desc(), Dataset.id), params)

    async def slug_taken(self, owner_id: str, slug: str, *, except_id: str | None = None) -> bool:
        statement = select(Dataset.id).where(
            Dataset.owner_id == owner_id, Dataset.slug == slug, Dataset.deleted_at.is_(None)
        )
        if except_id is not None:
            statement = statement.where(Dataset.id != except_id)
        return await self.session.scalar(statement) is not None

    async def add(self, dataset: Dataset) -> Dataset:
        self.session.add(dataset)
        await self.session.flush()
        return dataset

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
