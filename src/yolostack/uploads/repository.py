from __future__ import annotations

from sqlalchemy import select

from yolostack.core.repository import Repository
from yolostack.tables import UploadSession


class UploadRepository(Repository):
    async def add(self, upload: UploadSession) -> UploadSession:
        self.session.add(upload)
        await self.session.flush()
        return upload

    async def get_owned(self, account_id: str, session_id: str) -> UploadSession | None:
        return await self.session.scalar(
            select(UploadSession).where(UploadSession.id == session_id, UploadSession.account_id == account_id)
        )

    async def get(self, session_id: str) -> UploadSession | None:
        """By id alone: only for the signed PUT, whose token already names the session."""
        return await self.session.get(UploadSession, session_id)
