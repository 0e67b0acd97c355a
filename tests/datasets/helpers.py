"""Building small datasets on disk and pushing them through the API: create → upload → ingest → ready."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw

from tests.datasets.formats.builders import write_text, write_yaml
from tests.datasets.test_ingest_flow import upload_archive, wait_ready
from tests.fixtures.assertions import ok
from tests.fixtures.factories import User

DATASETS = "/api/datasets"


def picture(path: Path, seed: int, size: tuple[int, int] = (48, 48)) -> Path:
    """A small picture whose bytes differ for every seed (images are de-duplicated by content)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, (seed * 37 % 256, seed * 91 % 256, 90))
    ImageDraw.Draw(image).rectangle((2, 2, 2 + seed % (size[0] - 4), size[1] // 2), fill=(250, 200, 30))
    image.save(path)
    return path


def yolo_tree(
    root: Path, labels: Mapping[str, str | None], names: list[str], extra: Mapping[str, Any] | None = None
) -> Path:
    """``images/<split>/<stem>.jpg`` (distinct pictures) + ``labels/<split>/<stem>.txt`` + ``data.yaml``."""
    for seed, (key, text) in enumerate(labels.items()):
        picture(root / "images" / f"{key}.jpg", seed)
        if text is not None:
            write_text(root / "labels" / f"{key}.txt", text)
    write_yaml(
        root / "data.yaml", {"path": ".", "train": "images/train", "val": "images/val", "names": names, **(extra or {})}
    )
    return root


def zip_members(target: Path, members: Mapping[str, bytes]) -> Path:
    """A deflated zip holding exactly these member names, unsanitized."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target


def tree_members(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` as ``{relative posix name: bytes}``."""
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def tar_dir(source: Path, target: Path) -> Path:
    """A tar (gzipped when the name ends in .gz or .tgz) of every file under ``source``."""
    gzipped = target.name.endswith((".gz", ".tgz"))
    with tarfile.open(target, "w:gz") if gzipped else tarfile.open(target, "w") as archive:
        for name, data in tree_members(source).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return target


async def create_dataset(client: httpx.AsyncClient, user: User, slug: str, **fields: Any) -> str:
    """Create through the clients' body shape; returns the dataset id."""
    body = ok(await client.post(DATASETS, headers=user.headers, json={"dataset": slug, "name": slug, **fields}), 201)
    dataset_id: str = body["id"]
    return dataset_id


async def ingest(
    client: httpx.AsyncClient, user: User, slug: str, dataset_id: str, archive: Path, **options: Any
) -> dict[str, Any]:
    """Upload ``archive``, ingest it with ``options`` (targetSplit, conflictPolicy) and wait for the outcome."""
    session_id = await upload_archive(client, user, dataset_id, archive)
    ok(
        await client.post(
            f"{DATASETS}/{user.username}/{slug}/ingest", headers=user.headers, json={"sessionId": session_id, **options}
        ),
        202,
    )
    return await wait_ready(client, user, slug)


async def new_dataset_from(client: httpx.AsyncClient, user: User, slug: str, archive: Path) -> dict[str, Any]:
    """A new dataset ingested from ``archive``; returns the finished dataset (``ready`` or ``failed``)."""
    return await ingest(client, user, slug, await create_dataset(client, user, slug), archive)


async def all_images(
    client: httpx.AsyncClient, user: User, owner: str, slug: str, query: str = ""
) -> list[dict[str, Any]]:
    """Every image of a dataset with its labels, following ``nextCursor`` to the end."""
    images: list[dict[str, Any]] = []
    cursor = ""
    while True:
        url = f"{DATASETS}/{owner}/{slug}/images?limit=1000&includeLabels=true{query}{cursor}"
        page = ok(await client.get(url, headers=user.headers))
        images.extend(page["images"])
        if page["nextCursor"] is None:
            return images
        cursor = f"&cursor={page['nextCursor']}"
