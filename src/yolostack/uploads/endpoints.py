from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from yolostack.auth.dependencies import UploadsAuth
from yolostack.auth.scopes import Scope
from yolostack.core.db import DbSession
from yolostack.core.files import on_commit
from yolostack.core.limits import limit_body
from yolostack.core.responses import Body, both, client, errors
from yolostack.models.service import model as model_service
from yolostack.storage.service import UPLOAD, Files
from yolostack.storage.usage import ensure_room
from yolostack.tables import Account, UploadStatus
from yolostack.uploads.schemas import (
    CompleteRequest,
    SignedUploadResponse,
    SignedUrlRequest,
    UploadCompleted,
    UploadReceived,
)
from yolostack.uploads.service import upload as upload_service

router = APIRouter(tags=["uploads"])
put_router = APIRouter(tags=["uploads"])


@router.post("/signed-url", response_model=SignedUploadResponse, responses=errors(413))
async def create_signed_upload_url(
    request: Request, auth: UploadsAuth, session: DbSession, files: Files, data: SignedUrlRequest
) -> Body:
    """Open an upload: ``PUT`` the raw bytes to ``uploadUrl`` (no key needed), then complete it."""
    auth.require(Scope(data.asset_type))
    storage = request.app.state.settings.storage
    await ensure_room(session, request.app.state.settings, auth.account, data.total_bytes or 0)
    upload = await upload_service.open(
        session, auth.account_id, data, ttl=storage.upload_url_ttl_seconds, max_bytes=storage.max_upload_bytes
    )
    fields: dict[str, Any] = {
        "sessionId": upload.id,
        "uploadUrl": files.upload_url(upload.id, upload.filename),
        "expiresAt": upload.expires_at,
        "headers": {"Content-Type": "application/octet-stream"},
    }
    return both(fields, **fields)


@router.post("/complete", response_model=UploadCompleted, responses=errors(409))
async def complete_upload(
    request: Request, auth: UploadsAuth, session: DbSession, files: Files, data: CompleteRequest
) -> Body:
    """Verify what arrived (size, optional SHA-256 or MD5) and make it visible to its asset.

    For a model this attaches the checkpoint and queues its conversion for serving.
    """
    upload = await upload_service.get_owned(session, auth.account_id, data.session_id)
    auth.require(Scope(upload.asset_type))
    was_uploaded = upload.status == UploadStatus.uploaded
    upload = await upload_service.complete(session, auth.account_id, upload, data)
    if upload.asset_type == "models" and was_uploaded:
        await model_service.attach_upload(session, files.store, upload)
        on_commit(session, request.app.state.conversion_task.wake)
    file = {"size": upload.size, "contentType": upload.content_type, "sha256": upload.sha256}
    return both({"sessionId": upload.id, "file": file}, file=file)


@put_router.put(
    "/uploads/{token}/{filename}",
    response_model=UploadReceived,
    responses=errors(403, 409, 413),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def put_upload(request: Request, session: DbSession, files: Files, token: str, filename: str) -> Body:
    """Receive the bytes of a signed upload (the token is the permission; no API key)."""
    claims = files.signer.verify(UPLOAD, token)
    upload_id = str(claims["s"])
    max_bytes = request.app.state.settings.storage.max_upload_bytes
    settings = request.app.state.settings
    limit_body(request, max_bytes, raw=True)  # streamed to the store, never held: the upload's own cap

    async def room(account_id: str) -> int:
        account = await session.get(Account, account_id)
        assert account is not None
        return await ensure_room(session, settings, account, 0)

    upload = await upload_service.receive(
        session, files.store, upload_id, filename, request.stream(), max_bytes, room=room
    )
    return client(size=upload.size)
