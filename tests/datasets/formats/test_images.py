"""probe_image: whole, supported, not-too-large images, with the size ultralytics will see."""

import os
import struct
import warnings
import zlib
from pathlib import Path

import pytest
from PIL import Image

from tests.datasets.formats.builders import make_image
from yolostack.datasets.formats import ImageError, ImageInfo, probe_image

ORIENTATION = 274


def bilevel_png(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit PNG of any size: tiny on disk, huge once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = bytes((width + 7) // 8 + 1) * height  # filter byte + packed bits, all zero
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")
    )
    return path


def rotated(path: Path, orientation: int, size: tuple[int, int] = (64, 48)) -> Path:
    """A picture stored at `size` whose EXIF orientation asks viewers to rotate it."""
    image = Image.new("RGB", size, (10, 120, 200))
    if path.suffix in (".tif", ".tiff"):
        image.save(path, "TIFF", tiffinfo={ORIENTATION: orientation})
    else:
        exif = Image.Exif()
        exif[ORIENTATION] = orientation
        image.save(path, exif=exif.tobytes())
    return path


class TestProbesGoodImages:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("a.jpg", ImageInfo(64, 48, "jpeg", "jpg")),
            ("a.jpeg", ImageInfo(64, 48, "jpeg", "jpeg")),
            ("a.png", ImageInfo(64, 48, "png", "png")),
            ("a.bmp", ImageInfo(64, 48, "bmp", "bmp")),
            ("a.webp", ImageInfo(64, 48, "webp", "webp")),
            ("a.tif", ImageInfo(64, 48, "tiff", "tif")),
            ("a.tiff", ImageInfo(64, 48, "tiff", "tiff")),
        ],
    )
    def test_formats(self, tmp_path: Path, name: str, expected: ImageInfo) -> None:
        assert probe_image(make_image(tmp_path / name, (64, 48))) == expected

    def test_extension_follows_the_content(self, tmp_path: Path) -> None:
        path = make_image(tmp_path / "really-a-png.jpg", (32, 32), "PNG")
        assert probe_image(path) == ImageInfo(32, 32, "png", "png")


class TestRefusesBadFiles:
    def test_truncated_jpeg(self, tmp_path: Path) -> None:
        path = tmp_path / "cut.jpg"
        Image.effect_noise((256, 256), 64).convert("RGB").save(path, quality=95)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        with pytest.raises(ImageError, match="damaged or truncated"):
            probe_image(path)

    def test_truncated_png(self, tmp_path: Path) -> None:
        path = tmp_path / "cut.png"
        Image.effect_noise((256, 256), 64).convert("RGB").save(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        with pytest.raises(ImageError, match="damaged or truncated"):
            probe_image(path)

    def test_random_bytes(self, tmp_path: Path) -> None:
        path = tmp_path / "noise.jpg"
        path.write_bytes(os.urandom(4096))
        with pytest.raises(ImageError, match="not an image we can read"):
            probe_image(path)

    def test_empty_file(self, tmp_path: Path) -> None:
        path = tmp_path / "empty.png"
        path.write_bytes(b"")
        with pytest.raises(ImageError):
            probe_image(path)

    def test_unsupported_format(self, tmp_path: Path) -> None:
        path = make_image(tmp_path / "a.gif", (32, 32))
        with pytest.raises(ImageError, match="GIF image, which is unsupported"):
            probe_image(path)


class TestRefusesDecompressionBombs:
    def test_over_pillows_own_limit(self, tmp_path: Path) -> None:
        path = bilevel_png(tmp_path / "bomb.png", 20_000, 20_000)
        assert path.stat().st_size < 200_000
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(ImageError, match="too large to decode safely"):
                probe_image(path)
        assert caught == []

    def test_over_our_limit_without_a_pillow_warning(self, tmp_path: Path) -> None:
        path = bilevel_png(tmp_path / "bomb.png", 9_500, 9_500)  # over Pillow's warning threshold
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(ImageError, match="9500x9500 pixels, more than the 1,000,000 pixel limit"):
                probe_image(path, max_pixels=1_000_000)
        assert caught == []

    def test_just_under_the_limit_is_fine(self, tmp_path: Path) -> None:
        path = bilevel_png(tmp_path / "ok.png", 1000, 1000)
        assert probe_image(path, max_pixels=1_000_000) == ImageInfo(1000, 1000, "png", "png")


class TestExifOrientation:
    @pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif"])
    @pytest.mark.parametrize(("orientation", "expected"), [(1, (64, 48)), (3, (64, 48)), (6, (48, 64)), (8, (48, 64))])
    def test_swaps_for_rotations(
        self, tmp_path: Path, suffix: str, orientation: int, expected: tuple[int, int]
    ) -> None:
        info = probe_image(rotated(tmp_path / f"r{suffix}", orientation))
        assert (info.width, info.height) == expected

    @pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif", ".bmp"])
    @pytest.mark.parametrize("orientation", [1, 5, 6, 7, 8])
    def test_matches_ultralytics_exif_size(self, tmp_path: Path, suffix: str, orientation: int) -> None:
        exif_size = pytest.importorskip("ultralytics.data.utils").exif_size
        path = rotated(tmp_path / f"r{suffix}", orientation) if suffix != ".bmp" else make_image(tmp_path / "r.bmp")
        info = probe_image(path)
        with Image.open(path) as image:
            assert (info.width, info.height) == tuple(exif_size(image))
