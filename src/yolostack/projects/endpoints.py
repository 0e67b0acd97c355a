"""Seed routes address projects by id, client routes by ``{owner}/{slug}``; a segment with ``_`` is an id."""

from typing import Annotated

from fastapi import APIRouter, Query, Request

from yolostack.auth.dependencies import ProjectsAuth
from yolostack.core.db import DbSession
from yolostack.core.errors import NotFound
from yolostack.core.ids import is_id
from yolostack.core.pagination import MAX_LIMIT, PageMeta, PageParamsQuery
from yolostack.core.responses import Body, SeedPage, SeedResponse, both, client, errors, link, seed
from yolostack.projects.schemas import (
    ProjectCreate,
    ProjectCreated,
    ProjectDeleted,
    ProjectDetail,
    ProjectList,
    ProjectModelSchema,
    ProjectSchema,
    ProjectTrashed,
    ProjectUpdate,
    ProjectUpdated,
    ProjectWithModels,
)
from yolostack.projects.service import project as project_service
from yolostack.projects.service import project_detail, project_view

router = APIRouter(tags=["projects"])


@router.get("", response_model=SeedPage[ProjectSchema])
async def list_projects(auth: ProjectsAuth, session: DbSession, pagination: PageParamsQuery) -> Body:
    """The caller's projects, newest first (seed)."""
    projects, total = await project_service.list_owned(session, auth.account, pagination)
    return seed(projects, meta=PageMeta.of(pagination, total))


# The fuzzer follows these from a created project to the routes that read, change and delete it.
_BY_SLUG = {"owner": "$response.body#/owner", "slug": "$response.body#/project"}
_CREATED_LINKS = {
    "GetProjectById": link("get_project_or_list_owner", ref="$response.body#/id"),
    "ListOwnersProjects": link("get_project_or_list_owner", ref="$response.body#/owner"),
    "GetProject": link("get_project", **_BY_SLUG),
    "UpdateProject": link("update_project", **_BY_SLUG),
    "DeleteProject": link("delete_project", **_BY_SLUG),
    "DeleteProjectById": link("delete_project_by_id", ref="$response.body#/id"),
}


@router.post(
    "", status_code=201, response_model=ProjectCreated, responses={201: {"links": _CREATED_LINKS}, **errors(409)}
)
async def create_project(request: Request, auth: ProjectsAuth, session: DbSession, data: ProjectCreate) -> Body:
    """Create a project; an existing slug is a 409."""
    project = await project_service.create(session, auth.account, data)
    view = project_view(project, auth.account.username, 0)
    return both(
        view,
        id=project.id,
        owner=auth.account.username,
        project=project.slug,
        name=project.name,
        region=request.app.state.settings.region,
    )


@router.get("/{ref}", response_model=SeedResponse[ProjectDetail] | ProjectList)
async def get_project_or_list_owner(
    request: Request,
    auth: ProjectsAuth,
    session: DbSession,
    ref: str,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
) -> Body:
    """``/api/projects/{projectId}`` (seed) or ``/api/projects/{owner}`` (clients' list)."""
    if is_id(ref):
        project, owner = await project_service.get_by_id(session, auth.account, ref)
        count = await project_service.model_count(session, auth.account, project)
        return seed(project_detail(project, owner.username, count))
    projects, total = await project_service.list_for_owner(session, auth.account, ref, limit)
    return client(projects=projects, total=total, region=request.app.state.settings.region)


@router.delete("/{ref}", response_model=ProjectTrashed)
async def delete_project_by_id(auth: ProjectsAuth, session: DbSession, ref: str) -> Body:
    """Move a project (and its models) to the trash (seed)."""
    if not is_id(ref):
        raise NotFound("project not found: address it by id or by /{owner}/{slug}")
    row = await project_service.get_by_id(session, auth.account, ref)
    cascaded = await project_service.delete(session, auth.account, row)
    return both({"id": ref, "trashed": True, "cascadedModels": cascaded}, cascadedModels=cascaded)


@router.get("/{owner}/{slug}", response_model=ProjectWithModels)
async def get_project(
    auth: ProjectsAuth,
    session: DbSession,
    owner: str,
    slug: str,
    search: Annotated[str | None, Query(max_length=200)] = None,
) -> Body:
    """A project with its models (clients)."""
    row = await project_service.get_by_slug(session, auth.account, owner, slug)
    detail, models = await project_service.detail(session, auth.account, row, search)
    rows = [
        ProjectModelSchema(
            id=model.id,
            model=model.slug,
            name=model.name,
            task=model.task,
            status=model.status,
            created_at=model.created_at,
            updated_at=model.updated_at,
        )
        for model in models
    ]
    return client(project=detail, models=rows, isOwner=row[1].id == auth.account_id)


@router.patch("/{owner}/{slug}", response_model=ProjectUpdated, responses=errors(409))
async def update_project(auth: ProjectsAuth, session: DbSession, owner: str, slug: str, data: ProjectUpdate) -> Body:
    """Change a project; a new name also changes its slug."""
    row = await project_service.get_by_slug(session, auth.account, owner, slug)
    project = await project_service.update(session, auth.account, row, data)
    count = await project_service.model_count(session, auth.account, project)
    return both(project_detail(project, owner, count), project=project.slug)


@router.delete("/{owner}/{slug}", response_model=ProjectDeleted)
async def delete_project(auth: ProjectsAuth, session: DbSession, owner: str, slug: str) -> Body:
    """Move a project (and its models) to the trash for 30 days (clients)."""
    row = await project_service.get_by_slug(session, auth.account, owner, slug)
    cascaded = await project_service.delete(session, auth.account, row)
    return client(cascadedModels=cascaded)
