"""parse_classify: class folders, with or without train/val/test folders."""

from pathlib import Path

import pytest

from tests.datasets.formats.builders import make_image
from yolostack.datasets.formats import FormatError, Label, parse_classify
from yolostack.datasets.formats.classify import looks_like_classify


class TestParseClassify:
    def test_split_folders(self, tmp_path: Path) -> None:
        for path in ("train/dog/1.jpg", "train/cat/2.png", "valid/cat/3.jpg", "valid/bird/4.jpg", "test/dog/5.jpg"):
            make_image(tmp_path / path)
        dataset = parse_classify(tmp_path)
        assert dataset.task == "classify"
        assert dataset.class_names == {0: "bird", 1: "cat", 2: "dog"}
        assert dataset.kpt_shape is None
        assert sorted((image.name, image.split, image.labels[0].class_id) for image in dataset.images) == [
            ("test/dog/5.jpg", "test", 2),
            ("train/cat/2.png", "train", 1),
            ("train/dog/1.jpg", "train", 2),
            ("valid/bird/4.jpg", "val", 0),
            ("valid/cat/3.jpg", "val", 1),
        ]
        assert all(image.labels == [Label(image.labels[0].class_id)] for image in dataset.images)

    def test_class_folders_only_are_all_train(self, tmp_path: Path) -> None:
        for path in ("wrapper/ants/1.jpg", "wrapper/bees/2.jpg", "wrapper/bees/nested/3.jpg"):
            make_image(tmp_path / path)
        dataset = parse_classify(tmp_path)
        assert dataset.class_names == {0: "ants", 1: "bees"}
        assert [(image.name, image.split, image.labels) for image in dataset.images] == [
            ("ants/1.jpg", "train", [Label(0)]),
            ("bees/2.jpg", "train", [Label(1)]),
            ("bees/nested/3.jpg", "train", [Label(1)]),
        ]

    def test_loose_images_are_skipped_with_a_warning(self, tmp_path: Path) -> None:
        make_image(tmp_path / "train/cat/1.jpg")
        make_image(tmp_path / "train/stray.jpg")
        dataset = parse_classify(tmp_path)
        assert [image.name for image in dataset.images] == ["train/cat/1.jpg"]
        assert dataset.warnings == ["1 image(s) outside any class folder skipped"]

    def test_no_class_folders(self, tmp_path: Path) -> None:
        make_image(tmp_path / "a.jpg")
        with pytest.raises(FormatError, match="no class folders found"):
            parse_classify(tmp_path)


class TestLooksLikeClassify:
    def test_yes(self, tmp_path: Path) -> None:
        make_image(tmp_path / "train/cat/1.jpg")
        assert looks_like_classify(tmp_path)

    def test_yolo_folders_are_not_classes(self, tmp_path: Path) -> None:
        make_image(tmp_path / "train/images/1.jpg")
        assert not looks_like_classify(tmp_path)
        make_image(tmp_path / "other/images/1.jpg")
        assert not looks_like_classify(tmp_path / "other")
