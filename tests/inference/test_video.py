"""Videos on the predict routes: one ``images[]`` entry per strided frame, exactly the frames ultralytics reads
(the ``ul`` CLI zips them with the source's frames strictly), and limits on broken or oversized videos."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest

from tests.fixtures.assertions import assert_error, ok
from tests.inference.conftest import CONF, IMGSZ, Served, assert_same_results, serve

# Video decoding and frame counting do not depend on the database.
pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]

FRAMES = 7
CODECS = {"mp4": ("mp4v", "video/mp4"), "avi": ("MJPG", "video/x-msvideo")}
PARAMS: dict[str, Any] = {"imgsz": IMGSZ, "conf": CONF, "iou": 0.7}


@dataclass(frozen=True)
class Clip:
    path: Path
    content_type: str

    def files(self, data: bytes | None = None) -> dict[str, tuple[str, bytes, str]]:
        return {"file": (self.path.name, self.path.read_bytes() if data is None else data, self.content_type)}


def write_clip(served: Served, directory: Path, container: str, *, frames: int = FRAMES) -> Clip:
    """128x128 frames (seven by default), the detector's validation images in order, at 10 fps."""
    fourcc, content_type = CODECS[container]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"shapes.{container}"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), 10, (128, 128))
    assert writer.isOpened(), f"this OpenCV cannot write {fourcc}"
    try:
        for image in served.detector.images[:frames]:
            frame = cv2.imread(str(image))
            assert frame is not None
            writer.write(frame)
    finally:
        writer.release()
    return Clip(path=path, content_type=content_type)


@pytest.fixture(params=list(CODECS))
def clip(request: pytest.FixtureRequest, served: Served, tmp_path: Path) -> Clip:
    return write_clip(served, tmp_path, request.param)


@pytest.fixture
def mp4(served: Served, tmp_path: Path) -> Clip:
    return write_clip(served, tmp_path, "mp4")


def frames_ultralytics_reads(path: Path, vid_stride: int) -> int:
    """How many frames ``LoadImagesAndVideos`` (what ``YOLO.predict`` and the ``ul`` CLI read) yields."""
    from ultralytics.data.loaders import LoadImagesAndVideos

    return sum(len(images) for _, images, _ in LoadImagesAndVideos(str(path), vid_stride=vid_stride))


def ultralytics_frames(model: Any, path: Path, vid_stride: int) -> list[list[dict[str, Any]]]:
    """``YOLO(pt).predict(video, vid_stride=…)``: one summary per frame it read."""
    results = model.predict(str(path), vid_stride=vid_stride, stream=True, verbose=False, **PARAMS)
    return [list(result.summary()) for result in results]


async def predict_video(
    http: httpx.AsyncClient, path: str, served: Served, files: Any, **params: Any
) -> httpx.Response:
    data = {name: str(value) for name, value in {**PARAMS, **params}.items()}
    return await http.post(path, headers=served.alice.headers, files=files, data=data)


class TestPredictVideo:
    @pytest.mark.parametrize("vid_stride", [1, 2, 3])
    async def test_one_image_per_strided_frame(
        self, served: Served, reference_model: Any, clip: Clip, vid_stride: int
    ) -> None:
        response = await predict_video(served.client, served.client_path, served, clip.files(), vid_stride=vid_stride)
        body = ok(response)
        expected = ultralytics_frames(reference_model, clip.path, vid_stride)
        assert len(body["images"]) == len(expected) == frames_ultralytics_reads(clip.path, vid_stride)
        assert len(expected) == FRAMES // vid_stride
        assert body["metadata"]["imageCount"] == len(expected)
        for entry, theirs in zip(body["images"], expected, strict=True):
            assert entry["shape"] == [128, 128]
            assert set(entry["speed"]) == {"preprocess", "inference", "postprocess"}
            assert_same_results(entry["results"], theirs, conf=CONF)
        assert any(entry["results"] for entry in body["images"]), "no detections in any frame: a vacuous comparison"

    async def test_seed_predictions_name_their_frame(self, served: Served, mp4: Clip) -> None:
        body = ok(await predict_video(served.client, served.seed_path, served, mp4.files(), vid_stride=2))
        assert body["data"]["metadata"]["imageCount"] == len(body["images"]) == FRAMES // 2
        expected = [
            (index, row["name"], row["confidence"])
            for index, entry in enumerate(body["images"])
            for row in entry["results"]
        ]
        assert expected
        assert [(row["frame"], row["class"], row["confidence"]) for row in body["predictions"]] == expected

    async def test_video_is_recognised_by_content(self, served: Served, mp4: Clip) -> None:
        """A video named like an image (``clip.jpg``) is still read as a video, frame by frame."""
        files = {"file": ("clip.jpg", mp4.path.read_bytes(), "image/jpeg")}
        body = ok(await predict_video(served.client, served.client_path, served, files))
        assert body["metadata"]["imageCount"] == FRAMES


