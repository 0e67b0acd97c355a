"""parse_yolo: data.yaml, images/ -> labels/ and the task the label lines describe."""

from pathlib import Path

import pytest

from tests.datasets.formats.builders import make_image, write_text, write_yaml, yolo_dataset
from yolostack.datasets.formats import FormatError, ImageRecord, Label, parse_yolo
from yolostack.datasets.formats.yolo_labels import label_path


def by_name(images: list[ImageRecord]) -> dict[str, ImageRecord]:
    return {image.name: image for image in images}


class TestDetect:
    def test_reads_names_splits_and_boxes(self, tmp_path: Path) -> None:
        labels = {
            "train/a": "0 0.5 0.5 0.2 0.2\n1 0.25 0.75 0.1 0.3\n",
            "train/b": None,
            "val/c": "1 0.5 0.5 1 1",
        }
        dataset = parse_yolo(yolo_dataset(tmp_path, labels, names=["cat", "dog"]))
        assert dataset.task == "detect"
        assert dataset.class_names == {0: "cat", 1: "dog"}
        assert dataset.kpt_shape is None
        assert dataset.warnings == []
        images = by_name(dataset.images)
        assert list(images) == ["images/train/a.jpg", "images/train/b.jpg", "images/val/c.jpg"]
        assert images["images/train/a.jpg"].labels == [
            Label(0, bbox=(0.5, 0.5, 0.2, 0.2)),
            Label(1, bbox=(0.25, 0.75, 0.1, 0.3)),
        ]
        assert images["images/train/a.jpg"].split == "train"
        assert images["images/train/a.jpg"].path == (tmp_path / "images/train/a.jpg").resolve()
        assert images["images/train/b.jpg"].labels == []
        assert images["images/train/b.jpg"].error is None
        assert images["images/val/c.jpg"].split == "val"
        assert images["images/val/c.jpg"].labels == [Label(1, bbox=(0.5, 0.5, 1.0, 1.0))]

    @pytest.mark.parametrize(
        ("text", "error"),
        [
            ("0 0.5 0.5 0.2", "line 1: expected 5 values, got 4"),
            ("0 0.5 0.5 0.2 0.2\n\n0 0.5 0.5 0.2", "line 3: expected 5 values, got 4"),
            ("2 0.5 0.5 0.2 0.2", "line 1: class 2 is out of range: the dataset has 2 classes"),
            ("-1 0.5 0.5 0.2 0.2", "line 1: class '-1' must be a non-negative integer"),
            ("0.5 0.5 0.5 0.2 0.2", "line 1: class '0.5' must be a non-negative integer"),
            ("0 0.5 abc 0.2 0.2", "line 1: 'abc' is not a number"),
            ("0 0.5 nan 0.2 0.2", "line 1: 'nan' is not a finite number"),
            ("0 1.5 0.5 0.2 0.2", "line 1: bbox value 1.5 is outside 0..1: coordinates must be normalized"),
            ("0 0.5 0.5 0.2\n0 0.5 0.5", "line 1: expected 5 values, got 4 (and 1 more bad line(s))"),
        ],
    )
    def test_a_bad_line_marks_only_its_image(self, tmp_path: Path, text: str, error: str) -> None:
        labels = {"train/bad": text, "train/good": "1 0.5 0.5 0.1 0.1"}
        images = by_name(parse_yolo(yolo_dataset(tmp_path, labels, names=["cat", "dog"])).images)
        assert images["images/train/bad.jpg"].error == error
        assert images["images/train/bad.jpg"].labels == []
        assert images["images/train/good.jpg"].error is None
        assert images["images/train/good.jpg"].labels == [Label(1, bbox=(0.5, 0.5, 0.1, 0.1))]

    def test_integral_float_classes_and_a_bom_are_accepted(self, tmp_path: Path) -> None:
        dataset = parse_yolo(yolo_dataset(tmp_path, {"train/a": "\ufeff1.0 0.5 0.5 0.2 0.2"}, names=["a", "b"]))
        assert dataset.images[0].labels == [Label(1, bbox=(0.5, 0.5, 0.2, 0.2))]

    def test_a_polygon_in_a_detect_dataset_becomes_its_box(self, tmp_path: Path) -> None:
        labels = {
            "train/a": "0 0.5 0.5 0.2 0.2",
            "train/b": "0 0.5 0.5 0.2 0.2",
            "train/c": "0 0.1 0.2 0.5 0.2 0.3 0.6",
        }
        images = by_name(parse_yolo(yolo_dataset(tmp_path, labels, names=["a"])).images)
        (label,) = images["images/train/c.jpg"].labels
        assert label.bbox == pytest.approx((0.3, 0.4, 0.4, 0.4))
        assert label.segments == [0.1, 0.2, 0.5, 0.2, 0.3, 0.6]


