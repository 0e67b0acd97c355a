"""Each op against ultralytics' own function on the same inputs."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch
from ultralytics.data.augment import LetterBox, classify_transforms
from ultralytics.engine.results import Results
from ultralytics.utils import nms as unms
from ultralytics.utils import ops as uops

from yolostack_engine.ops.boxes import scale_boxes, scale_coords, xywhr_to_corners
from yolostack_engine.ops.classify import classify_resize_crop
from yolostack_engine.ops.letterbox import check_imgsz, letterbox, to_tensor
from yolostack_engine.ops.masks import masks_to_segments, process_mask
from yolostack_engine.ops.nms import non_max_suppression
from yolostack_engine.results import Prediction

RNG = np.random.default_rng(0)
SHAPES = [(1080, 810), (720, 1280), (333, 517), (64, 64), (1, 300)]


def _predictions(batch: int, nc: int, extra: int, n: int, size: float = 640.0) -> np.ndarray:
    """Return raw (B, 4+nc+extra, N) predictions with clustered boxes so NMS has work to do."""
    xy = RNG.uniform(0, size, (batch, 2, n))
    wh = RNG.uniform(4, size / 3, (batch, 2, n))
    scores = RNG.uniform(0, 1, (batch, nc, n)) ** 3
    rest = RNG.normal(0, 1, (batch, extra, n))
    return np.concatenate([xy, wh, scores, rest], 1).astype(np.float32)


class TestLetterbox:
    @pytest.mark.parametrize("shape", SHAPES)
    @pytest.mark.parametrize("auto", [True, False])
    @pytest.mark.parametrize("imgsz", [640, 320])
    def test_matches_ultralytics(self, shape: tuple[int, int], auto: bool, imgsz: int) -> None:
        image = RNG.integers(0, 255, (*shape, 3), dtype=np.uint8)
        expected: Any = LetterBox((imgsz, imgsz), auto=auto, stride=32)(image=image)
        ours, params = letterbox(image, (imgsz, imgsz), auto=auto, stride=32)
        np.testing.assert_array_equal(ours, expected)
        assert params.shape == expected.shape[:2]

    def test_tensor_matches_predictor_preprocess(self) -> None:
        image = RNG.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        expected = torch.from_numpy(image).unsqueeze(0).permute(0, 3, 1, 2).flip(1).float().div_(255).numpy()
        tensor = to_tensor(image)
        assert tensor.flags.c_contiguous
        assert tensor.dtype == np.float32
        np.testing.assert_array_equal(tensor, expected)

    @pytest.mark.parametrize("imgsz", [1, 320, 321, 640, 650])
    def test_check_imgsz(self, imgsz: int) -> None:
        from ultralytics.utils.checks import check_imgsz as ucheck

        assert check_imgsz(imgsz, 32) == ucheck(imgsz, stride=32)  # type: ignore[no-untyped-call]


class TestNMS:
    @pytest.mark.parametrize(("conf", "iou", "max_det"), [(0.25, 0.7, 300), (0.05, 0.45, 50), (0.5, 0.3, 5)])
    def test_detect(self, conf: float, iou: float, max_det: int) -> None:
        preds = _predictions(2, 3, 0, 800)
        expected = unms.non_max_suppression(torch.from_numpy(preds), conf, iou, max_det=max_det)
        for ours, ref in zip(non_max_suppression(preds, conf, iou, max_det=max_det), expected, strict=True):
            np.testing.assert_allclose(ours, ref.numpy(), atol=1e-4)

    def test_extra_channels_with_nc(self) -> None:
        preds = _predictions(1, 2, 32, 600)
        expected = unms.non_max_suppression(torch.from_numpy(preds), 0.2, 0.7, nc=2)[0].numpy()
        ours = non_max_suppression(preds, 0.2, 0.7, nc=2)[0]
        assert ours.shape[1] == 6 + 32
        np.testing.assert_allclose(ours, expected, atol=1e-4)

    @pytest.mark.parametrize("max_det", [300, 10])
    def test_rotated(self, max_det: int) -> None:
        preds = _predictions(1, 3, 1, 700)
        kwargs: dict[str, Any] = {"nc": 3, "rotated": True, "max_det": max_det}
        expected = unms.non_max_suppression(torch.from_numpy(preds), 0.1, 0.5, **kwargs)[0].numpy()
        ours = non_max_suppression(preds, 0.1, 0.5, nc=3, rotated=True, max_det=max_det)[0]
        np.testing.assert_allclose(ours, expected, atol=1e-4)

    def test_end2end(self) -> None:
        preds = RNG.uniform(0, 1, (2, 300, 6)).astype(np.float32)
        expected = unms.non_max_suppression(torch.from_numpy(preds), 0.3, 0.7, max_det=100, end2end=True)
        for ours, ref in zip(non_max_suppression(preds, 0.3, 0.7, max_det=100, end2end=True), expected, strict=True):
            np.testing.assert_array_equal(ours, ref.numpy())

    def test_nothing_above_threshold(self) -> None:
        preds = np.zeros((1, 4 + 2 + 32, 100), dtype=np.float32)
        assert non_max_suppression(preds, 0.25, 0.7, nc=2)[0].shape == (0, 6 + 32)


class TestBoxes:
    @pytest.mark.parametrize("orig", SHAPES[:3])
    def test_scale_boxes_and_coords(self, orig: tuple[int, int]) -> None:
        inp = (480, 640)
        boxes = RNG.uniform(-10, 700, (20, 4)).astype(np.float32)
        expected: Any = uops.scale_boxes(inp, torch.from_numpy(boxes.copy()), orig)
        np.testing.assert_allclose(scale_boxes(inp, boxes.copy(), orig), expected.numpy(), rtol=1e-6)
        rboxes = boxes.copy()
        expected = uops.scale_boxes(inp, torch.from_numpy(rboxes.copy()), orig, xywh=True)
        np.testing.assert_allclose(scale_boxes(inp, rboxes, orig, xywh=True), expected.numpy(), rtol=1e-6)
        kpts = RNG.uniform(-10, 700, (5, 17, 3)).astype(np.float32)
        expected = uops.scale_coords(inp, torch.from_numpy(kpts.copy()), orig).numpy()
        np.testing.assert_allclose(scale_coords(inp, kpts, orig), expected, rtol=1e-6)

    def test_xywhr_corners(self) -> None:
        rboxes = RNG.uniform(0, 3, (10, 5)).astype(np.float32)
        expected = uops.xywhr2xyxyxyxy(torch.from_numpy(rboxes))  # type: ignore[no-untyped-call]
        np.testing.assert_allclose(xywhr_to_corners(rboxes), expected, atol=1e-5)


class TestMasks:
    def test_process_mask(self) -> None:
        protos = RNG.normal(0, 1, (32, 120, 160)).astype(np.float32)
        coeffs = RNG.normal(0, 0.3, (70, 32)).astype(np.float32)
        boxes = np.sort(RNG.uniform(0, 640, (70, 4)).astype(np.float32).reshape(70, 2, 2), 1).reshape(70, 4)
        boxes[:, [1, 3]] *= 0.75
        expected = uops.process_mask(
            torch.from_numpy(protos), torch.from_numpy(coeffs), torch.from_numpy(boxes), (480, 640), upsample=True
        ).numpy()
        ours = process_mask(protos, coeffs, boxes, (480, 640))
        assert ours.shape == expected.shape
        # Bilinear kernels of OpenCV and torch differ in the last float bits: pixels at exactly 0 may flip.
        assert (ours != expected).mean() < 1e-3

    def test_segments(self) -> None:
        masks = np.zeros((3, 100, 120), dtype=np.uint8)
        masks[0, 10:40, 10:50] = 1
        masks[1, 10:20, 10:20] = 1
        masks[1, 60:90, 70:110] = 1  # two parts get merged into one path
        for ours, ref in zip(masks_to_segments(masks), uops.masks2segments(masks), strict=True):
            np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("shape", [(1080, 810), (720, 1280), (224, 224), (100, 400)])
@pytest.mark.parametrize("size", [224, 160])
def test_classify_transform(shape: tuple[int, int], size: int) -> None:
    from PIL import Image

    image = RNG.integers(0, 255, (*shape, 3), dtype=np.uint8)
    host = classify_transforms(size).transforms[:2]
    expected = np.asarray(host[1](host[0](Image.fromarray(image))))
    np.testing.assert_array_equal(classify_resize_crop(image, size), expected)


class TestSummary:
    """Prediction.summary() is byte-for-byte Results.summary() on the same data."""

    names = {0: "person", 1: "bus", 2: "car"}
    orig = (1080, 810)

    def _both(self, **data: Any) -> tuple[Prediction, Results]:
        tensors: dict[str, Any] = {k: torch.from_numpy(v) for k, v in data.items() if k != "segments"}
        image = np.zeros((*self.orig, 3), dtype=np.uint8)
        return Prediction("detect", self.names, self.orig, **data), Results(image, "x.jpg", self.names, **tensors)

    def _boxes(self, n: int = 5) -> np.ndarray:
        xyxy = np.sort(RNG.uniform(0, 800, (n, 2, 2)), 1).reshape(n, 4)
        return np.concatenate([xyxy, RNG.uniform(0, 1, (n, 1)), RNG.integers(0, 3, (n, 1))], 1).astype(np.float32)

    @pytest.mark.parametrize(("normalize", "decimals"), [(False, 5), (True, 5), (True, 2), (False, 0)])
    def test_boxes_and_keypoints(self, normalize: bool, decimals: int) -> None:
        kpts = RNG.uniform(0, 800, (5, 17, 3)).astype(np.float32)
        ours, ref = self._both(boxes=self._boxes(), keypoints=kpts)
        assert json.dumps(ours.summary(normalize, decimals)) == json.dumps(ref.summary(normalize, decimals))

    @pytest.mark.parametrize("normalize", [False, True])
    def test_obb(self, normalize: bool) -> None:
        obb = np.concatenate([RNG.uniform(50, 500, (4, 4)), RNG.uniform(0, 1.5, (4, 1)), self._boxes(4)[:, 4:]], 1)
        ours, ref = self._both(obb=obb.astype(np.float32))
        a, b = ours.summary(normalize), ref.summary(normalize)
        assert [list(r) for r in a] == [list(r) for r in b]
        assert [list(r["box"]) for r in a] == [list(r["box"]) for r in b]
        # NumPy's and torch's float32 sin/cos can differ in the last bit, so corners may differ at ~1e-5 px.
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(list(x["box"].values()), list(y["box"].values()), rtol=1e-6, atol=1e-4)

    def test_masks(self) -> None:
        masks = np.zeros((2, 480, 352), dtype=np.uint8)
        masks[0, 100:200, 50:150] = 1
        masks[1, 300:310, 10:300] = 1
        inp = masks.shape[1:]
        segments = [scale_coords(inp, s, self.orig) for s in masks_to_segments(masks)]
        ours, ref = self._both(boxes=self._boxes(2), masks=masks)
        ours.segments = segments
        assert json.dumps(ours.summary(True)) == json.dumps(ref.summary(True))

    def test_probs(self) -> None:
        probs = RNG.dirichlet(np.ones(3)).astype(np.float32)
        ours, ref = self._both(probs=probs)
        assert json.dumps(ours.summary(decimals=3)) == json.dumps(ref.summary(decimals=3))
