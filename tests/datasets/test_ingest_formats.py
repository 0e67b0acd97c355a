"""Every accepted upload format through the API (upload → ingest → ready), per-image problems and conflict policies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.datasets.formats.builders import write_json, write_ndjson
from tests.datasets.helpers import (
    DATASETS,
    all_images,
    create_dataset,
    ingest,
    new_dataset_from,
    picture,
    tar_dir,
    tree_members,
    yolo_tree,
    zip_members,
)
from tests.fixtures.assertions import ok
from tests.fixtures.factories import User
from yolostack.config import Settings

# What this checks (the archive formats' parsing) does not depend on the database.
pytestmark = pytest.mark.sqlite_only

DETECT = {
    "train/a": "0 0.5 0.5 0.2 0.2",
    "train/b": "1 0.3 0.3 0.1 0.1\n0 0.6 0.6 0.2 0.2",
    "val/c": "1 0.4 0.4 0.2 0.2",
}


def zipped(root: Path) -> Path:
    return zip_members(root.with_suffix(".zip"), tree_members(root))


def by_name(images: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {image["name"]: image for image in images}


async def exported_lines(client: httpx.AsyncClient, user: User, slug: str) -> list[dict[str, Any]]:
    export = ok(await client.get(f"{DATASETS}/{user.username}/{slug}/export", headers=user.headers))
    body = await client.get(urlsplit(export["downloadUrl"]).path)
    assert body.status_code == 200
    return [json.loads(line) for line in body.text.splitlines()]


def rounded(labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Labels with their coordinates to 6 decimals: a round trip through text may move the last bit."""
    return [
        {
            key: [round(value, 6) for value in values] if isinstance(values, list) else values
            for key, values in label.items()
        }
        for label in labels
    ]