class TestTasks:
    def test_segment(self, tmp_path: Path) -> None:
        labels = {
            "train/a": "0 0.1 0.1 0.9 0.1 0.9 0.5 0.1 0.5\n1 0.2 0.2 0.4 0.2 0.3 0.4",
            "val/b": "0 0.5 0.5 0.2 0.2",
        }
        dataset = parse_yolo(yolo_dataset(tmp_path, labels, names={0: "road", 1: "car"}))
        assert dataset.task == "segment"
        images = by_name(dataset.images)
        first, second = images["images/train/a.jpg"].labels
        assert first.segments == [0.1, 0.1, 0.9, 0.1, 0.9, 0.5, 0.1, 0.5]
        assert first.bbox == pytest.approx((0.5, 0.3, 0.8, 0.4))
        assert (second.class_id, second.segments) == (1, [0.2, 0.2, 0.4, 0.2, 0.3, 0.4])
        assert second.bbox == pytest.approx((0.3, 0.3, 0.2, 0.2))
        assert images["images/val/b.jpg"].error == "line 1: expected class + 3 or more x,y points, got a box (5 values)"

    def test_pose(self, tmp_path: Path) -> None:
        labels = {"train/a": "0 0.5 0.5 0.4 0.4 0.4 0.4 2 0.6 0.4 2 0.5 0.6 0", "val/b": "0 0.5 0.5 0.4 0.4 0.4 0.4 2"}
        extra = {"kpt_shape": [3, 3], "flip_idx": [1, 0, 2]}
        dataset = parse_yolo(yolo_dataset(tmp_path, labels, names=["person"], extra=extra))
        assert dataset.task == "pose"
        assert dataset.kpt_shape == [3, 3]
        assert dataset.flip_idx == [1, 0, 2]
        images = by_name(dataset.images)
        assert images["images/train/a.jpg"].labels == [
            Label(0, bbox=(0.5, 0.5, 0.4, 0.4), keypoints=[0.4, 0.4, 2.0, 0.6, 0.4, 2.0, 0.5, 0.6, 0.0])
        ]
        assert images["images/val/b.jpg"].error == "line 1: expected 14 values, got 8"

    def test_pose_with_two_dim_keypoints(self, tmp_path: Path) -> None:
        labels = {"train/a": "0 0.5 0.5 0.4 0.4 0.4 0.4 0.6 0.4"}
        dataset = parse_yolo(yolo_dataset(tmp_path, labels, names=["p"], extra={"kpt_shape": [2, 2]}))
        assert dataset.images[0].labels == [Label(0, bbox=(0.5, 0.5, 0.4, 0.4), keypoints=[0.4, 0.4, 0.6, 0.4])]

    def test_obb(self, tmp_path: Path) -> None:
        labels = {"train/a": "0 0.1 0.1 0.5 0.1 0.5 0.3 0.1 0.3", "val/b": "1 0.2 0.2 0.6 0.2 0.6 0.8 0.2 0.8"}
        dataset = parse_yolo(yolo_dataset(tmp_path, labels, names=["ship", "plane"]))
        assert dataset.task == "obb"
        (label,) = by_name(dataset.images)["images/train/a.jpg"].labels
        assert label.obb == [0.1, 0.1, 0.5, 0.1, 0.5, 0.3, 0.1, 0.3]
        assert label.bbox == pytest.approx((0.3, 0.2, 0.4, 0.2))

    def test_task_in_data_yaml_wins(self, tmp_path: Path) -> None:
        labels = {"train/a": "0 0.1 0.1 0.5 0.1 0.5 0.3 0.1 0.3"}
        dataset = parse_yolo(yolo_dataset(tmp_path, labels, names=["a"], extra={"task": "segment"}))
        assert dataset.task == "segment"
        assert dataset.images[0].labels[0].segments == [0.1, 0.1, 0.5, 0.1, 0.5, 0.3, 0.1, 0.3]

    def test_pose_without_kpt_shape_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(FormatError, match="kpt_shape"):
            parse_yolo(yolo_dataset(tmp_path, {"train/a": "0 0.5 0.5 0.1 0.1"}, names=["a"], extra={"task": "pose"}))


