"""Ultralytics NDJSON: the exact layout of clients.md §2.5, parsing it, and parse(write(x)) == x."""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.datasets.formats.builders import make_image, write_ndjson, write_text
from yolostack.datasets.formats import (
    FormatError,
    ImageRecord,
    Label,
    ParsedDataset,
    Split,
    ndjson_header,
    ndjson_image_line,
    parse_ndjson,
)
from yolostack.datasets.formats.geometry import box_of_points

URL = "https://storage.example.com/ds/images"
SEGMENT = [0.1, 0.1, 0.5, 0.1, 0.5, 0.4, 0.1, 0.4]
OBB = [0.2, 0.2, 0.6, 0.2, 0.6, 0.8, 0.2, 0.8]


def write_dataset(path: Path, dataset: ParsedDataset) -> Path:
    header = ndjson_header(dataset.task, dataset.class_names, kpt_shape=dataset.kpt_shape, flip_idx=dataset.flip_idx)
    lines = [header]
    for index, image in enumerate(dataset.images):
        assert image.url is not None
        line = ndjson_image_line(
            image.split, image.name, image.url, 64, 48, f"{index:032x}", image.labels, dataset.task
        )
        lines.append(line)
    return write_ndjson(path, lines)


def images(*labels: list[Label]) -> list[ImageRecord]:
    splits: tuple[Split, ...] = ("train", "val", "test")
    return [
        ImageRecord(name=f"{i}.jpg", split=splits[i % 3], url=f"{URL}/{i}.jpg", labels=list(image_labels))
        for i, image_labels in enumerate(labels)
    ]


DATASETS = {
    "detect": ParsedDataset(
        "detect",
        {0: "cat", 1: "dog"},
        None,
        None,
        images(
            [Label(0, bbox=(0.5, 0.5, 0.2, 0.2)), Label(1, bbox=(0.25, 0.75, 0.1, 0.3))],
            [],
            [Label(1, bbox=(0.5, 0.5, 1.0, 1.0))],
        ),
    ),
    "segment": ParsedDataset(
        "segment",
        {0: "road"},
        None,
        None,
        images(
            [Label(0, bbox=box_of_points(SEGMENT), segments=SEGMENT)], [Label(0, bbox=box_of_points(OBB), segments=OBB)]
        ),
    ),
    "pose": ParsedDataset(
        "pose",
        {0: "person"},
        [2, 3],
        [1, 0],
        images([Label(0, bbox=(0.5, 0.5, 0.4, 0.4), keypoints=[0.4, 0.4, 2.0, 0.6, 0.4, 0.0])], []),
    ),
    "obb": ParsedDataset(
        "obb",
        {0: "ship", 1: "plane"},
        None,
        None,
        images([Label(1, bbox=box_of_points(OBB), obb=OBB)], [Label(0, bbox=box_of_points(SEGMENT), obb=SEGMENT)]),
    ),
    "classify": ParsedDataset("classify", {0: "ants", 1: "bees"}, None, None, images([Label(1)], [Label(0)], [])),
}


class TestRoundTrip:
    @pytest.mark.parametrize("task", list(DATASETS))
    def test_parse_of_write_is_identity(self, tmp_path: Path, task: str) -> None:
        dataset = DATASETS[task]
        assert parse_ndjson(write_dataset(tmp_path / "ds.ndjson", dataset)) == dataset


