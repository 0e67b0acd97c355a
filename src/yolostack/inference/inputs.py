"""What a predict request carries: one image, a video, or a ``source`` URL (and, for replicas, its raw form)."""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Request
from starlette.datastructures import UploadFile

from yolostack.config import InferenceSettings
from yolostack.core.errors import BadRequest, PayloadTooLarge
from yolostack.inference.fetch import SourceFetchError, fetch_source
from yolostack.inference.params import MEDIA_REQUIRED
from yolostack_engine.media import MediaError, decode_image, is_video, iter_video_frames

CHUNK = 1024 * 1024
HEAD_BYTES = 64
# Form fields that are files: the Platform's and HUB's ``file``, the legacy HUB API's ``image``.
FILE_FIELDS = ("file", "image")


@dataclass
class PredictInput:
    """One still image (decoded), or a video on local disk read frame by frame."""

    filename: str
    image: np.ndarray | None = None
    video: Path | None = None


async def read_form(request: Request, settings: InferenceSettings) -> tuple[dict[str, Any], UploadFile | None]:
    declared = int(request.headers.get("content-length") or 0)
    if declared > settings.max_video_bytes + CHUNK:
        raise PayloadTooLarge(f"request body exceeds {settings.max_video_bytes} bytes")
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise BadRequest(MEDIA_REQUIRED, details=_field("file", MEDIA_REQUIRED))
    form = await request.form(max_files=2, max_fields=40)
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    upload = next((form[name] for name in FILE_FIELDS if isinstance(form.get(name), UploadFile)), None)
    return fields, upload if isinstance(upload, UploadFile) else None


@asynccontextmanager
async def open_input(
    source: str | None, upload: UploadFile | None, settings: InferenceSettings
) -> AsyncIterator[PredictInput]:
    """Yield the request's media; a video is spooled to a temporary file removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="yolostack-predict-") as work:
        if upload is not None:
            yield await _from_upload(upload, Path(work), settings)
        elif source and source.strip():
            yield await _from_source(source.strip(), Path(work), settings)
        else:
            raise BadRequest(MEDIA_REQUIRED, details=_field("file", MEDIA_REQUIRED))


def _field(name: str, message: str) -> list[dict[str, str]]:
    return [{"field": name, "message": message}]


async def _from_upload(upload: UploadFile, work: Path, settings: InferenceSettings) -> PredictInput:
    filename = (upload.filename or "image").rsplit("/", 1)[-1][:200] or "image"
    head = await upload.read(HEAD_BYTES)
    await upload.seek(0)
    if is_video(filename, head):
        path = work / f"video{Path(filename).suffix.lower()[:8] or '.mp4'}"
        await _spool(upload, path, settings.max_video_bytes)
        return PredictInput(filename=filename, video=path)
    data = await _read_limited(upload, settings.max_image_bytes)
    return PredictInput(filename=filename, image=await _decode(data, settings))


async def _from_source(url: str, work: Path, settings: InferenceSettings) -> PredictInput:
    try:
        fetched = await fetch_source(
            url,
            max_bytes=max(settings.source_max_bytes, 1),
            timeout_s=settings.source_timeout_seconds,
            allow_private=settings.allow_private_sources,
        )
    except SourceFetchError as error:
        # A source over the size limit is refused like an upload over it; any other failure is the caller's URL.
        failure = PayloadTooLarge if error.status_code == 413 else BadRequest
        raise failure(str(error), details=_field("source", str(error))) from error
    if is_video(fetched.filename, fetched.data[:HEAD_BYTES]):
        path = work / f"video{Path(fetched.filename).suffix.lower()[:8] or '.mp4'}"
        await asyncio.to_thread(path.write_bytes, fetched.data)
        return PredictInput(filename=fetched.filename, video=path)
    return PredictInput(filename=fetched.filename, image=await _decode(fetched.data, settings))


async def _read_limited(upload: UploadFile, limit: int) -> bytes:
    data = bytearray()
    while chunk := await upload.read(CHUNK):
        data += chunk
        if len(data) > limit:
            raise PayloadTooLarge(f"image exceeds {limit} bytes")
    return bytes(data)


async def _spool(upload: UploadFile, path: Path, limit: int) -> None:
    size = 0
    with path.open("wb") as handle:
        while chunk := await upload.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"video exceeds {limit} bytes")
            await asyncio.to_thread(handle.write, chunk)


async def _decode(data: bytes, settings: InferenceSettings) -> np.ndarray:
    try:
        return await asyncio.to_thread(decode_image, data, max_pixels=settings.max_image_pixels)
    except MediaError as error:
        raise BadRequest(str(error), details=_field("file", str(error))) from error


def video_frames(path: Path, vid_stride: int, settings: InferenceSettings) -> Iterator[np.ndarray]:
    frames: Iterator[np.ndarray] = iter_video_frames(path, vid_stride=vid_stride, max_frames=settings.max_video_frames)
    return frames


async def next_frames(frames: Iterator[np.ndarray], count: int) -> list[np.ndarray]:
    """The next ``count`` frames, decoded in a worker thread (a corrupt stream is a VALIDATION_ERROR)."""
    try:
        return await asyncio.to_thread(lambda: list(itertools.islice(frames, count)))
    except MediaError as error:
        raise BadRequest(str(error), details=_field("file", str(error))) from error
