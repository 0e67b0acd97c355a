"""What can be trashed, and what a trashed item takes with it.

Domains that add trashable tables (datasets, …) register them here; the trash service and the purge
job work from this table alone.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from yolostack.tables import Model, Project

# Called with the ids about to be deleted for good, before their rows go (files, caches, …).
PurgeHook = Callable[[AsyncSession, list[str]], Awaitable[None]]


@dataclass
class Child:
    table: type[Any]
    parent_column: InstrumentedAttribute[str]
    kind: str


@dataclass
class TrashKind:
    name: str
    table: type[Any]
    owner_column: InstrumentedAttribute[str]
    # Slugs are unique within this column among live rows (an owner's projects, a project's models).
    slug_scope: InstrumentedAttribute[str]
    children: list[Child] = field(default_factory=list)
    purge_hooks: list[PurgeHook] = field(default_factory=list)
    # The kind whose trashing must be undone first, e.g. a model's project.
    parent: tuple[str, InstrumentedAttribute[str]] | None = None


KINDS: dict[str, TrashKind] = {
    "project": TrashKind(
        name="project",
        table=Project,
        owner_column=Project.owner_id,
        slug_scope=Project.owner_id,
        children=[Child(Model, Model.project_id, "model")],
    ),
    "model": TrashKind(
        name="model",
        table=Model,
        owner_column=Model.owner_id,
        slug_scope=Model.project_id,
        parent=("project", Model.project_id),
    ),
}


def register(kind: TrashKind) -> None:
    KINDS[kind.name] = kind