class TestLayout:
    def test_header(self) -> None:
        header = ndjson_header(
            "pose", {1: "b", 0: "a"}, kpt_shape=[17, 3], flip_idx=[0], name="People", url="https://x/d", version=2
        )
        assert list(header.items()) == [
            ("type", "dataset"),
            ("task", "pose"),
            ("name", "People"),
            ("url", "https://x/d"),
            ("class_names", {"0": "a", "1": "b"}),
            ("kpt_shape", [17, 3]),
            ("flip_idx", [0]),
            ("version", 2),
        ]

    def test_detect_line(self) -> None:
        line = ndjson_image_line(
            "train", "a.jpg", f"{URL}/a.jpg", 640, 480, "abc", [Label(0, bbox=(0.5, 0.5, 0.2, 0.1))], "detect"
        )
        assert json.dumps(line) == json.dumps(
            {
                "type": "image",
                "file": "a.jpg",
                "url": f"{URL}/a.jpg",
                "width": 640,
                "height": 480,
                "split": "train",
                "hash": "abc",
                "annotations": {"boxes": [[0, 0.5, 0.5, 0.2, 0.1]]},
            }
        )

    @pytest.mark.parametrize(
        ("task", "label", "annotations"),
        [
            (
                "segment",
                Label(2, segments=[0.1, 0.1, 0.2, 0.1, 0.2, 0.2]),
                {"segments": [[2, 0.1, 0.1, 0.2, 0.1, 0.2, 0.2]]},
            ),
            (
                "pose",
                Label(0, bbox=(0.5, 0.5, 0.2, 0.2), keypoints=[0.5, 0.5, 2.0]),
                {"pose": [[0, 0.5, 0.5, 0.2, 0.2, 0.5, 0.5, 2.0]]},
            ),
            ("obb", Label(1, obb=OBB), {"obb": [[1, *OBB]]}),
            ("classify", Label(3), {"classification": [3]}),
            ("obb", Label(1, bbox=(0.5, 0.5, 0.2, 0.2)), {"obb": [[1, 0.4, 0.4, 0.6, 0.4, 0.6, 0.6, 0.4, 0.6]]}),
            ("detect", Label(1, segments=[0.1, 0.1, 0.5, 0.1, 0.5, 0.3]), {"boxes": [[1, 0.3, 0.2, 0.4, 0.2]]}),
        ],
    )
    def test_annotations_per_task(self, task: Any, label: Label, annotations: dict[str, Any]) -> None:
        line = ndjson_image_line("val", "a.jpg", URL, None, None, None, [label], task)
        assert list(line) == ["type", "file", "url", "split", "annotations"]
        assert list(line["annotations"]) == list(annotations)
        (rows,), (expected,) = line["annotations"].values(), annotations.values()
        assert len(rows) == len(expected)
        for row, want in zip(rows, expected, strict=True):
            assert row == pytest.approx(want)

    def test_unlabeled_image_has_empty_annotations(self) -> None:
        assert ndjson_image_line("train", "a.jpg", URL, 1, 1, None, [], "detect")["annotations"] == {}

    def test_pose_label_without_keypoints_cannot_be_written(self) -> None:
        with pytest.raises(FormatError, match="no keypoints"):
            ndjson_image_line("train", "a.jpg", URL, 1, 1, None, [Label(0, bbox=(0.5, 0.5, 0.1, 0.1))], "pose")


