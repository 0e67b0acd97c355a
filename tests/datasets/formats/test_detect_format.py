"""detect_format and parse_dataset: which parser an extracted upload goes to."""

import zipfile
from pathlib import Path

import pytest

from tests.datasets.formats.builders import make_image, write_json, write_ndjson, write_text, yolo_dataset
from yolostack.datasets.formats import FormatError, Label, detect_format, parse_dataset, probe_image, safe_extract


class TestDetectFormat:
    def test_yolo_with_data_yaml(self, tmp_path: Path) -> None:
        yolo_dataset(tmp_path / "wrapped" / "ds", {"train/a": "0 0.5 0.5 0.1 0.1"}, names=["x"])
        assert detect_format(tmp_path) == "yolo"

    def test_yolo_labels_without_a_yaml(self, tmp_path: Path) -> None:
        make_image(tmp_path / "train/images/a.jpg")
        write_text(tmp_path / "train/labels/a.txt", "0 0.5 0.5 0.1 0.1")
        assert detect_format(tmp_path) == "yolo"
        dataset = parse_dataset(tmp_path)
        assert dataset.class_names == {0: "class0"}
        assert dataset.images[0].labels == [Label(0, bbox=(0.5, 0.5, 0.1, 0.1))]

    def test_coco(self, tmp_path: Path) -> None:
        make_image(tmp_path / "images/a.jpg")
        document = {
            "images": [{"id": 1, "file_name": "a.jpg"}],
            "annotations": [],
            "categories": [{"id": 1, "name": "x"}],
        }
        write_json(tmp_path / "annotations/instances_train.json", document)
        assert detect_format(tmp_path) == "coco"

    def test_classify(self, tmp_path: Path) -> None:
        make_image(tmp_path / "ds/train/cat/a.jpg")
        make_image(tmp_path / "ds/val/dog/b.jpg")
        assert detect_format(tmp_path) == "classify"
        assert parse_dataset(tmp_path).class_names == {0: "cat", 1: "dog"}

    def test_ndjson_file_and_folder(self, tmp_path: Path) -> None:
        path = write_ndjson(
            tmp_path / "ds" / "export.ndjson", [{"type": "dataset", "task": "detect", "class_names": {}}]
        )
        write_ndjson(
            path, [{"type": "dataset"}, {"type": "image", "file": "a.jpg", "url": "https://x/a.jpg", "split": "train"}]
        )
        assert detect_format(path) == "ndjson"
        assert detect_format(tmp_path) == "ndjson"
        assert [image.url for image in parse_dataset(tmp_path).images] == ["https://x/a.jpg"]

    def test_loose_images_are_an_unlabeled_detect_dataset(self, tmp_path: Path) -> None:
        make_image(tmp_path / "a.jpg")
        assert detect_format(tmp_path) == "yolo"
        dataset = parse_dataset(tmp_path)
        assert dataset.task == "detect"
        assert [(image.name, image.split, image.labels) for image in dataset.images] == [("a.jpg", "train", [])]

    def test_nothing_usable(self, tmp_path: Path) -> None:
        write_text(tmp_path / "readme.md", "hello")
        with pytest.raises(FormatError, match="no images found"):
            detect_format(tmp_path)

    def test_a_file_that_is_not_ndjson(self, tmp_path: Path) -> None:
        with pytest.raises(FormatError, match="upload a zip or tar archive"):
            detect_format(write_text(tmp_path / "a.csv", "x"))

    def test_an_ndjson_without_images(self, tmp_path: Path) -> None:
        path = write_ndjson(tmp_path / "d.ndjson", [{"type": "dataset", "task": "detect"}])
        with pytest.raises(FormatError, match="no images found in the ndjson dataset"):
            parse_dataset(path)


class TestUploadToRecords:
    def test_zip_of_a_yolo_dataset(self, tmp_path: Path) -> None:
        source = yolo_dataset(
            tmp_path / "src" / "pets", {"train/a": "0 0.5 0.5 0.2 0.2", "val/b": "1 0.5 0.5 0.2"}, names=["cat", "dog"]
        )
        archive = tmp_path / "pets.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            for path in sorted(source.rglob("*")):
                zipped.write(path, path.relative_to(source.parent).as_posix())
            zipped.writestr("__MACOSX/pets/._data.yaml", b"junk")
        safe_extract(archive, tmp_path / "out")
        dataset = parse_dataset(tmp_path / "out")
        assert [(image.name, image.error) for image in dataset.images] == [
            ("pets/images/train/a.jpg", None),
            ("pets/images/val/b.jpg", "line 1: expected 5 values, got 4"),
        ]
        assert all(image.path is not None and probe_image(image.path).width == 32 for image in dataset.images)
