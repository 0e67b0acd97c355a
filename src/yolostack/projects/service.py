from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.account.repository import AccountRepository
from yolostack.activity.service import activity as activity_service
from yolostack.core.errors import BadRequest, Conflict, Forbidden, NotFound
from yolostack.core.ids import new_id
from yolostack.core.pagination import PageParams
from yolostack.core.slugs import slugify
from yolostack.projects.repository import ProjectRepository, ProjectRow
from yolostack.projects.schemas import ProjectCreate, ProjectDetail, ProjectSchema, ProjectUpdate
from yolostack.tables import Account, Model, Project
from yolostack.trash.service import trash as trash_service


def project_view(project: Project, owner: str, model_count: int) -> ProjectSchema:
    return ProjectSchema(
        id=project.id,
        owner=owner,
        project=project.slug,
        slug=project.slug,
        name=project.name,
        description=project.description,
        visibility=project.visibility,
        tags=list(project.tags or []),
        license=project.license,
        model_count=model_count,
        created_at=project.created_at,
        updated_at=project.updated_at,
    )


def project_detail(project: Project, owner: str, model_count: int) -> ProjectDetail:
    return ProjectDetail(**project_view(project, owner, model_count).model_dump(), metadata=project.metadata_)


class ProjectService:
    async def create(self, session: AsyncSession, account: Account, data: ProjectCreate) -> Project:
        if data.owner not in (None, account.username):
            # Teams are not modelled yet; any other workspace is one the caller cannot see.
            raise NotFound(f"workspace '{data.owner}' not found")
        repository = ProjectRepository(session)
        if await repository.slug_taken(account.id, data.slug):
            raise Conflict(f"project '{data.slug}' already exists")
        try:
            project = await repository.add(
                Project(
                    id=new_id("project"),
                    owner_id=account.id,
                    slug=data.slug,
                    name=data.display_name,
                    description=data.description,
                    visibility=data.visibility,
                    license=data.license,
                    tags=list(data.tags),
                    metadata_=data.metadata or {},
                )
            )
        except IntegrityError as exc:
            # A concurrent request took the slug between the check and the insert (unique live-slug index).
            raise Conflict(f"project '{data.slug}' already exists") from exc
        await self._record(session, account.id, project, "created")
        return project

    async def get_by_id(self, session: AsyncSession, viewer: Account, project_id: str) -> ProjectRow:
        row = await ProjectRepository(session).get_readable(viewer.id, project_id)
        if row is None:
            raise NotFound(f"project '{project_id}' not found")
        return row

    async def get_by_slug(self, session: AsyncSession, viewer: Account, owner: str, slug: str) -> ProjectRow:
        row = await ProjectRepository(session).get_readable_by_slug(viewer.id, owner, slug)
        if row is None:
            raise NotFound(f"project '{owner}/{slug}' not found")
        return row

    def _require_owner(self, viewer: Account, row: ProjectRow) -> Project:
        project, owner = row
        if owner.id != viewer.id:
            raise Forbidden("public projects of other accounts are read-only")
        return project

    async def list_owned(
        self, session: AsyncSession, account: Account, params: PageParams
    ) -> tuple[list[ProjectSchema], int]:
        repository = ProjectRepository(session)
        projects, total = await repository.list_owned(account.id, params)
        return await self._views(repository, account.id, projects, account.username), total

    async def list_for_owner(
        self, session: AsyncSession, viewer: Account, owner: str, limit: int
    ) -> tuple[list[ProjectSchema], int]:
        owner_account = await AccountRepository(session).get_by_username(owner)
        if owner_account is None:
            raise NotFound(f"user '{owner}' not found")
        repository = ProjectRepository(session)
        projects, total = await repository.list_readable_of_owner(viewer.id, owner_account.id, limit)
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
        project = self._require_owner(viewer, row)
        changes = data.model_dump(exclude_unset=True)
        if "starred" in changes:
            raise BadRequest("starring projects is not supported by this server")
        if data.name is not None and data.name != project.name:
            # Renaming changes the slug used in URLs, as the Platform does.
            slug = slugify(data.name)
            if not slug:
                raise BadRequest("name must contain at least one letter or digit")
            if await ProjectRepository(session).slug_taken(viewer.id, slug, except_id=project.id):
                raise Conflict(f"project '{slug}' already exists")
            project.name, project.slug = data.name, slug
        for field in ("description", "visibility", "license"):
            if field in changes:
                setattr(project, field, changes[field])
        if data.tags is not None:
            project.tags = list(data.tags)
        if data.metadata is not None:
            project.metadata_ = data.metadata
        try:
            await session.flush()
        except IntegrityError as exc:
            raise Conflict(f"project '{project.slug}' already exists") from exc
        await self._record(session, viewer.id, project, "updated", details={"fields": sorted(changes)})
        return project

    async def delete(self, session: AsyncSession, viewer: Account, row: ProjectRow) -> int:
        """Move the project and its models to the trash; returns how many models went with it."""
        project = self._require_owner(viewer, row)
        cascaded = await trash_service.move(session, viewer.id, "project", project)
        return cascaded.get("model", 0)

    async def _record(
        self,
        session: AsyncSession,
        account_id: str,
        project: Project,
        verb: str,
        details: dict[str, object] | None = None,
    ) -> None:
        await activity_service.record(
            session,
            account_id,
            f"project.{verb}",
            resource_type="project",
            resource_id=project.id,
            resource_name=project.name,
            message=f"Project '{project.name}' {verb}",
            details=dict(details or {}),
        )


project = ProjectService()
