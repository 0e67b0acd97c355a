"""parse_coco: pixel boxes, polygons and keypoints become normalized labels with contiguous classes."""

import json
from pathlib import Path
from typing import Any

import pytest

from tests.datasets.formats.builders import make_image, write_json
from yolostack.datasets.formats import FormatError, ImageRecord, Label, parse_coco
from yolostack.datasets.formats.coco import flip_from_names, split_of

W, H = 64, 48
CATEGORIES = [{"id": 7, "name": "truck"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}]


def coco(
    images: list[dict[str, Any]], annotations: list[dict[str, Any]], categories: list[dict[str, Any]]
) -> dict[str, Any]:
    return {"info": {}, "images": images, "annotations": annotations, "categories": categories}


def image_entry(image_id: int, file_name: str, sized: bool = True) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": image_id, "file_name": file_name}
    if sized:
        entry.update(width=W, height=H)
    return entry


def by_name(images: list[ImageRecord]) -> dict[str, ImageRecord]:
    return {image.name: image for image in images}


class TestDetect:
    def build(self, root: Path) -> Path:
        make_image(root / "train2017/a.jpg", (W, H))
        make_image(root / "train2017/b.jpg", (W, H))
        make_image(root / "val2017/c.jpg", (W, H))
        train = coco(
            [image_entry(1, "a.jpg"), image_entry(2, "b.jpg"), image_entry(3, "gone.jpg")],
            [
                {"id": 10, "image_id": 1, "category_id": 7, "bbox": [8, 12, 16, 24], "iscrowd": 0},
                {"id": 11, "image_id": 1, "category_id": 1, "bbox": [0, 0, 64, 48], "iscrowd": 0},
                {"id": 12, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "iscrowd": 1},
                {"id": 13, "image_id": 2, "category_id": 99, "bbox": [0, 0, 10, 10]},
            ],
            CATEGORIES,
        )
        write_json(root / "annotations/instances_train2017.json", train)
        val = coco(
            [image_entry(5, "c.jpg")],
            [
                {"id": 20, "image_id": 5, "category_id": 3, "bbox": [-4, 40, 20, 20]},
                {"id": 21, "image_id": 5, "category_id": 3, "bbox": [5, 5, 0, 10]},
            ],
            CATEGORIES,
        )
        write_json(root / "annotations/instances_val2017.json", val)
        return root

    def test_boxes_classes_and_splits(self, tmp_path: Path) -> None:
        dataset = parse_coco(self.build(tmp_path))
        assert dataset.task == "detect"
        assert dataset.class_names == {0: "person", 1: "car", 2: "truck"}  # sorted category ids 1, 3, 7
        images = by_name(dataset.images)
        assert list(images) == ["train2017/a.jpg", "train2017/b.jpg", "val2017/c.jpg"]
        assert images["train2017/a.jpg"].split == "train"
        assert images["train2017/a.jpg"].labels == [
            Label(2, bbox=(0.25, 0.5, 0.25, 0.5)),
            Label(0, bbox=(0.5, 0.5, 1.0, 1.0)),
        ]
        assert images["val2017/c.jpg"].split == "val"
        # clipped to the image: x -4..16 -> 0..16, y 40..60 -> 40..48
        (clipped,) = images["val2017/c.jpg"].labels
        assert clipped.class_id == 1
        assert clipped.bbox == pytest.approx((0.125, 44 / 48, 0.25, 8 / 48))

    def test_problems_are_reported(self, tmp_path: Path) -> None:
        dataset = parse_coco(self.build(tmp_path))
        images = by_name(dataset.images)
        assert images["train2017/b.jpg"].error == "annotation 13 uses category 99, which is not in categories"
        assert images["train2017/b.jpg"].labels == []
        assert sorted(dataset.warnings) == [
            "1 annotation(s) with an empty box skipped",
            "1 crowd (iscrowd) annotation(s) skipped",
            "1 image(s) listed in the JSON were not found in the upload; skipped",
        ]

    def test_size_read_from_the_image_when_the_json_lacks_it(self, tmp_path: Path) -> None:
        make_image(tmp_path / "images/a.jpg", (W, H))
        annotations = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 32, 24]}]
        write_json(tmp_path / "annotations.json", coco([image_entry(1, "a.jpg", sized=False)], annotations, CATEGORIES))
        assert parse_coco(tmp_path).images[0].labels == [Label(0, bbox=(0.25, 0.25, 0.5, 0.5))]

    def test_roboflow_layout(self, tmp_path: Path) -> None:
        for split in ("train", "valid"):
            make_image(tmp_path / split / f"{split}.jpg", (W, H))
            annotations = [{"id": 1, "image_id": 0, "category_id": 0, "bbox": [0, 0, 32, 24]}]
            categories = [{"id": 0, "name": "things"}]
            write_json(
                tmp_path / split / "_annotations.coco.json",
                coco([image_entry(0, f"{split}.jpg")], annotations, categories),
            )
        dataset = parse_coco(tmp_path)
        assert sorted((image.name, image.split) for image in dataset.images) == [
            ("train/train.jpg", "train"),
            ("valid/valid.jpg", "val"),
        ]

    @pytest.mark.parametrize("value", ["NaN", "-Infinity", "1e400"])
    def test_a_non_finite_number_fails_the_file_with_the_reason(self, tmp_path: Path, value: str) -> None:
        make_image(tmp_path / "images/train/a.jpg", (W, H))
        document = coco([image_entry(1, "a.jpg")], [], [{"id": 1, "name": "cat"}])
        text = json.dumps(document).replace('"annotations": []', f'"annotations": [{{"bbox": [0, 0, {value}, 1]}}]')
        (tmp_path / "instances_train.json").write_text(text)
        with pytest.raises(FormatError, match="instances_train.json is not valid JSON .*(finite|out of range)"):
            parse_coco(tmp_path)

    def test_no_coco_json_is_a_format_error(self, tmp_path: Path) -> None:
        write_json(tmp_path / "other.json", {"hello": "world"})
        with pytest.raises(FormatError, match="no COCO annotation file"):
            parse_coco(tmp_path)


