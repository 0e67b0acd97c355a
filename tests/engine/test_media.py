"""Image and video decoding matches ultralytics' own loaders; bombs, truncation and garbage are refused."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from yolostack_engine.media import MediaError, decode_image, is_video, iter_video_frames


def write_video(path: Path, fourcc: str, frames: int, size: tuple[int, int] = (64, 48)) -> Path:
    """Write a small numbered video with cv2.VideoWriter."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), 10, size)
    for i in range(frames):
        frame = np.full((size[1], size[0], 3), i * 13 % 255, np.uint8)
        cv2.putText(frame, str(i), (4, 30), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255))
        writer.write(frame)
    writer.release()
    assert path.stat().st_size > 0
    return path


def ultralytics_frames(path: Path, vid_stride: int) -> list[np.ndarray]:
    """Frames ultralytics' predict loader yields for a video file."""
    from ultralytics.data.loaders import LoadImagesAndVideos

    return [image for _, images, _ in LoadImagesAndVideos(str(path), vid_stride=vid_stride) for image in images]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    return {
        "mp4": write_video(root / "clip.mp4", "mp4v", 17),
        "avi": write_video(root / "clip.avi", "MJPG", 17),
    }


@pytest.fixture(scope="module")
def bus_path() -> Path:
    from ultralytics.utils import ASSETS

    return Path(ASSETS) / "bus.jpg"


