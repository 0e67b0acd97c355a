"""Models leaving the trash for good take their checkpoint, serving artifacts and export files with them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.core.files import delete_after_commit
from yolostack.exports.service import exports as export_service
from yolostack.models.service import model_files
from yolostack.tables import Model
from yolostack.trash.registry import KINDS


async def release_files(session: AsyncSession, model_ids: list[str]) -> None:
    if not model_ids:
        return
    models = await session.scalars(select(Model).where(Model.id.in_(model_ids)))
    delete_after_commit(session, [key for model in models for key in model_files(model)])
    # Their exports' rows go with them (ON DELETE CASCADE); the artifacts must be deleted here.
    delete_after_commit(session, list(await export_service.artifact_keys(session, model_ids)))


KINDS["model"].purge_hooks.append(release_files)