class TestDataYaml:
    def test_names_from_nc_only(self, tmp_path: Path) -> None:
        dataset = parse_yolo(yolo_dataset(tmp_path, {"train/a": "1 0.5 0.5 0.1 0.1"}, extra={"nc": 2}))
        assert dataset.class_names == {0: "class0", 1: "class1"}

    def test_names_inferred_when_missing(self, tmp_path: Path) -> None:
        dataset = parse_yolo(yolo_dataset(tmp_path, {"train/a": "2 0.5 0.5 0.1 0.1"}))
        assert dataset.class_names == {0: "class0", 1: "class1", 2: "class2"}
        assert any("no names" in warning for warning in dataset.warnings)

    def test_names_with_gaps_are_filled(self, tmp_path: Path) -> None:
        dataset = parse_yolo(yolo_dataset(tmp_path, {"train/a": "2 0.5 0.5 0.1 0.1"}, names={0: "a", 2: "c"}))
        assert dataset.class_names == {0: "a", 1: "class1", 2: "c"}

    def test_bad_yaml_is_a_format_error(self, tmp_path: Path) -> None:
        make_image(tmp_path / "images/train/a.jpg")
        write_text(tmp_path / "data.yaml", "names: [a, b\ntrain: images/train\n")
        with pytest.raises(FormatError, match="data.yaml is not valid YAML"):
            parse_yolo(tmp_path)

    def test_bad_kpt_shape(self, tmp_path: Path) -> None:
        with pytest.raises(FormatError, match="kpt_shape must be"):
            parse_yolo(yolo_dataset(tmp_path, {"train/a": ""}, names=["a"], extra={"kpt_shape": [17, 4]}))

    def test_bad_flip_idx_is_dropped_with_a_warning(self, tmp_path: Path) -> None:
        extra = {"kpt_shape": [2, 2], "flip_idx": [0]}
        dataset = parse_yolo(yolo_dataset(tmp_path, {"train/a": ""}, names=["a"], extra=extra))
        assert dataset.flip_idx is None
        assert any("flip_idx" in warning for warning in dataset.warnings)