class TestParse:
    def header(self, **extra: Any) -> dict[str, Any]:
        return {"type": "dataset", "task": "detect", "class_names": {"0": "cat"}} | extra

    def line(self, annotations: Any, split: str = "train", file: str = "a.jpg") -> dict[str, Any]:
        return {"type": "image", "file": file, "url": f"{URL}/{file}", "split": split, "annotations": annotations}

    def test_only_the_first_annotations_key_counts(self, tmp_path: Path) -> None:
        path = write_ndjson(
            tmp_path / "d.ndjson", [self.header(), self.line({"boxes": [[0, 0.5, 0.5, 0.1, 0.1]], "segments": [[0]]})]
        )
        assert parse_ndjson(path).images[0].labels == [Label(0, bbox=(0.5, 0.5, 0.1, 0.1))]

    def test_nested_classification_is_accepted(self, tmp_path: Path) -> None:
        path = write_ndjson(tmp_path / "d.ndjson", [self.header(task="classify"), self.line({"classification": [[0]]})])
        assert parse_ndjson(path).images[0].labels == [Label(0)]

    def test_a_bad_row_marks_only_its_image(self, tmp_path: Path) -> None:
        lines = [
            self.header(),
            self.line({"boxes": [[0, 0.5, 0.5, 0.1, 0.1], [0, 0.5, 0.5]]}),
            self.line({"boxes": [[0, 0.5, 0.5, 0.1, 0.1]]}, file="b.jpg"),
        ]
        bad, good = parse_ndjson(write_ndjson(tmp_path / "d.ndjson", lines)).images
        assert (bad.labels, bad.error) == ([], "annotation 2: a box row needs 5 values, got 3")
        assert (good.labels, good.error) == ([Label(0, bbox=(0.5, 0.5, 0.1, 0.1))], None)

    def test_missing_class_names_are_filled_as_ultralytics_does(self, tmp_path: Path) -> None:
        dataset = parse_ndjson(
            write_ndjson(tmp_path / "d.ndjson", [self.header(), self.line({"boxes": [[2, 0.5, 0.5, 0.1, 0.1]]})])
        )
        assert dataset.class_names == {0: "cat", 1: "class1", 2: "class2"}
        assert dataset.warnings == ["class_names has no name for class(es) 1, 2; named class<id>"]

    def test_kpt_shape_is_inferred(self, tmp_path: Path) -> None:
        lines = [self.header(task="pose"), self.line({"pose": [[0, 0.5, 0.5, 0.2, 0.2, 0.5, 0.5, 2, 0.4, 0.4, 1]]})]
        dataset = parse_ndjson(write_ndjson(tmp_path / "d.ndjson", lines))
        assert dataset.kpt_shape == [2, 3]
        assert dataset.images[0].labels[0].keypoints == [0.5, 0.5, 2, 0.4, 0.4, 1]

    @pytest.mark.parametrize(
        ("lines", "message"),
        [
            ([], "is empty"),
            ([{"type": "image"}], "must be the dataset record"),
            ([{"type": "dataset", "task": "depth"}], "unsupported task 'depth'"),
            ([{"type": "dataset", "class_names": ["cat"]}], "class_names must be an object"),
            (
                [{"type": "dataset"}, {"type": "image", "file": "a.jpg", "url": URL, "split": "valid"}],
                "line 2: unknown split 'valid'",
            ),
            (
                [{"type": "dataset"}, {"type": "image", "url": URL, "split": "train"}],
                "line 2: an image needs a non-empty 'file'",
            ),
        ],
    )
    def test_structural_problems_fail_the_file(self, tmp_path: Path, lines: list[dict[str, Any]], message: str) -> None:
        with pytest.raises(FormatError, match=message):
            parse_ndjson(write_ndjson(tmp_path / "d.ndjson", lines))

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ('{"type": "image", "file": "a.jpg", "width": NaN}', "numbers must be finite"),
            ('{"type": "image", "file": "a.jpg", "width": 1e400}', "out of range"),
            ('{"type": "image", "file": "\\ud800.jpg"}', "lone surrogate"),
            ('{"type": "image", "file": "a\\u0000.jpg"}', "NUL"),
            ('{"type": "image", "extra": ' + "[" * 5000 + "]" * 5000 + "}", "nests deeper"),
        ],
    )
    def test_json_that_is_not_strict_fails_the_line(self, tmp_path: Path, text: str, reason: str) -> None:
        """As request bodies: read loosely, these would be stored altered or refused by PostgreSQL mid-ingest."""
        path = write_text(tmp_path / "d.ndjson", json.dumps(self.header()) + "\n" + text + "\n")
        with pytest.raises(FormatError, match=f"line 2 is not valid JSON \\(.*{reason}"):
            parse_ndjson(path)

    def test_invalid_json_line(self, tmp_path: Path) -> None:
        path = write_text(tmp_path / "d.ndjson", json.dumps(self.header()) + "\n{not json\n")
        with pytest.raises(FormatError, match="line 2 is not valid JSON"):
            parse_ndjson(path)

    def test_local_images_beside_the_file(self, tmp_path: Path) -> None:
        make_image(tmp_path / "images/train/a.jpg")
        line = self.line({}) | {"url": None}
        dataset = parse_ndjson(
            write_ndjson(
                tmp_path / "d.ndjson", [self.header(path="."), line, self.line({}, file="gone.jpg") | {"url": None}]
            )
        )
        assert [(image.name, image.path, image.url) for image in dataset.images] == [
            ("a.jpg", (tmp_path / "images/train/a.jpg").resolve(), None)
        ]
        assert dataset.warnings == ["1 image(s) have no url and no local file; skipped"]


class TestUltralyticsReadsWhatWeWrite:
    @pytest.mark.parametrize("task", ["detect", "segment", "pose", "obb"])
    def test_convert_ndjson_to_yolo(self, tmp_path: Path, task: str) -> None:
        converter = pytest.importorskip("ultralytics.data.converter")
        dataset = DATASETS[task]
        for image in dataset.images:
            make_image(tmp_path / "src" / "images" / image.split / image.name)
        path = write_dataset(tmp_path / "src" / "ds.ndjson", dataset)
        header, *rest = path.read_text().splitlines()
        write_text(path, "\n".join([json.dumps(json.loads(header) | {"path": "."}), *rest]) + "\n")
        data_yaml = asyncio.run(converter.convert_ndjson_to_yolo(path, output_path=tmp_path / "out"))
        written = sorted(p.read_text() for p in Path(data_yaml).parent.glob("labels/*/*.txt"))
        ours = [dict(json.loads(line))["annotations"] for line in rest]
        expected = sorted(
            "".join(" ".join(map(str, row)) + "\n" for row in next(iter(a.values()))) if a else "" for a in ours
        )
        assert written == expected


class TestParseBadBytes:
    def test_not_utf8(self, tmp_path: Path) -> None:
        path = tmp_path / "d.ndjson"
        path.write_bytes(b'{"type": "dataset"}\n{"file": "\xff\xfe"}\n')
        with pytest.raises(FormatError, match="not UTF-8 text"):
            parse_ndjson(path)