class TestIterVideoFrames:
    @pytest.mark.parametrize("kind", ["mp4", "avi"])
    @pytest.mark.parametrize("vid_stride", [1, 2, 3])
    def test_matches_ultralytics(self, videos: dict[str, Path], kind: str, vid_stride: int) -> None:
        ours = list(iter_video_frames(videos[kind], vid_stride=vid_stride))
        theirs = ultralytics_frames(videos[kind], vid_stride)
        assert len(ours) == len(theirs) == 17 // vid_stride
        assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))
        assert ours[0].dtype == np.uint8
        assert ours[0].shape == (48, 64, 3)

    def test_truncated_mp4_refused(self, videos: dict[str, Path], tmp_path: Path) -> None:
        data = videos["mp4"].read_bytes()
        path = tmp_path / "truncated.mp4"
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(MediaError, match="video could not be opened"):
            list(iter_video_frames(path))

    def test_truncated_avi_yields_what_ultralytics_reads(self, videos: dict[str, Path], tmp_path: Path) -> None:
        data = videos["avi"].read_bytes()
        path = tmp_path / "truncated.avi"
        path.write_bytes(data[: len(data) // 2])
        assert len(list(iter_video_frames(path))) == len(ultralytics_frames(path, 1)) < 17

    def test_header_only_video_has_no_frames(self, videos: dict[str, Path], tmp_path: Path) -> None:
        path = tmp_path / "header.avi"
        path.write_bytes(videos["avi"].read_bytes()[:600])
        with pytest.raises(MediaError):
            list(iter_video_frames(path))

    def test_garbage_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "garbage.mp4"
        path.write_bytes(b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\nfile:///etc/passwd\n")
        with pytest.raises(MediaError):
            list(iter_video_frames(path))

    def test_too_many_frames(self, videos: dict[str, Path]) -> None:
        with pytest.raises(MediaError, match="more than 5 frames"):
            list(iter_video_frames(videos["mp4"], max_frames=5))
        assert len(list(iter_video_frames(videos["mp4"], vid_stride=3, max_frames=5))) == 5

    def test_frames_too_large(self, videos: dict[str, Path]) -> None:
        with pytest.raises(MediaError, match="larger than 1000 pixels"):
            next(iter_video_frames(videos["mp4"], max_pixels=1000))


class TestIsVideo:
    @pytest.mark.parametrize("name", ["a.mp4", "B.MOV", "c.avi", "d.webm", "e.mkv", "f.m4v", "g.mpeg", "h.mpg"])
    def test_by_suffix(self, name: str) -> None:
        assert is_video(name, b"")

    def test_by_magic(self, videos: dict[str, Path]) -> None:
        assert is_video("upload", videos["mp4"].read_bytes()[:64])
        assert is_video("upload", videos["avi"].read_bytes()[:64])
        assert is_video("upload", b"\x1a\x45\xdf\xa3" + bytes(60))

    def test_images_are_not_videos(self, bus_path: Path) -> None:
        assert not is_video("bus.jpg", bus_path.read_bytes()[:64])
        assert not is_video("x", b"\x00\x00\x00\x1cftypavif" + bytes(50))
        assert not is_video("x", b"RIFF\x00\x00\x00\x00WEBPVP8 ")


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares a huge size in 70 bytes (its pixel data is an empty deflate stream)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def encode(image: np.ndarray, suffix: str) -> bytes:
    ok, buffer = cv2.imencode(suffix, image)
    assert ok
    return buffer.tobytes()


class TestDecodeImage:
    def test_jpg_matches_imread(self, bus_path: Path) -> None:
        decoded = decode_image(bus_path.read_bytes())
        expected = cv2.imread(str(bus_path))
        assert expected is not None
        assert np.array_equal(decoded, expected)
        assert decoded.shape == (1080, 810, 3)

    def test_jpg_matches_ultralytics_imread(self, bus_path: Path) -> None:
        from ultralytics.utils.patches import imread

        expected = imread(bus_path)
        assert expected is not None
        assert np.array_equal(decode_image(bus_path.read_bytes()), expected)

    @pytest.mark.parametrize(
        "make",
        [
            lambda rng: rng.integers(0, 256, (30, 40, 3), dtype=np.uint8),
            lambda rng: rng.integers(0, 256, (30, 40), dtype=np.uint8),
            lambda rng: rng.integers(0, 256, (30, 40, 4), dtype=np.uint8),
            lambda rng: rng.integers(0, 65536, (30, 40, 3), dtype=np.uint16),
            lambda rng: rng.integers(0, 65536, (30, 40), dtype=np.uint16),
        ],
        ids=["bgr", "gray", "rgba", "bgr16", "gray16"],
    )
    def test_png_matches_imread(self, make: object, tmp_path: Path) -> None:
        from ultralytics.utils.patches import imread

        image = make(np.random.default_rng(0))  # type: ignore[operator]
        path = tmp_path / "image.png"
        assert cv2.imwrite(str(path), image)
        decoded = decode_image(path.read_bytes())
        assert decoded.shape == (30, 40, 3)
        assert decoded.dtype == np.uint8
        from_file, from_ultralytics = cv2.imread(str(path), cv2.IMREAD_COLOR), imread(path)
        assert from_file is not None
        assert from_ultralytics is not None
        assert np.array_equal(decoded, from_file)
        assert np.array_equal(decoded, from_ultralytics)

    @pytest.mark.parametrize("channels", [3, 4])
    def test_tiff_matches_ultralytics_imread(self, channels: int, tmp_path: Path) -> None:
        from ultralytics.utils.patches import imread

        path = tmp_path / "image.tif"
        assert cv2.imwrite(str(path), np.random.default_rng(1).integers(0, 256, (12, 9, channels), dtype=np.uint8))
        expected = imread(path)
        assert expected is not None
        assert np.array_equal(decode_image(path.read_bytes()), expected)

    def test_palette_png_and_webp(self, tmp_path: Path) -> None:
        image = Image.new("P", (20, 10), 3)
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        assert decode_image(buffer.getvalue()).shape == (10, 20, 3)
        assert decode_image(encode(np.zeros((10, 20, 3), np.uint8), ".webp")).shape == (10, 20, 3)

    def test_pillow_only_format_falls_back(self) -> None:
        buffer = io.BytesIO()
        Image.new("RGB", (12, 8), (255, 0, 0)).save(buffer, "ICO", sizes=[(12, 8)])
        decoded = decode_image(buffer.getvalue())
        assert decoded.shape[2] == 3
        assert tuple(decoded[0, 0]) in {(0, 0, 255)}

    def test_decompression_bomb_refused_before_decoding(self) -> None:
        with pytest.raises(MediaError, match="larger than 50000000 pixels"):
            decode_image(png_header(20_000, 20_000))
        with pytest.raises(MediaError, match="larger than 50000000 pixels"):
            decode_image(png_header(60_000, 60_000))  # past Pillow's own bomb limit too
        with pytest.raises(MediaError, match="larger than 100 pixels"):
            decode_image(encode(np.zeros((20, 20, 3), np.uint8), ".png"), max_pixels=100)

    @pytest.mark.parametrize("data", [b"", b"not an image at all", bytes(1000)], ids=["empty", "text", "zeros"])
    def test_garbage_refused(self, data: bytes) -> None:
        with pytest.raises(MediaError):
            decode_image(data)

    def test_truncated_refused(self, bus_path: Path) -> None:
        data = encode(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8), ".png")
        with pytest.raises(MediaError):
            decode_image(data[: len(data) // 3])