class TestLayouts:
    def test_roboflow_export(self, tmp_path: Path) -> None:
        for split in ("train", "valid", "test"):
            make_image(tmp_path / split / "images" / f"{split}1.jpg")
            write_text(tmp_path / split / "labels" / f"{split}1.txt", "0 0.5 0.5 0.2 0.2")
        config = {
            "train": "../train/images",
            "val": "../valid/images",
            "test": "../test/images",
            "nc": 1,
            "names": ["x"],
        }
        write_yaml(tmp_path / "data.yaml", config)
        dataset = parse_yolo(tmp_path)
        assert [(image.name, image.split) for image in dataset.images] == [
            ("train/images/train1.jpg", "train"),
            ("valid/images/valid1.jpg", "val"),
            ("test/images/test1.jpg", "test"),
        ]
        assert all(image.labels == [Label(0, bbox=(0.5, 0.5, 0.2, 0.2))] for image in dataset.images)

    def test_image_lists_in_txt_files(self, tmp_path: Path) -> None:
        for name in ("a", "b", "c"):
            make_image(tmp_path / "images" / f"{name}.jpg")
            write_text(tmp_path / "labels" / f"{name}.txt", "0 0.5 0.5 0.2 0.2")
        write_text(tmp_path / "train.txt", "./images/a.jpg\n./images/b.jpg\n./images/missing.jpg\n")
        write_text(tmp_path / "val.txt", "images/c.jpg\n")
        write_yaml(tmp_path / "data.yaml", {"train": "train.txt", "val": "val.txt", "names": ["x"]})
        dataset = parse_yolo(tmp_path)
        assert [(image.name, image.split) for image in dataset.images] == [
            ("images/a.jpg", "train"),
            ("images/b.jpg", "train"),
            ("images/c.jpg", "val"),
        ]
        assert dataset.warnings == ["train.txt: 1 listed image(s) were not found in the upload"]

    def test_list_of_folders_and_an_absolute_path(self, tmp_path: Path) -> None:
        root = tmp_path / "upload"
        make_image(root / "ds/images/train/a.jpg")
        make_image(root / "ds/images/extra/b.jpg")
        make_image(root / "ds/images/val/c.jpg")
        config = {
            "path": "/content/datasets/ds",
            "train": ["images/train", "images/extra"],
            "val": "/content/datasets/ds/images/val",
            "names": {0: "x"},
        }
        write_yaml(root / "ds/data.yaml", config)
        dataset = parse_yolo(root)
        assert [(image.name, image.split) for image in dataset.images] == [
            ("ds/images/train/a.jpg", "train"),
            ("ds/images/extra/b.jpg", "train"),
            ("ds/images/val/c.jpg", "val"),
        ]

    def test_paths_outside_the_upload_are_ignored(self, tmp_path: Path) -> None:
        make_image(tmp_path / "outside/images/x.jpg")
        root = tmp_path / "upload"
        make_image(root / "images/train/a.jpg")
        write_yaml(root / "data.yaml", {"train": "images/train", "val": "../outside/images", "names": ["x"]})
        dataset = parse_yolo(root)
        assert [image.name for image in dataset.images] == ["images/train/a.jpg"]
        assert "data.yaml val: '../outside/images' was not found in the upload" in dataset.warnings

    def test_conventional_folders_without_split_keys(self, tmp_path: Path) -> None:
        make_image(tmp_path / "images/train/a.jpg")
        make_image(tmp_path / "images/val/b.jpg")
        write_yaml(tmp_path / "data.yaml", {"names": ["x"]})
        dataset = parse_yolo(tmp_path)
        assert [(image.name, image.split) for image in dataset.images] == [
            ("images/train/a.jpg", "train"),
            ("images/val/b.jpg", "val"),
        ]

    def test_an_image_in_two_splits_is_kept_once(self, tmp_path: Path) -> None:
        make_image(tmp_path / "images/a.jpg")
        write_yaml(tmp_path / "data.yaml", {"train": "images", "val": "images", "names": ["x"]})
        dataset = parse_yolo(tmp_path)
        assert [(image.name, image.split) for image in dataset.images] == [("images/a.jpg", "train")]
        assert any("more than one split" in warning for warning in dataset.warnings)

    def test_hidden_files_and_unsupported_images_are_skipped(self, tmp_path: Path) -> None:
        make_image(tmp_path / "images/train/a.jpg")
        make_image(tmp_path / "images/train/._a.jpg")
        make_image(tmp_path / "images/train/__MACOSX/b.jpg")
        make_image(tmp_path / "images/train/anim.gif")
        write_yaml(tmp_path / "data.yaml", {"train": "images/train", "names": ["x"]})
        dataset = parse_yolo(tmp_path)
        assert [image.name for image in dataset.images] == ["images/train/a.jpg"]
        assert any("unsupported format" in warning for warning in dataset.warnings)

    def test_no_images_is_a_format_error(self, tmp_path: Path) -> None:
        write_yaml(tmp_path / "data.yaml", {"train": "images/train", "names": ["x"]})
        with pytest.raises(FormatError, match="no images found"):
            parse_yolo(tmp_path)


class TestLabelPath:
    @pytest.mark.parametrize(
        "relative",
        ["images/train/a.jpg", "ds/images/val/b.c.png", "train/images/x.jpeg", "images/sub/images/y.jpg", "flat/z.jpg"],
    )
    def test_matches_ultralytics_img2label_paths(self, tmp_path: Path, relative: str) -> None:
        img2label_paths = pytest.importorskip("ultralytics.data.utils").img2label_paths
        assert str(label_path(tmp_path, tmp_path / relative)) == img2label_paths([str(tmp_path / relative)])[0]
