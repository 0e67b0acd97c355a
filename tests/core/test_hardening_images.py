"""Image decoding is bounded by what is really decoded, not only by what the header claims: a TIFF whose small
first page fronts a huge one (a 160 KB file that decodes to 48 MB), and a header that lies, are refused or
decoded no further than the limit — for predict (the engine) and for dataset ingest alike."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from yolostack.datasets.formats import images
from yolostack.datasets.formats.images import MAX_TIFF_PAGES, probe_image
from yolostack.datasets.formats.records import ImageError
from yolostack_engine import media
from yolostack_engine.media import MediaError, decode_image

LIMIT = 1_000_000
MiB = 1024**2


def tiff(*shapes: tuple[int, int]) -> bytes:
    """A deflate-compressed multi-page colour TIFF of black pages (tiny on disk, whatever the pages' size)."""
    pages = [np.zeros((height, width, 3), np.uint8) for width, height in shapes]
    ok, buffer = cv2.imencodemulti(".tiff", pages, [cv2.IMWRITE_TIFF_COMPRESSION, 8])
    assert ok
    return buffer.tobytes()


def png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose IHDR claims another size (its checksum fixed so decoders read it)."""
    data = bytearray(cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def peak_numpy_bytes(work: object) -> int:
    """The peak of memory that numpy (whose buffers OpenCV's Python binding allocates) traced during ``work()``."""
    assert callable(work)
    work()  # warm: lazy imports and codec set-up are not the decode
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


class TestPredictDecoding:
    def test_a_small_first_page_does_not_decode_the_huge_next_one(self) -> None:
        data = tiff((8, 8), (4000, 4000))  # 48 MB of pixels behind an 8x8 header
        assert len(data) < MiB
        assert decode_image(data, max_pixels=LIMIT).shape == (8, 8, 3)
        assert peak_numpy_bytes(lambda: decode_image(data, max_pixels=LIMIT)) < 4 * MiB

    def test_the_first_page_is_still_held_to_the_limit(self) -> None:
        with pytest.raises(MediaError, match="larger than"):
            decode_image(tiff((2000, 1000), (8, 8)), max_pixels=LIMIT)

    def test_a_header_claiming_too_much_is_refused_before_decoding(self) -> None:
        with pytest.raises(MediaError, match="larger than"):
            decode_image(png_claiming(100_000, 100_000), max_pixels=LIMIT)

    def test_the_decoded_size_is_checked_after_decoding(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # A header reader that is fooled (here: skipped) must not let a bigger image through.
        monkeypatch.setattr(media, "_check_header", lambda data, max_pixels: None)
        image = cv2.imencode(".png", np.zeros((1000, 2000, 3), np.uint8))[1].tobytes()
        with pytest.raises(MediaError, match="decoded"):
            decode_image(image, max_pixels=LIMIT)
        assert decode_image(image, max_pixels=2 * LIMIT).shape == (1000, 2000, 3)


class TestDatasetImages:
    """Ingest proves an image whole with Pillow; ultralytics later decodes every page of a TIFF it trains on."""

    def write(self, tmp_path: Path, data: bytes, name: str = "a.tiff") -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    def test_pages_together_are_held_to_the_limit(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, tiff((8, 8), (1000, 1000), (8, 8)))
        with pytest.raises(ImageError, match="pages hold more"):
            probe_image(path, max_pixels=LIMIT)
        info = probe_image(path, max_pixels=2 * LIMIT)
        assert (info.width, info.height, info.format) == (8, 8, "tiff")

    def test_too_many_pages_are_refused(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(images, "MAX_TIFF_PAGES", 3)
        with pytest.raises(ImageError, match="more than 3 pages"):
            probe_image(self.write(tmp_path, tiff(*[(4, 4)] * 4)), max_pixels=LIMIT)
        assert probe_image(self.write(tmp_path, tiff(*[(4, 4)] * 3), "b.tiff"), max_pixels=LIMIT).width == 4
        assert MAX_TIFF_PAGES >= 100

    def test_a_multi_frame_image_is_read_at_its_first_frame(self, tmp_path: Path) -> None:
        frames = [Image.new("RGB", (16, 16)), Image.new("RGB", (16, 16), "white")]
        buffer = io.BytesIO()
        frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:])
        info = probe_image(self.write(tmp_path, buffer.getvalue(), "a.webp"), max_pixels=LIMIT)
        assert (info.width, info.height, info.format) == (16, 16, "webp")
