"""Projects: create, read, rename, trash; a project's models counted and listed as the viewer sees them."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.activity.service import activity as activity_service
from yolostack.core.ids import is_id, new_id
from yolostack.core.owned import OwnedService, view_fields
from yolostack.core.pagination import PageParams
from yolostack.projects.repository import ProjectRepository, ProjectRow
from yolostack.projects.schemas import ProjectCreate, ProjectDetail, ProjectSchema, ProjectUpdate
from yolostack.tables import Account, Model, Project, Visibility
from yolostack.trash.service import trash as trash_service


def project_view(project: Project, owner: str, model_count: int) -> ProjectSchema:
    return ProjectSchema(
        **view_fields(project, owner),
        project=project.slug,
        tags=list(project.tags or []),
        license=project.license,
        model_count=model_count,
    )


def project_detail(project: Project, owner: str, model_count: int) -> ProjectDetail:
    return ProjectDetail(**project_view(project, owner, model_count).model_dump(), metadata=project.metadata_)


class ProjectService(OwnedService[Project, Account, ProjectRow]):
    kind = "project"
    repository = ProjectRepository
    activity = activity_service

    async def create(self, session: AsyncSession, account: Account, data: ProjectCreate) -> Project:
        await self.check_new(session, account, data.owner, data.slug)
        project = Project(name=data.display_name, **self.new_columns(account, data.slug, data))
        await self.add(session, project, data.slug)
        await self.record(session, account.id, project, "created")
        return project

    async def find_own(self, session: AsyncSession, account: Account, ref: str) -> Project | None:
        """One of the caller's own live projects, by id or slug."""
        row = await (
            self.find_by_id(session, account, ref)
            if is_id(ref)
            else self.find_by_slug(session, account, account.username, ref)
        )
        return row[0] if row is not None and row[0].owner_id == account.id else None

    async def ensure_own(self, session: AsyncSession, account: Account, slug: str) -> Project:
        """The caller's project ``slug``, created (private, named after its slug) when there is none yet."""
        row = await self.find_by_slug(session, account, account.username, slug)
        if row is not None:
            return row[0]
        project = Project(
            id=new_id("project"), owner_id=account.id, slug=slug, name=slug, visibility=Visibility.private
        )
        return await self.add(session, project, slug)

    async def models(self, session: AsyncSession, viewer: Account, project: Project) -> Sequence[Model]:
        """The project's live models that ``viewer`` may see, newest first."""
        return await ProjectRepository(session).live_models(viewer.id, project.id)

    async def list_owned(
        self, session: AsyncSession, account: Account, params: PageParams
    ) -> tuple[list[ProjectSchema], int]:
        repository = ProjectRepository(session)
        projects, total = await repository.list_owned(account.id, params)
        return await self._views(repository, account.id, projects, account.username), total

    async def list_for_owner(
        self, session: AsyncSession, viewer: Account, owner: str, limit: int
    ) -> tuple[list[ProjectSchema], int]:
        owner_account = await self.owner_named(session, owner)
        repository = ProjectRepository(session)
        projects, total = await repository.list_readable_of_owner(
            viewer.id, owner_account.id, PageParams(page=1, limit=limit)
        )
        return await self._views(repository, viewer.id, projects, owner_account.username), total

    async def _views(
        self, repository: ProjectRepository, viewer_id: str, projects: Sequence[Project], owner: str
    ) -> list[ProjectSchema]:
        counts = await repository.model_counts(viewer_id, [project.id for project in projects])
        return [project_view(project, owner, counts.get(project.id, 0)) for project in projects]

    async def detail(
        self, session: AsyncSession, viewer: Account, row: ProjectRow, search: str | None = None
    ) -> tuple[ProjectDetail, Sequence[Model]]:
        project, owner = row
        repository = ProjectRepository(session)
        models = await repository.live_models(viewer.id, project.id, search)
        count = len(models) if not search else await self.model_count(session, viewer, project)
        return project_detail(project, owner.username, count), models

    async def model_count(self, session: AsyncSession, viewer: Account, project: Project) -> int:
        """The project's live models that ``viewer`` may see."""
        return (await ProjectRepository(session).model_counts(viewer.id, [project.id])).get(project.id, 0)

    async def update(self, session: AsyncSession, viewer: Account, row: ProjectRow, data: ProjectUpdate) -> Project:
        project, changes = await self.prepare_update(session, viewer, row, data)
        for field in ("description", "visibility", "license"):
            if field in changes:
                setattr(project, field, changes[field])
        if data.tags is not None:
            project.tags = list(data.tags)
        if data.metadata is not None:
            project.metadata_ = data.metadata
        await self.save(session, project.slug)
        await self.record(session, viewer.id, project, "updated", {"fields": sorted(changes)})
        return project

    async def delete(self, session: AsyncSession, viewer: Account, row: ProjectRow) -> int:
        """Move the project and its models to the trash; returns how many models went with it."""
        project = self.require_owner(viewer, row)
        cascaded = await trash_service.move(session, viewer.id, "project", project)
        return cascaded.get("model", 0)


project = ProjectService()