class TestSegment:
    def test_polygons_largest_kept_and_rle_skipped(self, tmp_path: Path) -> None:
        make_image(tmp_path / "images/train/a.jpg", (W, H))
        small = [0, 0, 8, 0, 8, 6]
        large = [16, 12, 48, 12, 48, 36, 16, 36]
        annotations = [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [16, 12, 32, 24], "segmentation": [small, large]},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [0, 0, 8, 6], "segmentation": [small]},
            {
                "id": 3,
                "image_id": 1,
                "category_id": 3,
                "bbox": [0, 0, 8, 6],
                "segmentation": {"counts": "abc", "size": [H, W]},
            },
            {"id": 4, "image_id": 1, "category_id": 3, "bbox": [0, 0, 8, 6], "segmentation": []},
        ]
        write_json(
            tmp_path / "annotations/instances_train.json", coco([image_entry(1, "a.jpg")], annotations, CATEGORIES)
        )
        dataset = parse_coco(tmp_path)
        assert dataset.task == "segment"
        assert dataset.images[0].labels == [
            Label(0, bbox=(0.5, 0.5, 0.5, 0.5), segments=[0.25, 0.25, 0.75, 0.25, 0.75, 0.75, 0.25, 0.75]),
            Label(1, bbox=(0.0625, 0.0625, 0.125, 0.125), segments=[0.0, 0.0, 0.125, 0.0, 0.125, 0.125]),
            Label(1, bbox=(0.0625, 0.0625, 0.125, 0.125)),
        ]
        assert sorted(dataset.warnings) == [
            "1 RLE mask annotation(s) skipped: only polygons are supported",
            "1 annotation(s) had several polygons; the largest was kept",
            "1 annotation(s) without a polygon kept as boxes only",
        ]


class TestPose:
    def test_keypoints_kpt_shape_and_flip_idx(self, tmp_path: Path) -> None:
        make_image(tmp_path / "val2017/a.jpg", (W, H))
        categories = [{"id": 1, "name": "person", "keypoints": ["nose", "left_eye", "right_eye"], "skeleton": [[1, 2]]}]
        annotations = [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [16, 12, 32, 24],
                "num_keypoints": 2,
                "keypoints": [32, 24, 2, 16, 12, 1, 0, 0, 0],
                "segmentation": [[16, 12, 48, 12, 48, 36]],
            },
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, 32, 24], "num_keypoints": 0},
        ]
        write_json(
            tmp_path / "annotations/person_keypoints_val2017.json",
            coco([image_entry(1, "a.jpg")], annotations, categories),
        )
        dataset = parse_coco(tmp_path)
        assert dataset.task == "pose"
        assert dataset.kpt_shape == [3, 3]
        assert dataset.flip_idx == [0, 2, 1]
        assert dataset.images[0].split == "val"
        assert dataset.images[0].labels == [
            Label(0, bbox=(0.5, 0.5, 0.5, 0.5), keypoints=[0.5, 0.5, 2.0, 0.25, 0.25, 1.0, 0.0, 0.0, 0.0]),
            Label(0, bbox=(0.25, 0.25, 0.5, 0.5), keypoints=[0.0] * 9),
        ]


class TestHelpers:
    @pytest.mark.parametrize(
        ("path", "split"),
        [
            ("annotations/instances_train2017.json", "train"),
            ("annotations/instances_val2017.json", "val"),
            ("annotations/image_info_test-dev2017.json", "test"),
            ("valid/_annotations.coco.json", "val"),
            ("annotations.json", "train"),
        ],
    )
    def test_split_of(self, path: str, split: str) -> None:
        assert split_of(Path(path)) == split

    def test_flip_from_names(self) -> None:
        names = ["nose", "left_eye", "right_eye", "left_ear", "right_ear"]
        assert flip_from_names(names) == [0, 2, 1, 4, 3]
        assert flip_from_names(["a", "b"]) is None