class TestBrokenVideo:
    async def test_truncated_mp4_is_refused(self, served: Served, mp4: Clip) -> None:
        """OpenCV's mp4 writer puts the index (``moov``) last: half a file has no readable frame at all."""
        data = mp4.path.read_bytes()
        response = await predict_video(served.client, served.client_path, served, mp4.files(data[: len(data) // 2]))
        body = assert_error(response, 422, "VALIDATION_ERROR")
        assert [item["field"] for item in body["error"]["details"]] == ["file"]

    @pytest.mark.parametrize("container", list(CODECS))
    async def test_truncated_video_is_refused_or_cut_short(
        self, served: Served, tmp_path: Path, container: str
    ) -> None:
        """What survives a cut is never a 500: either a 422, or the frames before the cut, as in the whole video."""
        clip = write_clip(served, tmp_path, container)
        data = clip.path.read_bytes()
        whole = ok(await predict_video(served.client, served.client_path, served, clip.files()))
        response = await predict_video(served.client, served.client_path, served, clip.files(data[: len(data) // 2]))
        if response.status_code == 422:
            assert_error(response, 422, "VALIDATION_ERROR")
            return
        body = ok(response)
        count = body["metadata"]["imageCount"]
        assert 1 <= count == len(body["images"]) < FRAMES
        for index, (cut, complete) in enumerate(zip(body["images"], whole["images"][:count], strict=True)):
            assert cut["shape"] == complete["shape"]
            if index == count - 1:
                continue  # the frame at the cut may be decoded from part of its bytes (MJPEG: "overread")
            # Alone or in a batch of seven, the same frame: equal within the runtime's batching noise.
            assert_same_results(cut["results"], complete["results"], conf=CONF)

    async def test_garbage_with_a_video_name_is_refused(self, served: Served) -> None:
        files = {"file": ("clip.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 500, "video/mp4")}
        response = await predict_video(served.client, served.client_path, served, files)
        assert_error(response, 422, "VALIDATION_ERROR")


class TestVideoLimits:
    async def test_more_frames_than_allowed_is_refused(self, served: Served, mp4: Clip) -> None:
        async with serve(served, inference={"max_video_frames": FRAMES - 1}) as http:
            response = await predict_video(http, served.client_path, served, mp4.files())
            body = assert_error(response, 422, "VALIDATION_ERROR")
            assert str(FRAMES - 1) in body["error"]["message"]
            # The limit counts the frames that would be predicted: every third frame fits.
            body = ok(await predict_video(http, served.client_path, served, mp4.files(), vid_stride=3))
            assert body["metadata"]["imageCount"] == FRAMES // 3

    async def test_video_over_the_size_limit_is_413(self, served: Served, mp4: Clip, tmp_path: Path) -> None:
        short = write_clip(served, tmp_path / "short", "mp4", frames=2)
        limit = mp4.path.stat().st_size - 1
        assert short.path.stat().st_size <= limit
        async with serve(served, inference={"max_video_bytes": limit}) as http:
            response = await predict_video(http, served.client_path, served, mp4.files())
            assert_error(response, 413, "PAYLOAD_TOO_LARGE")
            body = ok(await predict_video(http, served.client_path, served, short.files()))
            assert body["metadata"]["imageCount"] == 2
