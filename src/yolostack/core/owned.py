"""Owned resources with a slug (projects, datasets, models): the reads, slugs and refusals they share.

A resource belongs to one account, is addressed by id or by ``owner/slug`` and is private or public. Reads see
the caller's own live rows and others' public ones; anything else answers 404, so another account's private
resource cannot be told from a missing one. Changes need the owner (403 for another account's public
resource). A slug is unique among the live rows of its scope (the owner's, or the project's for models).

core knows no table: the base is generic over the resource's table and the owners' table, which only need
the columns named in ``OwnedTable`` and ``OwnerTable``. A row is ``(resource, …, owner)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Mapped

from yolostack.core.errors import BadRequest, Conflict, Forbidden, NotFound
from yolostack.core.ids import new_id
from yolostack.core.pagination import PageParams
from yolostack.core.repository import Repository
from yolostack.core.slugs import MAX_SLUG_LENGTH, slugify

PUBLIC = "public"  # the public Visibility's value (tables.Visibility.public)


class OwnedTable(Protocol):
    """The columns of an owned resource's table."""

    id: ClassVar[Mapped[str]]
    owner_id: ClassVar[Mapped[str]]
    slug: ClassVar[Mapped[str]]
    name: ClassVar[Mapped[str]]
    description: ClassVar[Mapped[str | None]]
    visibility: ClassVar[Mapped[Any]]
    created_at: ClassVar[Mapped[datetime]]
    updated_at: ClassVar[Mapped[datetime]]
    deleted_at: ClassVar[Mapped[datetime | None]]


class OwnerTable(Protocol):
    """The columns of the owners' table (accounts)."""

    id: ClassVar[Mapped[str]]
    username: ClassVar[Mapped[str]]


class OwnedCreate(Protocol):
    """The fields a create request gives every owned resource that has a license and tags."""

    @property
    def description(self) -> str | None: ...
    @property
    def visibility(self) -> Any: ...
    @property
    def license(self) -> str | None: ...
    @property
    def tags(self) -> Sequence[str]: ...
    @property
    def metadata(self) -> dict[str, Any] | None: ...


class ActivityLog(Protocol):
    """Where owned resources record what happened to them: the activity domain's service (``record``)."""

    async def record(self, *args: Any, **kwargs: Any) -> object: ...


ResourceT = TypeVar("ResourceT", bound=OwnedTable)
OwnerT = TypeVar("OwnerT", bound=OwnerTable)
RowT = TypeVar("RowT", bound=tuple[Any, ...])


def created_fields(data: OwnedCreate) -> dict[str, Any]:
    """The columns a create request sets alike on every owned resource."""
    return {
        "description": data.description,
        "visibility": data.visibility,
        "license": data.license,
        "tags": list(data.tags),
        "metadata_": data.metadata or {},
    }


def view_fields(resource: OwnedTable, owner: str) -> dict[str, Any]:
    """The fields every owned resource's read shape starts with."""
    return {
        "id": resource.id,
        "owner": owner,
        "slug": resource.slug,
        "name": resource.name,
        "description": resource.description,
        "visibility": resource.visibility,
        "created_at": resource.created_at,
        "updated_at": resource.updated_at,
    }


