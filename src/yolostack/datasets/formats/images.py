"""Checking that an uploaded file is a whole, decodable image of a supported format, and reading its size."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from yolostack.datasets.formats.records import ImageError

# Pillow format name -> (our format name, the extension we store it under)
SUPPORTED_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("jpeg", "jpg"),
    "MPO": ("jpeg", "jpg"),  # phone JPEGs with a second picture inside; decoded as the first
    "PNG": ("png", "png"),
    "BMP": ("bmp", "bmp"),
    "WEBP": ("webp", "webp"),
    "TIFF": ("tiff", "tiff"),
}
# File extensions that name each format, so a correct one is kept as the upload spelled it.
_EXTENSIONS = {"jpeg": {"jpg", "jpeg"}, "png": {"png"}, "bmp": {"bmp"}, "webp": {"webp"}, "tiff": {"tif", "tiff"}}
EXIF_ORIENTATION = 274
TIFF_WIDTH, TIFF_HEIGHT = 256, 257
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}
DEFAULT_MAX_PIXELS = 100_000_000
# More pages than any scan or GeoTIFF pyramid we would train on; each costs a header read to check.
MAX_TIFF_PAGES = 256


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """An image's upright size (EXIF orientation applied), its format and the extension to store it under."""

    width: int
    height: int
    format: str
    ext: str


def probe_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Fully decode the image to prove it is whole; raises ImageError for anything we would not ingest."""
    # Pillow reports bombs and damaged metadata through warnings; they become ImageErrors or are dropped here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _probe(path, max_pixels)
        except Image.DecompressionBombError as error:
            raise ImageError(f"{path.name} is too large to decode safely ({error})") from error
        except (UnidentifiedImageError, ImportError) as error:
            # An ImportError is a Pillow plugin (e.g. HEIF registered by ultralytics) whose decoder is missing.
            raise ImageError(f"{path.name} is not an image we can read") from error
        except ImageError:
            raise
        except Exception as error:  # hostile files break decoders in many ways (struct.error, IndexError, ...)
            raise ImageError(f"{path.name} is damaged or truncated and cannot be decoded ({error})") from error


def _probe(path: Path, max_pixels: int) -> ImageInfo:
    with Image.open(path) as image:
        pillow_format = image.format or ""
        if pillow_format not in SUPPORTED_FORMATS:
            raise ImageError(
                f"{path.name} is a {pillow_format or 'unknown'} image, which is unsupported; "
                "use JPEG, PNG, BMP, WebP or TIFF"
            )
        width, height = image.size
        if width * height > max_pixels:
            raise ImageError(
                f"{path.name} is {width}x{height} pixels, more than the {max_pixels:,} pixel limit "
                "(possible decompression bomb)"
            )
        if width < 1 or height < 1:
            raise ImageError(f"{path.name} has no pixels")
        if pillow_format == "TIFF":
            _check_pages(image, path.name, max_pixels)
        upright = upright_size(image)  # before load(): Pillow drops a TIFF's orientation once it has applied it
        image.load()  # decode every byte: a truncated file fails here, not at training time
        name, canonical_ext = SUPPORTED_FORMATS[pillow_format]
    ext = path.suffix.lower().lstrip(".")
    return ImageInfo(upright[0], upright[1], name, ext if ext in _EXTENSIONS[name] else canonical_ext)


def _check_pages(image: Image.Image, name: str, max_pixels: int) -> None:
    """A TIFF's pages together: ultralytics decodes every page of a TIFF it trains on, then keeps the first,
    so a small first page must not front huge ones. Leaves the image on its first page."""
    total = 0
    for page in range(MAX_TIFF_PAGES + 1):
        try:
            image.seek(page)
        except EOFError:
            break
        if page == MAX_TIFF_PAGES:
            raise ImageError(f"{name} has more than {MAX_TIFF_PAGES} pages")
        width, height = image.size
        total += width * height
        if total > max_pixels:
            raise ImageError(
                f"{name}'s pages hold more than the {max_pixels:,} pixel limit together (possible decompression bomb)"
            )
    image.seek(0)


def upright_size(image: Image.Image) -> tuple[int, int]:
    """Width and height with EXIF orientation applied, matching ultralytics `exif_size`.

    Ultralytics swaps width and height for orientations 5-8; for TIFF it decodes the file, and the decoded size
    is the stored size with the same swap. Pillow may already have rotated a TIFF, so its stored size is read
    from the TIFF tags rather than from `image.size`.
    """
    width, height = image.size
    try:
        if image.format == "TIFF":
            tags = image.tag_v2  # type: ignore[attr-defined]
            width, height = int(tags.get(TIFF_WIDTH, width)), int(tags.get(TIFF_HEIGHT, height))
            orientation = tags.get(EXIF_ORIENTATION)
        else:
            orientation = image.getexif().get(EXIF_ORIENTATION)
    except (AttributeError, KeyError, TypeError, ValueError, OSError, SyntaxError):
        return image.size
    if orientation in _TRANSPOSED_ORIENTATIONS:
        return height, width
    return width, height


def image_size(path: Path) -> tuple[int, int]:
    """Stored width and height from the header only, for formats whose annotations use stored pixels (COCO)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(path) as image:
                return image.size
        except Exception as error:  # any way a hostile header breaks Pillow
            raise ImageError(f"{path.name} is not an image we can read ({error})") from error