def comparable(images: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """What a copy of a dataset must keep of each image, by content hash."""
    return {
        image["hash"]: (image["split"], image["width"], image["height"], image["ext"], rounded(image["labels"]))
        for image in images
    }


class TestIngestYolo:
    async def test_segment(self, client: httpx.AsyncClient, alice: User, tmp_path: Path) -> None:
        labels = {
            "train/a": "0 0.1 0.1 0.9 0.1 0.9 0.5 0.1 0.5",
            "train/b": "1 0.2 0.2 0.4 0.2 0.3 0.4\n0 0.5 0.5 0.7 0.5 0.6 0.8",
            "val/c": "1 0.1 0.1 0.5 0.1 0.5 0.5",
        }
        archive = zipped(yolo_tree(tmp_path / "seg", labels, ["road", "car"]))

        dataset = await new_dataset_from(client, alice, "seg", archive)

        assert (dataset["status"], dataset["task"], dataset["classNames"]) == ("ready", "segment", ["road", "car"])
        assert dataset["imageCount"] == 3
        assert dataset["splits"] == {"train": 2, "val": 1, "test": 0, "labeled": 3}
        images = by_name(await all_images(client, alice, "alice", "seg"))
        first = images["images/train/a.jpg"]["labels"][0]
        assert first["classId"] == 0
        assert first["segments"] == [0.1, 0.1, 0.9, 0.1, 0.9, 0.5, 0.1, 0.5]
        assert first["bbox"] == pytest.approx([0.5, 0.3, 0.8, 0.4])
        assert [len(label["segments"]) for label in images["images/train/b.jpg"]["labels"]] == [6, 6]

    async def test_pose(self, client: httpx.AsyncClient, alice: User, tmp_path: Path) -> None:
        labels = {
            "train/a": "0 0.5 0.5 0.4 0.4 0.4 0.4 2 0.6 0.4 2 0.5 0.6 0",
            "val/b": "0 0.5 0.5 0.2 0.2 0.45 0.45 1 0.55 0.45 1 0.5 0.55 2",
        }
        extra = {"kpt_shape": [3, 3], "flip_idx": [1, 0, 2]}
        archive = zipped(yolo_tree(tmp_path / "pose", labels, ["person"], extra))

        dataset = await new_dataset_from(client, alice, "pose", archive)

        assert (dataset["status"], dataset["task"], dataset["classNames"]) == ("ready", "pose", ["person"])
        assert (dataset["kptShape"], dataset["flipIdx"]) == ([3, 3], [1, 0, 2])
        assert dataset["splits"] == {"train": 1, "val": 1, "test": 0, "labeled": 2}
        (label,) = by_name(await all_images(client, alice, "alice", "pose"))["images/train/a.jpg"]["labels"]
        assert label["keypoints"] == [0.4, 0.4, 2.0, 0.6, 0.4, 2.0, 0.5, 0.6, 0.0]
        assert label["bbox"] == [0.5, 0.5, 0.4, 0.4]
        header = (await exported_lines(client, alice, "pose"))[0]
        assert (header["task"], header["kpt_shape"], header["flip_idx"]) == ("pose", [3, 3], [1, 0, 2])

    async def test_obb(self, client: httpx.AsyncClient, alice: User, tmp_path: Path) -> None:
        labels = {"train/a": "0 0.1 0.1 0.5 0.1 0.5 0.3 0.1 0.3", "val/b": "1 0.2 0.2 0.6 0.2 0.6 0.8 0.2 0.8"}
        archive = zipped(yolo_tree(tmp_path / "obb", labels, ["ship", "plane"]))

        dataset = await new_dataset_from(client, alice, "obb", archive)

        assert (dataset["status"], dataset["task"], dataset["classNames"]) == ("ready", "obb", ["ship", "plane"])
        assert dataset["imageCount"] == 2
        images = by_name(await all_images(client, alice, "alice", "obb"))
        (label,) = images["images/val/b.jpg"]["labels"]
        assert label["classId"] == 1
        assert label["obb"] == [0.2, 0.2, 0.6, 0.2, 0.6, 0.8, 0.2, 0.8]


class TestIngestClassify:
    @pytest.mark.parametrize("archive_name", ["flowers.zip", "flowers.tar.gz"])
    async def test_class_folders(
        self, client: httpx.AsyncClient, alice: User, tmp_path: Path, archive_name: str
    ) -> None:
        root = tmp_path / "flowers"
        for seed, path in enumerate(("train/rose/1.jpg", "train/tulip/2.jpg", "train/rose/3.png", "val/tulip/4.jpg")):
            picture(root / path, seed)
        archive = tar_dir(root, tmp_path / archive_name) if archive_name.endswith(".tar.gz") else zipped(root)

        dataset = await new_dataset_from(client, alice, "flowers", archive)

        assert (dataset["status"], dataset["task"], dataset["classNames"]) == ("ready", "classify", ["rose", "tulip"])
        assert dataset["splits"] == {"train": 3, "val": 1, "test": 0, "labeled": 4}
        images = by_name(await all_images(client, alice, "alice", "flowers"))
        assert images["train/rose/3.png"]["labels"] == [{"classId": 0}]
        assert images["train/rose/3.png"]["ext"] == ".png"
        assert images["val/tulip/4.jpg"]["labels"] == [{"classId": 1}]
        assert images["val/tulip/4.jpg"]["split"] == "val"


class TestIngestCoco:
    async def test_detect(self, client: httpx.AsyncClient, alice: User, tmp_path: Path) -> None:
        root = tmp_path / "coco"
        picture(root / "train2017/a.jpg", 1, (64, 48))
        picture(root / "train2017/b.jpg", 2, (64, 48))
        picture(root / "val2017/c.jpg", 3, (64, 48))
        categories = [{"id": 7, "name": "truck"}, {"id": 1, "name": "person"}]
        sized = {"width": 64, "height": 48}
        train = {
            "images": [{"id": 1, "file_name": "a.jpg", **sized}, {"id": 2, "file_name": "b.jpg", **sized}],
            "annotations": [
                {"id": 10, "image_id": 1, "category_id": 7, "bbox": [8, 12, 16, 24]},
                {"id": 11, "image_id": 1, "category_id": 1, "bbox": [0, 0, 64, 48]},
            ],
            "categories": categories,
        }
        val = {
            "images": [{"id": 5, "file_name": "c.jpg", **sized}],
            "annotations": [{"id": 20, "image_id": 5, "category_id": 1, "bbox": [16, 12, 32, 24]}],
            "categories": categories,
        }
        write_json(root / "annotations/instances_train2017.json", train)
        write_json(root / "annotations/instances_val2017.json", val)

        dataset = await new_dataset_from(client, alice, "coco", zipped(root))

        assert (dataset["status"], dataset["task"], dataset["classNames"]) == ("ready", "detect", ["person", "truck"])
        assert dataset["splits"] == {"train": 2, "val": 1, "test": 0, "labeled": 2}
        images = by_name(await all_images(client, alice, "alice", "coco"))
        assert images["train2017/a.jpg"]["labels"] == [
            {"classId": 1, "bbox": [0.25, 0.5, 0.25, 0.5]},
            {"classId": 0, "bbox": [0.5, 0.5, 1.0, 1.0]},
        ]
        assert images["train2017/b.jpg"]["labelCount"] == 0
        assert (images["val2017/c.jpg"]["width"], images["val2017/c.jpg"]["height"]) == (64, 48)

    async def test_pose(self, client: httpx.AsyncClient, alice: User, tmp_path: Path) -> None:
        root = tmp_path / "people"
        picture(root / "val2017/a.jpg", 1, (64, 48))
        picture(root / "val2017/b.jpg", 2, (64, 48))
        categories = [{"id": 1, "name": "person", "keypoints": ["nose", "left_eye", "right_eye"], "skeleton": [[1, 2]]}]
        annotations = [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [16, 12, 32, 24],
                "keypoints": [32, 24, 2, 16, 12, 1, 0, 0, 0],
            },
            {
                "id": 2,
                "image_id": 2,
                "category_id": 1,
                "bbox": [0, 0, 32, 24],
                "keypoints": [8, 6, 2, 24, 6, 2, 16, 18, 2],
            },
        ]
        images_json = [
            {"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
            {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48},
        ]
        write_json(
            root / "annotations/person_keypoints_val2017.json",
            {"images": images_json, "annotations": annotations, "categories": categories},
        )

        dataset = await new_dataset_from(client, alice, "people", zipped(root))

        assert (dataset["status"], dataset["task"], dataset["classNames"]) == ("ready", "pose", ["person"])
        assert (dataset["kptShape"], dataset["flipIdx"]) == ([3, 3], [0, 2, 1])
        assert dataset["splits"] == {"train": 0, "val": 2, "test": 0, "labeled": 2}
        (label,) = by_name(await all_images(client, alice, "alice", "people"))["val2017/a.jpg"]["labels"]
        assert label["bbox"] == [0.5, 0.5, 0.5, 0.5]
        assert label["keypoints"] == [0.5, 0.5, 2.0, 0.25, 0.25, 1.0, 0.0, 0.0, 0.0]


class TestIngestNdjson:
    async def test_export_of_this_server_round_trips(
        self, client: httpx.AsyncClient, alice: User, tmp_path: Path
    ) -> None:
        labels = {
            "train/a": "0 0.1 0.1 0.9 0.1 0.9 0.5 0.1 0.5",
            "train/b": "1 0.2 0.2 0.4 0.2 0.3 0.4",
            "val/c": "1 0.1 0.1 0.5 0.1 0.5 0.5",
            "train/d": None,
        }
        source = await new_dataset_from(
            client, alice, "source", zipped(yolo_tree(tmp_path / "src", labels, ["road", "car"]))
        )
        lines = await exported_lines(client, alice, "source")
        assert len(lines) == 1 + 4
        exported = tmp_path / "source.ndjson"
        exported.write_text("".join(json.dumps(line) + "\n" for line in lines))

        copy = await new_dataset_from(client, alice, "copy", exported)

        assert copy["status"] == "ready", copy
        assert (copy["task"], copy["classNames"], copy["errorCount"]) == ("segment", ["road", "car"], 0)
        assert (copy["imageCount"], copy["splits"]) == (source["imageCount"], source["splits"])

        originals = await all_images(client, alice, "alice", "source")
        copies = await all_images(client, alice, "alice", "copy")
        assert comparable(copies) == comparable(originals)

    async def test_foreign_image_urls_are_not_fetched(
        self, client: httpx.AsyncClient, alice: User, tmp_path: Path, settings: Settings
    ) -> None:
        header = {"type": "dataset", "task": "detect", "class_names": {"0": "cat"}}
        urls = [
            "http://127.0.0.1:9/x.jpg",
            "http://169.254.169.254/latest/meta-data/x.jpg",
            f"{settings.base_url}/files/forged-token/y.jpg",  # looks like ours, but not signed by us
        ]
        rows = [
            {
                "type": "image",
                "file": f"{index}.jpg",
                "url": url,
                "split": "train",
                "annotations": {"boxes": [[0, 0.5, 0.5, 0.2, 0.2]]},
            }
            for index, url in enumerate(urls)
        ]
        archive = write_ndjson(tmp_path / "foreign.ndjson", [header, *rows])

        dataset = await new_dataset_from(client, alice, "foreign", archive)

        assert dataset["status"] == "ready", dataset
        assert (dataset["imageCount"], dataset["errorCount"]) == (3, 3)
        for image in await all_images(client, alice, "alice", "foreign"):
            assert "remote images are not fetched" in image["error"]
            assert (image["bytes"], image["labelCount"]) == (0, 0)
        assert len(await exported_lines(client, alice, "foreign")) == 1  # only the header


class TestPerImageProblems:
    async def test_bad_images_and_labels_are_marked_not_fatal(
        self, client: httpx.AsyncClient, alice: User, tmp_path: Path
    ) -> None:
        labels = {**DETECT, "train/short": "0 0.5 0.5 0.2", "train/broken": "0 0.5 0.5 0.2 0.2"}
        root = yolo_tree(tmp_path / "mixed", labels, ["cat", "dog"])
        broken = root / "images/train/broken.jpg"
        broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])

        dataset = await new_dataset_from(client, alice, "mixed", zipped(root))

        assert dataset["status"] == "ready", dataset
        assert (dataset["imageCount"], dataset["errorCount"]) == (5, 2)
        errors = ok(await client.get(f"{DATASETS}/alice/mixed/images?hasError=true", headers=alice.headers))
        assert errors["errorCount"] == 2
        marked = by_name(errors["images"])
        assert sorted(marked) == ["images/train/broken.jpg", "images/train/short.jpg"]
        assert "expected 5 values, got 4" in marked["images/train/short.jpg"]["error"]
        assert "truncated" in marked["images/train/broken.jpg"]["error"]
        clean = ok(await client.get(f"{DATASETS}/alice/mixed/images?hasError=false", headers=alice.headers))
        assert len(clean["images"]) == 3
        assert all(image["error"] is None for image in clean["images"])
        exported = await exported_lines(client, alice, "mixed")
        assert sorted(line["file"] for line in exported[1:]) == ["a.jpg", "b.jpg", "c.jpg"]


