"""The NDJSON export ultralytics trains from (clients.md §2.5), streamed into storage page by page."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.core.files import delete_after_commit
from yolostack.core.ids import new_id
from yolostack.datasets.formats.ndjson import ndjson_header, ndjson_image_line
from yolostack.datasets.formats.records import Label
from yolostack.datasets.repository import ImageRepository
from yolostack.storage.service import FileLinks
from yolostack.tables import Dataset, DatasetExport, DatasetImage, image_key

PAGE = 1000


def export_key(dataset: Dataset, links: FileLinks) -> str:
    """One export per dataset version and link period: the image URLs inside must outlive the download."""
    period = max(links.download_ttl // 2, 1)
    epoch = int(time.time()) // period
    return f"exports/{dataset.owner_id}/{dataset.id}/v{dataset.version}-{epoch}/{dataset.slug}.ndjson"


async def ensure_export(
    session: AsyncSession, links: FileLinks, dataset: Dataset, owner: str, base_url: str
) -> tuple[str, bool]:
    """Write the export unless this version's is already stored; returns its key and whether it was cached.

    Only the newest export of a dataset is kept: older ones go once this transaction commits.
    """
    key = export_key(dataset, links)
    previous = (await session.scalars(select(DatasetExport).where(DatasetExport.dataset_id == dataset.id))).all()
    if any(export.storage_key == key for export in previous) and await links.store.size(key) is not None:
        return key, True
    stored = await links.store.write(key, _lines(session, links, dataset, owner, base_url))
    for export in previous:
        await session.delete(export)
    delete_after_commit(session, [export.storage_key for export in previous if export.storage_key != key])
    await session.flush()
    session.add(
        DatasetExport(
            id=new_id("export"),
            dataset_id=dataset.id,
            owner_id=dataset.owner_id,
            storage_key=key,
            version=dataset.version,
            size=stored.size,
        )
    )
    return key, False


async def _lines(
    session: AsyncSession, links: FileLinks, dataset: Dataset, owner: str, base_url: str
) -> AsyncIterator[bytes]:
    names = {int(index): name for index, name in (dataset.class_names or {}).items()}
    header = ndjson_header(
        dataset.task,  # type: ignore[arg-type]
        names,
        kpt_shape=dataset.kpt_shape,
        flip_idx=dataset.flip_idx,
        name=dataset.slug,
        description=dataset.description,
        url=f"{base_url}/{owner}/datasets/{dataset.slug}",
        version=dataset.version,
    )
    yield _encode(header)
    images = ImageRepository(session)
    after: str | None = None
    while True:
        page = await images.stream_for_export(dataset.id, after, PAGE)
        if not page:
            return
        yield b"".join(_encode(_image_line(links, dataset, image)) for image in page)
        after = page[-1].id


def _image_line(links: FileLinks, dataset: Dataset, image: DatasetImage) -> dict[str, object]:
    filename = f"{image.hash}{image.ext}"
    url = links.download_url(image_key(image.owner_id, image.hash, image.ext), filename)
    labels = [Label.from_wire(label, kpt_shape=dataset.kpt_shape) for label in image.labels]
    return ndjson_image_line(
        image.split,  # type: ignore[arg-type]
        image.name.rsplit("/", 1)[-1],
        url,
        image.width,
        image.height,
        image.hash,
        labels,
        dataset.task,  # type: ignore[arg-type]
    )


def _encode(record: dict[str, object]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"
