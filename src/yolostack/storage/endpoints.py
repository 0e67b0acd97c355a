"""``GET /files/{token}/{name}``: signed downloads from local disk, with exact lengths and Range."""

from __future__ import annotations

import mimetypes
import re
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import Response, StreamingResponse

from yolostack.core.errors import AppError, NotFound
from yolostack.core.responses import errors
from yolostack.storage.service import DOWNLOAD, Files

router = APIRouter(tags=["files"])

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(AppError):
    status_code = 416
    code = "RANGE_NOT_SATISFIABLE"
    default_message = "Requested range not satisfiable"


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One ``bytes=a-b`` / ``a-`` / ``-n`` range as inclusive offsets, None for the whole file."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None or match.groups() == ("", ""):
        # Multiple or malformed ranges: serve the whole file, as RFC 9110 allows.
        return None
    first, last = match.groups()
    if first and last and int(last) < int(first):
        return None  # "bytes=5-3" is invalid, not unsatisfiable: RFC 9110 §14.1.1 says ignore it
    if first == "":
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise RangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return start, end


# Two routes rather than one with both methods: one would give OpenAPI the same operation id twice.
@router.head("/files/{token}/{filename}", response_model=None, include_in_schema=False)
@router.get(
    "/files/{token}/{filename}",
    response_model=None,
    response_class=StreamingResponse,
    responses={
        200: {"description": "The file", "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
        206: {
            "description": "The requested range",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        **errors(403, 416),
    },
)
async def download_file(
    files: Files, token: str, filename: str, range_header: Annotated[str | None, Header(alias="range")] = None
) -> Response:
    """Serve a signed file; no API key needed, the link itself is the permission."""
    claims = files.signer.verify(DOWNLOAD, token)
    if claims.get("n") != filename:
        raise NotFound("file not found")
    key = str(claims["k"])
    size = await files.store.size(key)
    if size is None:
        raise NotFound("file not found")
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=0"}
    selected = parse_range(range_header, size)
    if selected is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(files.store.read(key), media_type=content_type, headers=headers)
    start, end = selected
    headers["Content-Length"] = str(end - start + 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(
        files.store.read(key, start, end), status_code=206, media_type=content_type, headers=headers
    )