class TestConflictPolicy:
    async def test_same_archive_twice_adds_nothing(
        self, client: httpx.AsyncClient, alice: User, tmp_path: Path
    ) -> None:
        archive = zipped(yolo_tree(tmp_path / "twice", DETECT, ["cat", "dog"]))
        dataset_id = await create_dataset(client, alice, "twice")
        first = await ingest(client, alice, "twice", dataset_id, archive)
        before = await all_images(client, alice, "alice", "twice")

        second = await ingest(client, alice, "twice", dataset_id, archive)

        assert second["status"] == "ready"
        assert (
            (second["imageCount"], second["classNames"])
            == (first["imageCount"], first["classNames"])
            == (3, ["cat", "dog"])
        )
        assert await all_images(client, alice, "alice", "twice") == before

    async def test_skip_keeps_existing_labels(self, client: httpx.AsyncClient, alice: User, tmp_path: Path) -> None:
        dataset_id = await create_dataset(client, alice, "keep")
        await ingest(client, alice, "keep", dataset_id, zipped(yolo_tree(tmp_path / "v1", DETECT, ["cat", "dog"])))
        relabelled = dict.fromkeys(DETECT, "1 0.5 0.5 0.9 0.9")
        archive = zipped(yolo_tree(tmp_path / "v2", relabelled, ["cat", "dog"]))

        dataset = await ingest(client, alice, "keep", dataset_id, archive, conflictPolicy="skip")

        assert dataset["imageCount"] == 3
        images = by_name(await all_images(client, alice, "alice", "keep"))
        assert images["images/train/a.jpg"]["labels"] == [{"classId": 0, "bbox": [0.5, 0.5, 0.2, 0.2]}]

    async def test_replace_updates_labels(self, client: httpx.AsyncClient, alice: User, tmp_path: Path) -> None:
        dataset_id = await create_dataset(client, alice, "swap")
        first = await ingest(
            client, alice, "swap", dataset_id, zipped(yolo_tree(tmp_path / "v1", DETECT, ["cat", "dog"]))
        )
        relabelled = dict.fromkeys(DETECT, "1 0.5 0.5 0.9 0.9")
        archive = zipped(yolo_tree(tmp_path / "v2", relabelled, ["cat", "dog"]))

        dataset = await ingest(client, alice, "swap", dataset_id, archive, conflictPolicy="replace")

        assert dataset["imageCount"] == 3
        assert dataset["version"] > first["version"]
        for image in await all_images(client, alice, "alice", "swap"):
            assert image["labels"] == [{"classId": 1, "bbox": [0.5, 0.5, 0.9, 0.9]}]

    async def test_target_split_puts_everything_there(
        self, client: httpx.AsyncClient, alice: User, tmp_path: Path
    ) -> None:
        dataset_id = await create_dataset(client, alice, "held")
        archive = zipped(yolo_tree(tmp_path / "held", DETECT, ["cat", "dog"]))

        dataset = await ingest(client, alice, "held", dataset_id, archive, targetSplit="val")

        assert dataset["splits"] == {"train": 0, "val": 3, "test": 0, "labeled": 3}
        assert {image["split"] for image in await all_images(client, alice, "alice", "held")} == {"val"}
