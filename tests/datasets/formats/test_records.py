"""Label: the clients' wire shape and its validation."""

import math

import pytest

from yolostack.datasets.formats import FormatError, Label


class TestToWire:
    def test_omits_missing_geometry(self) -> None:
        assert Label(3).to_wire() == {"classId": 3}

    def test_carries_every_geometry_as_lists(self) -> None:
        label = Label(1, bbox=(0.5, 0.5, 0.2, 0.1), segments=[0.1, 0.1, 0.2, 0.1, 0.2, 0.2])
        assert label.to_wire() == {
            "classId": 1,
            "bbox": [0.5, 0.5, 0.2, 0.1],
            "segments": [0.1, 0.1, 0.2, 0.1, 0.2, 0.2],
        }


class TestFromWire:
    def test_round_trips(self) -> None:
        label = Label(
            2,
            bbox=(0.5, 0.4, 0.2, 0.3),
            keypoints=[0.5, 0.5, 2.0, 0.6, 0.4, 1.0],
            obb=[0.1, 0.1, 0.3, 0.1, 0.3, 0.2, 0.1, 0.2],
        )
        assert Label.from_wire(label.to_wire()) == label

    def test_ignores_unknown_keys(self) -> None:
        assert Label.from_wire({"classId": 0, "skeletonId": "abc"}) == Label(0)

    def test_accepts_integral_float_class(self) -> None:
        assert Label.from_wire({"classId": 4.0}).class_id == 4

    @pytest.mark.parametrize(
        ("wire", "message"),
        [
            ("nope", "must be an object"),
            ({"bbox": [0.5, 0.5, 0.1, 0.1]}, "needs a classId"),
            ({"classId": -1}, "non-negative"),
            ({"classId": 1.5}, "non-negative integer"),
            ({"classId": True}, "must be a number"),
            ({"classId": 0, "bbox": [0.5, 0.5, 0.1]}, "bbox must have 4 values, got 3"),
            ({"classId": 0, "bbox": [0.5, 0.5, 0.1, -0.2]}, "must not be negative"),
            ({"classId": 0, "bbox": [1.5, 0.5, 0.1, 0.1]}, "outside 0..1"),
            ({"classId": 0, "bbox": [math.nan, 0.5, 0.1, 0.1]}, "finite"),
            ({"classId": 0, "bbox": [math.inf, 0.5, 0.1, 0.1]}, "finite"),
            ({"classId": 0, "bbox": "0.5 0.5 0.1 0.1"}, "list of numbers"),
            ({"classId": 0, "segments": [0.1, 0.1, 0.2, 0.2]}, "at least 3 x,y points"),
            ({"classId": 0, "segments": [0.1, 0.1, 0.2, 0.2, 0.3]}, "at least 3 x,y points"),
            ({"classId": 0, "obb": [0.1] * 6}, "obb must have 8 values, got 6"),
            ({"classId": 0, "keypoints": [0.5, 0.5, 7.0]}, "visibility"),
            ({"classId": 0, "keypoints": [0.5]}, "x,y or x,y,v"),
            ({"classId": 0, "keypoints": [0.5, "x"]}, "must be a number"),
        ],
    )
    def test_refuses_bad_shapes(self, wire: object, message: str) -> None:
        with pytest.raises(FormatError, match=message):
            Label.from_wire(wire)

    def test_allows_the_ultralytics_tolerance(self) -> None:
        assert Label.from_wire({"classId": 0, "bbox": [1.005, -0.005, 0.01, 0.01]}).bbox == (1.005, -0.005, 0.01, 0.01)

    def test_keypoints_follow_kpt_shape(self) -> None:
        assert Label.from_wire({"classId": 0, "keypoints": [0.1, 0.2, 0.3, 0.4]}, kpt_shape=[2, 2]).keypoints == [
            0.1,
            0.2,
            0.3,
            0.4,
        ]
        with pytest.raises(FormatError, match="keypoints must have 6 values, got 4"):
            Label.from_wire({"classId": 0, "keypoints": [0.1, 0.2, 0.3, 0.4]}, kpt_shape=[2, 3])


class TestValidate:
    def test_refuses_a_class_beyond_the_names(self) -> None:
        with pytest.raises(FormatError, match="class 3 is out of range: the dataset has 3 classes"):
            Label(3).validate(num_classes=3)