class OwnedRepository(Repository, Generic[ResourceT, OwnerT, RowT]):
    """Reads of owned resources as a viewer may see them; slugs unique among the live rows of a scope."""

    table: type[ResourceT]
    owners: type[OwnerT]

    def visible_to(self, viewer_id: str) -> ColumnElement[bool]:
        return or_(self.table.owner_id == viewer_id, self.table.visibility == PUBLIC)

    def readable(self, viewer_id: str) -> Select[*tuple[Any, ...]]:
        """``(resource, owner)`` rows of live resources the viewer may read."""
        return (
            select(self.table, self.owners)
            .join(self.owners, self.owners.id == self.table.owner_id)
            .where(self.table.deleted_at.is_(None), self.visible_to(viewer_id))
        )

    def path(self) -> tuple[InstrumentedAttribute[str], ...]:
        """The slug columns that follow the owner's username in a resource's path (``owner/slug``)."""
        return (self.table.slug,)

    def slug_scope(self) -> InstrumentedAttribute[str]:
        """The column within whose live rows a slug is unique."""
        return self.table.owner_id

    async def get_readable(self, viewer_id: str, resource_id: str) -> RowT | None:
        return await self._first(self.readable(viewer_id).where(self.table.id == resource_id))

    async def get_readable_by_slug(self, viewer_id: str, owner: str, *slugs: str) -> RowT | None:
        columns = self.path()
        if len(slugs) != len(columns):
            return None
        statement = self.readable(viewer_id).where(self.owners.username == owner)
        for column, slug in zip(columns, slugs, strict=True):
            statement = statement.where(column == slug)
        return await self._first(statement)

    async def _first(self, statement: Select[*tuple[Any, ...]]) -> RowT | None:
        row = (await self.session.execute(statement)).first()
        return None if row is None else cast(RowT, tuple(row))

    async def list_readable_of_owner(
        self, viewer_id: str, owner_id: str, params: PageParams, *criteria: ColumnElement[bool]
    ) -> tuple[Sequence[ResourceT], int]:
        """One owner's live resources that the viewer may read, newest first."""
        statement = (
            select(self.table)
            .where(self.table.owner_id == owner_id, self.table.deleted_at.is_(None), self.visible_to(viewer_id))
            .where(*criteria)
            .order_by(self.table.created_at.desc(), self.table.id)
        )
        return await self.page(statement, params)

    async def owner_named(self, username: str) -> OwnerT | None:
        return await self.session.scalar(select(self.owners).where(self.owners.username == username))

    async def slug_taken(self, scope_id: str, slug: str, *, except_id: str | None = None) -> bool:
        statement = select(self.table.id).where(
            self.slug_scope() == scope_id, self.table.slug == slug, self.table.deleted_at.is_(None)
        )
        if except_id is not None:
            statement = statement.where(self.table.id != except_id)
        return await self.session.scalar(statement) is not None

    async def free_slug(self, scope_id: str, slug: str) -> str:
        """``slug``, or ``slug-2``, ``slug-3``… when it is taken in the scope."""
        candidate, number = slug, 1
        while await self.slug_taken(scope_id, candidate):
            number += 1
            candidate = f"{slug[: MAX_SLUG_LENGTH - 8]}-{number}"
        return candidate

    async def add(self, resource: ResourceT) -> ResourceT:
        self.session.add(resource)
        await self.session.flush()
        return resource


