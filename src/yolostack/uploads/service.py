"""The signed-URL upload flow: a session, a PUT of raw bytes, then a verified completion."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterable, Awaitable, Callable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.activity.service import activity as activity_service
from yolostack.core.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from yolostack.core.ids import new_id
from yolostack.core.timeutil import utcnow
from yolostack.storage.backends import ObjectStore
from yolostack.tables import Dataset, Model, UploadSession, UploadStatus
from yolostack.uploads.repository import UploadRepository
from yolostack.uploads.schemas import CompleteRequest, SignedUrlRequest

# Tables a session may upload into.
ASSET_TABLES: dict[str, type] = {"models": Model, "datasets": Dataset}
DATASET_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".ndjson")


class UploadService:
    async def open(
        self, session: AsyncSession, account_id: str, request: SignedUrlRequest, *, ttl: int, max_bytes: int
    ) -> UploadSession:
        table = ASSET_TABLES.get(request.asset_type)
        if table is None:
            raise BadRequest(f"uploads of {request.asset_type} are not supported yet")
        owned = await session.scalar(
            select(table.id).where(  # type: ignore[attr-defined]
                table.id == request.asset_id,  # type: ignore[attr-defined]
                table.owner_id == account_id,  # type: ignore[attr-defined]
                table.deleted_at.is_(None),  # type: ignore[attr-defined]
            )
        )
        if owned is None:
            raise NotFound(f"{request.asset_type[:-1]} '{request.asset_id}' not found")
        if request.asset_type == "datasets" and not request.filename.lower().endswith(DATASET_SUFFIXES):
            raise BadRequest(
                f"dataset uploads must be one of {', '.join(DATASET_SUFFIXES)}: package images in an archive"
            )
        if request.asset_type == "models" and not request.filename.lower().endswith(".pt"):
            raise BadRequest("model uploads must be a PyTorch checkpoint file ending in .pt")
        if request.total_bytes is not None and request.total_bytes > max_bytes:
            raise PayloadTooLarge(f"totalBytes exceeds the upload limit of {max_bytes} bytes")
        upload_id = new_id("upload")
        return await UploadRepository(session).add(
            UploadSession(
                id=upload_id,
                account_id=account_id,
                asset_type=request.asset_type,
                asset_id=request.asset_id,
                filename=request.filename,
                content_type=request.content_type,
                declared_bytes=request.total_bytes,
                storage_key=f"uploads/{account_id}/{upload_id}/{request.filename}",
                expires_at=utcnow() + timedelta(seconds=ttl),
            )
        )

    async def receive(
        self,
        session: AsyncSession,
        store: ObjectStore,
        upload_id: str,
        filename: str,
        body: AsyncIterable[bytes],
        max_bytes: int,
        room: Callable[[str], Awaitable[int]] | None = None,
    ) -> UploadSession:
        """Stream the PUT body into the store; the size limit holds while streaming, not after.

        ``room(account_id)`` gives the bytes the account's storage quota still allows.
        """
        upload = await UploadRepository(session).get(upload_id)
        if upload is None or upload.filename != filename:
            raise NotFound("upload session not found")
        if upload.status not in (UploadStatus.pending, UploadStatus.uploaded):
            raise NotFound("upload session not found or already completed")
        if upload.expires_at <= utcnow():
            raise NotFound("upload session has expired")
        limit = max_bytes if upload.declared_bytes is None else min(upload.declared_bytes, max_bytes)
        if room is not None:
            limit = min(limit, await room(upload.account_id))
        stored = await store.write(upload.storage_key, body, max_bytes=limit)
        upload.status = UploadStatus.uploaded
        upload.size, upload.sha256, upload.md5 = stored.size, stored.sha256, stored.md5
        return upload

    async def find_owned(self, session: AsyncSession, account_id: str, session_id: str) -> UploadSession | None:
        return await UploadRepository(session).get_owned(account_id, session_id)

    async def get_owned(self, session: AsyncSession, account_id: str, session_id: str) -> UploadSession:
        upload = await self.find_owned(session, account_id, session_id)
        if upload is None:
            raise NotFound(f"upload session '{session_id}' not found")
        return upload

    async def complete(
        self, session: AsyncSession, account_id: str, upload: UploadSession, request: CompleteRequest
    ) -> UploadSession:
        if upload.status in (UploadStatus.completed, UploadStatus.consumed):
            return upload  # idempotent: a retried completion is fine
        if upload.status != UploadStatus.uploaded:
            raise Conflict("nothing was uploaded for this session yet")
        problem = _mismatch(upload, request)
        if problem is not None:
            # The bytes stay where they are, unreferenced; the client uploads again with a new session.
            raise BadRequest(problem)
        upload.status, upload.completed_at = UploadStatus.completed, utcnow()
        await activity_service.record(
            session,
            account_id,
            "upload.completed",
            resource_type=upload.asset_type[:-1],
            resource_id=upload.asset_id,
            resource_name=upload.filename,
            message=f"Uploaded '{upload.filename}' ({upload.size} bytes)",
        )
        return upload


def _mismatch(upload: UploadSession, request: CompleteRequest) -> str | None:
    if upload.declared_bytes is not None and upload.size != upload.declared_bytes:
        return f"received {upload.size} bytes, expected totalBytes={upload.declared_bytes}"
    if request.checksum:
        expected = request.checksum.lower().removeprefix("sha256:")
        if not hmac.compare_digest(expected, upload.sha256 or ""):
            return "checksum (SHA-256) does not match the uploaded bytes"
    if request.md5 and not hmac.compare_digest(request.md5.lower(), upload.md5 or ""):
        return "md5 does not match the uploaded bytes"
    return None


upload = UploadService()
