"""Decode uploaded images and videos exactly as ultralytics reads files, refusing bombs and garbage."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

# ultralytics.data.utils.VID_FORMATS: the suffixes its loaders treat as video (gif included).
VIDEO_SUFFIXES = frozenset({"asf", "avi", "gif", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "ts", "webm", "wmv"})
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_FRAMES = 10_000
# ISO-BMFF brands that are still images (ultralytics decodes these through Pillow, like its AVIF/HEIC fallback).
_IMAGE_BRANDS = frozenset({b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")


class MediaError(ValueError):
    """An upload is not a decodable image or video (the message is safe to show to the caller)."""


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes to BGR uint8 HxWx3, as ultralytics' imread(path) would for the same file."""
    if not data:
        raise MediaError("image is empty")
    _check_header(data, max_pixels)
    buffer = np.frombuffer(data, np.uint8)
    image: np.ndarray | None = None
    if _is_heif(data):
        image = _decode_pil(data)  # ultralytics reads AVIF/HEIC through Pillow, EXIF-aware
    if image is None and data.startswith(_TIFF_MAGIC):
        image = _decode_tiff(buffer)
    if image is None:
        image = _imdecode(buffer)
    if image is None:
        image = _decode_pil(data)  # formats Pillow reads and OpenCV does not
    if image is None:
        raise MediaError("image could not be decoded (corrupt or unsupported format)")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise MediaError("image has an unsupported pixel format")
    # The header check trusted Pillow's reading of the header; what the decoder made is what counts.
    height, width = image.shape[:2]
    if width * height > max_pixels:
        raise MediaError(f"image is larger than {max_pixels} pixels ({width}x{height} decoded)")
    return image


def _check_header(data: bytes, max_pixels: int) -> None:
    """Read only the header with Pillow and refuse images over max_pixels before any decode."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
    except Image.DecompressionBombError as e:
        raise MediaError(f"image is larger than {max_pixels} pixels") from e
    except Exception as e:
        # Without a readable header the size is unknown, so the pixel limit could not be enforced. Any error
        # counts: Pillow's plugins raise many types on hostile headers (and ultralytics patches Image.open).
        raise MediaError("image could not be decoded (corrupt or unsupported format)") from e
    if width <= 0 or height <= 0:
        raise MediaError("image has no pixels")
    if width * height > max_pixels:
        raise MediaError(f"image is larger than {max_pixels} pixels ({width}x{height})")


def _imdecode(buffer: np.ndarray) -> np.ndarray | None:
    """cv2.imdecode with IMREAD_COLOR, None when OpenCV cannot decode the bytes."""
    try:
        return cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error:
        return None


def _decode_tiff(buffer: np.ndarray) -> np.ndarray | None:
    """ultralytics' TIFF path: the first colour page read unchanged, alpha dropped.

    Only the first page is decoded: the header check saw only its size, and a small first page can front
    any number of huge ones (ultralytics decodes them all, then keeps the first).
    """
    try:
        success, pages = cv2.imdecodemulti(buffer, cv2.IMREAD_UNCHANGED, None, (0, 1))
    except cv2.error:
        return None
    if not success or not pages or pages[0].ndim != 3 or pages[0].dtype not in (np.uint8, np.uint16):
        return None
    return np.ascontiguousarray(pages[0][..., :3])


def _decode_pil(data: bytes) -> np.ndarray | None:
    """Decode with Pillow (upright by EXIF) to BGR, None when Pillow fails too."""
    try:
        with Image.open(io.BytesIO(data)) as opened, ImageOps.exif_transpose(opened) as upright:
            return cv2.cvtColor(np.asarray(upright.convert("RGB")), cv2.COLOR_RGB2BGR)
    except Exception:  # any decoder failure on untrusted bytes means "not decodable"
        return None


def _is_heif(head: bytes) -> bool:
    """An ISO-BMFF still image (AVIF, HEIC)."""
    return head[4:8] == b"ftyp" and head[8:12] in _IMAGE_BRANDS


def _is_video_content(head: bytes) -> bool:
    """Recognize common video containers by their first bytes."""
    if head[4:8] == b"ftyp":
        return head[8:12] not in _IMAGE_BRANDS
    return (
        head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")  # QuickTime without ftyp
        or (head.startswith(b"RIFF") and head[8:12] == b"AVI ")
        or head.startswith(b"\x1a\x45\xdf\xa3")  # Matroska / WebM
        or head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"))  # MPEG program / elementary stream
        or head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11")  # ASF / WMV
        or head.startswith(b"FLV\x01")
    )


def is_video(filename: str, head: bytes) -> bool:
    """Whether an upload is a video, by its suffix (as ultralytics decides) or by its container's magic bytes."""
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return suffix in VIDEO_SUFFIXES or _is_video_content(head)


def _looks_decodable(path: Path) -> bool:
    """A known container (or a GIF / transport stream): never a text playlist FFmpeg would follow to other files."""
    with path.open("rb") as handle:
        head = handle.read(4096)
    is_ts = len(head) > 188 and head[0] == 0x47 and head[188] == 0x47
    return _is_video_content(head) or head.startswith((b"GIF87a", b"GIF89a")) or is_ts


def iter_video_frames(
    path: Path,
    *,
    vid_stride: int = 1,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Iterator[np.ndarray]:
    """Yield every vid_stride-th frame as BGR, one at a time, matching ultralytics' LoadImagesAndVideos."""
    if vid_stride < 1:
        raise ValueError("vid_stride must be at least 1")
    if not _looks_decodable(path):
        raise MediaError("video could not be decoded (corrupt or unsupported format)")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise MediaError("video could not be opened (corrupt or unsupported format)")
        expected = _check_stream(capture, vid_stride, max_frames, max_pixels)
        yielded = 0
        for frame in _strided(capture, vid_stride):
            if yielded >= max_frames:
                raise MediaError(f"video has more than {max_frames} frames")
            yielded += 1
            yield frame
            # ultralytics stops at int(FRAME_COUNT / vid_stride) frames even when more could be grabbed.
            if yielded == expected:
                return
        if yielded == 0:
            raise MediaError("video has no readable frames")
    finally:
        capture.release()


def _check_stream(capture: cv2.VideoCapture, vid_stride: int, max_frames: int, max_pixels: int) -> int:
    """Refuse oversized frames or too many frames up front; return ultralytics' expected frame count."""
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width * height > max_pixels:
        raise MediaError(f"video frames are larger than {max_pixels} pixels ({width}x{height})")
    expected = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) / vid_stride)
    if expected > max_frames:
        raise MediaError(f"video has more than {max_frames} frames")
    return expected


def _strided(capture: cv2.VideoCapture, vid_stride: int) -> Iterator[np.ndarray]:
    """grab() vid_stride frames, retrieve() the last: the same frames ultralytics decodes."""
    while True:
        for _ in range(vid_stride):
            if not capture.grab():
                return
        success, frame = capture.retrieve()
        if success and frame is not None:
            yield frame