class OwnedService(Generic[ResourceT, OwnerT, RowT]):
    """The rules every owned resource follows; ``kind`` names it in messages (``project 'a/b' not found``)."""

    kind: ClassVar[str]
    repository: type[OwnedRepository[ResourceT, OwnerT, RowT]]
    activity: ActivityLog

    async def find_by_id(self, session: AsyncSession, viewer: OwnerT, resource_id: str) -> RowT | None:
        return await self.repository(session).get_readable(viewer.id, resource_id)

    async def find_by_slug(self, session: AsyncSession, viewer: OwnerT, owner: str, *slugs: str) -> RowT | None:
        return await self.repository(session).get_readable_by_slug(viewer.id, owner, *slugs)

    async def get_by_id(self, session: AsyncSession, viewer: OwnerT, resource_id: str) -> RowT:
        row = await self.find_by_id(session, viewer, resource_id)
        if row is None:
            raise NotFound(f"{self.kind} '{resource_id}' not found")
        return row

    async def get_by_slug(self, session: AsyncSession, viewer: OwnerT, owner: str, *slugs: str) -> RowT:
        """By path: ``owner, slug`` (``owner, project, model`` for a model)."""
        row = await self.find_by_slug(session, viewer, owner, *slugs)
        if row is None:
            raise NotFound(f"{self.kind} '{'/'.join((owner, *slugs))}' not found")
        return row

    def require_owner(self, viewer: OwnerT, row: RowT) -> ResourceT:
        """The resource, when the viewer owns it; another account's public resource is read-only."""
        if row[-1].id != viewer.id:
            raise Forbidden(f"public {self.kind}s of other accounts are read-only")
        return cast(ResourceT, row[0])

    def require_workspace(self, account: OwnerT, owner: str | None) -> None:
        """A resource is created in the caller's own workspace (teams are not modelled yet)."""
        if owner not in (None, account.username):
            raise NotFound(f"workspace '{owner}' not found")

    async def check_new(self, session: AsyncSession, account: OwnerT, workspace: str | None, slug: str) -> None:
        """A new resource goes in the caller's own workspace (no teams yet) under a slug it has not used."""
        self.require_workspace(account, workspace)
        await self.check_slug_free(session, account.id, slug)

    def new_columns(self, account: OwnerT, slug: str, data: OwnedCreate) -> dict[str, Any]:
        """A new resource's id, owner, slug and the columns its create request sets."""
        return {"id": new_id(self.kind), "owner_id": account.id, "slug": slug, **created_fields(data)}

    async def prepare_update(
        self, session: AsyncSession, viewer: OwnerT, row: RowT, data: BaseModel
    ) -> tuple[ResourceT, dict[str, Any]]:
        """The resource (the viewer must own it) and the fields the request sets; a new name gives a new slug."""
        resource = self.require_owner(viewer, row)
        changes = data.model_dump(exclude_unset=True)
        if "starred" in changes:
            raise BadRequest(f"starring {self.kind}s is not supported by this server")
        name = changes.get("name")
        if name is not None and name != resource.name:
            # Renaming changes the slug used in URLs, as the Platform does.
            slug = await self.slug_for_rename(session, resource, name)
            renamed: Any = resource  # the protocol's columns are read-only to the type checker
            renamed.name, renamed.slug = name, slug
        return resource, changes

    async def record(
        self,
        session: AsyncSession,
        account_id: str,
        resource: ResourceT,
        verb: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """An activity event ``<kind>.<verb>``: "Project 'Parking' created"."""
        await self.activity.record(
            session,
            account_id,
            f"{self.kind}.{verb}",
            resource_type=self.kind,
            resource_id=resource.id,
            resource_name=resource.name,
            message=f"{self.kind.capitalize()} '{resource.name}' {verb.replace('_', ' ')}",
            details=dict(details or {}),
        )

    async def owner_named(self, session: AsyncSession, username: str) -> OwnerT:
        owner = await self.repository(session).owner_named(username)
        if owner is None:
            raise NotFound(f"user '{username}' not found")
        return owner

    async def add(
        self, session: AsyncSession, resource: ResourceT, slug: str, conflict: str | None = None
    ) -> ResourceT:
        """Add a resource whose slug was checked; a concurrent insert of the same slug answers 409 too."""
        try:
            async with session.begin_nested():
                return await self.repository(session).add(resource)
        except IntegrityError as error:
            raise Conflict(conflict or self.slug_conflict(slug)) from error

    async def save(self, session: AsyncSession, slug: str, conflict: str | None = None) -> None:
        """Flush a change; a slug a concurrent request took meanwhile answers 409 (unique live-slug index)."""
        try:
            await session.flush()
        except IntegrityError as error:
            raise Conflict(conflict or self.slug_conflict(slug)) from error

    async def check_slug_free(self, session: AsyncSession, scope_id: str, slug: str) -> None:
        if await self.repository(session).slug_taken(scope_id, slug):
            raise Conflict(self.slug_conflict(slug))

    async def slug_for_rename(self, session: AsyncSession, resource: ResourceT, name: str) -> str:
        """The slug renaming ``resource`` to ``name`` gives it (slugs follow names, as on the Platform)."""
        slug = slugify(name)
        if not slug:
            raise BadRequest("name must contain at least one letter or digit")
        repository = self.repository(session)
        scope_id = getattr(resource, repository.slug_scope().key)
        if await repository.slug_taken(scope_id, slug, except_id=resource.id):
            raise Conflict(self.slug_conflict(slug))
        return slug

    def slug_conflict(self, slug: str) -> str:
        return f"{self.kind} '{slug}' already exists"
