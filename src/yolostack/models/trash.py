"""Models leaving the trash for good take their checkpoint and serving artifacts with them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.core.files import delete_after_commit
from yolostack.tables import Model
from yolostack.trash.registry import KINDS

SERVING_FILES = ("model.onnx", "meta.json")


def model_files(model: Model) -> list[str]:
    keys = [model.weights_key] if model.weights_key else []
    if model.serving_key:
        keys += [f"{model.serving_key}/{name}" for name in SERVING_FILES]
    return keys


async def release_files(session: AsyncSession, model_ids: list[str]) -> None:
    if not model_ids:
        return
    models = await session.scalars(select(Model).where(Model.id.in_(model_ids)))
    delete_after_commit(session, [key for model in models for key in model_files(model)])


KINDS["model"].purge_hooks.append(release_files)
