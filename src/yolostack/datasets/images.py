"""Dataset images: paging through them, and reading or relabelling one (``/api/images/{id}``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.activity.service import activity as activity_service
from yolostack.auth.dependencies import DatasetsAuth
from yolostack.core.db import DbSession
from yolostack.core.errors import BadRequest, NotFound
from yolostack.core.files import delete_after_commit
from yolostack.core.responses import Body, client
from yolostack.datasets.formats.records import FormatError, Label
from yolostack.datasets.repository import DatasetRepository, ImageRepository
from yolostack.datasets.schemas import (
    ImageDeleted,
    ImageDetail,
    ImageProperties,
    ImageSchema,
    ImageUpdated,
    LabelsUpdate,
)
from yolostack.datasets.service import dataset as dataset_service
from yolostack.datasets.service import names_list
from yolostack.storage.service import FileLinks, Files
from yolostack.tables import Account, Dataset, DatasetImage, image_key

router = APIRouter(tags=["images"])


def image_view(links: FileLinks, image: DatasetImage, *, labels: bool, url: bool) -> ImageSchema:
    return ImageSchema(
        id=image.id,
        hash=image.hash,
        ext=image.ext,
        name=image.name,
        width=image.width,
        height=image.height,
        bytes=image.bytes,
        split=image.split,
        label_count=image.label_count,
        error=image.error,
        labels=list(image.labels) if labels else None,
        image_url=links.download_url(image.storage_key, f"{image.hash}{image.ext}") if url else None,
    )


async def list_images(
    session: AsyncSession,
    links: FileLinks,
    dataset: Dataset,
    *,
    limit: int,
    cursor: str | None,
    split: str | None,
    has_label: bool | None,
    has_error: bool | None,
    include_labels: bool,
    include_urls: bool,
) -> dict[str, Any]:
    rows = await ImageRepository(session).list_page(
        dataset.id, limit=limit + 1, cursor=cursor, split=split, has_label=has_label, has_error=has_error
    )
    page, more = rows[:limit], len(rows) > limit
    stats = (await DatasetRepository(session).image_stats([dataset.id])).get(dataset.id, {})
    return {
        "images": [image_view(links, image, labels=include_labels, url=include_urls) for image in page],
        "total": stats.get("total", 0),
        "hasMore": more,
        "nextCursor": page[-1].id if more and page else None,
        "classes": names_list(dataset.class_names),
        "errorCount": stats.get("errors", 0),
    }


async def _image_and_dataset(
    session: AsyncSession, viewer: Account, image_id: str
) -> tuple[DatasetImage, Dataset, Account]:
    image = await ImageRepository(session).get(image_id)
    if image is None:
        raise NotFound(f"image '{image_id}' not found")
    row = await DatasetRepository(session).get_readable(viewer.id, image.dataset_id)
    if row is None:
        raise NotFound(f"image '{image_id}' not found")
    return image, row[0], row[1]


@router.get("/{image_id}", response_model=ImageDetail)
async def get_image(auth: DatasetsAuth, session: DbSession, files: Files, image_id: str) -> Body:
    """One image with its labels and a signed URL of its bytes."""
    image, dataset, _ = await _image_and_dataset(session, auth.account, image_id)
    view = image_view(files, image, labels=True, url=True)
    properties = ImageProperties(
        **view.model_dump(),
        dataset_id=dataset.id,
        filename=image.name,
        extension=image.ext.lstrip("."),
        annotation_count=image.label_count,
        created_at=image.created_at,
    )
    return client(
        properties=properties,
        labels=image.labels,
        classNames=names_list(dataset.class_names),
        metadata={},
        imageUrl=view.image_url,
    )


@router.patch("/{image_id}", response_model=ImageUpdated)
async def update_image(auth: DatasetsAuth, session: DbSession, image_id: str, data: LabelsUpdate) -> Body:
    """Replace an image's labels (normalized Label objects) and/or move it to another split."""
    image, dataset, owner = await _image_and_dataset(session, auth.account, image_id)
    dataset_service.require_owner(auth.account, (dataset, owner))
    if data.labels is not None:
        image.labels = _checked_labels(data.labels, dataset)
        image.label_count = len(image.labels)
    if data.split is not None:
        image.split = data.split
    dataset.version += 1
    await activity_service.record(
        session,
        auth.account_id,
        "image.updated",
        resource_type="image",
        resource_id=image.id,
        resource_name=image.name,
        message=f"Image '{image.name}' of dataset '{dataset.name}' updated",
    )
    return client(labels=image.labels, labelCount=image.label_count, split=image.split)


def _checked_labels(labels: list[dict[str, Any]], dataset: Dataset) -> list[dict[str, Any]]:
    classes = len(names_list(dataset.class_names))
    checked = []
    for index, raw in enumerate(labels):
        try:
            label = Label.from_wire(raw, kpt_shape=dataset.kpt_shape)
            label.validate(kpt_shape=dataset.kpt_shape, num_classes=classes or None)
        except FormatError as error:
            raise BadRequest(f"labels[{index}]: {error}", details=[{"field": f"labels.{index}"}]) from error
        checked.append(label.to_wire())
    return checked


@router.delete("/{image_id}", response_model=ImageDeleted)
async def delete_image(auth: DatasetsAuth, session: DbSession, image_id: str) -> Body:
    """Remove an image from its dataset; its file goes when no other dataset of the account uses it."""
    image, dataset, owner = await _image_and_dataset(session, auth.account, image_id)
    dataset_service.require_owner(auth.account, (dataset, owner))
    await session.delete(image)
    await session.flush()
    if not await ImageRepository(session).hash_in_use(image.owner_id, image.hash):
        delete_after_commit(session, [image_key(image.owner_id, image.hash, image.ext)])
    dataset.version += 1
    return client(deletedImageId=image.id, deletedCount=1)
