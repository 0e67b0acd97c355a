from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints, field_validator, model_validator

from yolostack.core.responses import ClientResponse, SeedResponse
from yolostack.core.schemas import RequestSchema, Schema
from yolostack.core.slugs import SLUG_PATTERN, slugify
from yolostack.core.validation import check_metadata
from yolostack.tables import Visibility

Slug = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=SLUG_PATTERN)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
Metadata = Annotated[dict[str, Any], AfterValidator(check_metadata)]
Tags = Annotated[list[Annotated[str, StringConstraints(max_length=64)]], Field(max_length=50)]


class ProjectCreate(RequestSchema):
    """Seed body ``{name, description}`` or client body ``{project: slug, name, …}``."""

    project: Slug | None = None
    name: Name | None = None
    description: str | None = Field(default=None, max_length=10_000)
    metadata: Metadata | None = None
    visibility: Visibility = Visibility.private
    tags: Tags = Field(default_factory=list)
    license: str | None = Field(default=None, max_length=64)
    owner: str | None = Field(default=None, max_length=128)

    @model_validator(mode="after")
    def _name_or_slug(self) -> "ProjectCreate":
        if self.project is None and self.name is None:
            raise ValueError("give 'name' (and optionally 'project', the URL slug)")
        if self.project is None:
            assert self.name is not None
            self.project = slugify(self.name)
            if not self.project:
                raise ValueError("name must contain at least one letter or digit")
        if self.name is None:
            self.name = self.project
        return self

    @property
    def slug(self) -> str:
        assert self.project is not None
        return self.project

    @property
    def display_name(self) -> str:
        assert self.name is not None
        return self.name


class ProjectUpdate(RequestSchema):
    name: Name | None = None
    description: str | None = Field(default=None, max_length=10_000)
    metadata: Metadata | None = None
    visibility: Visibility | None = None
    tags: Tags | None = None
    license: str | None = Field(default=None, max_length=64)
    starred: bool | None = None

    @field_validator("name", "visibility")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Omitted means "leave as is"; an explicit null would blank a required column.
        if value is None:
            raise ValueError("must not be null")
        return value


class ProjectSchema(Schema):
    """One shape for both dialects: the seed reads ``slug``, the clients read ``project`` and ``owner``."""

    id: str
    owner: str
    project: str
    slug: str
    name: str
    description: str | None
    visibility: Visibility
    tags: list[str]
    license: str | None
    model_count: int
    star_count: int = 0
    is_starred: bool = False
    created_at: datetime
    updated_at: datetime


class ProjectDetail(ProjectSchema):
    metadata: dict[str, Any]


class ProjectModelSchema(Schema):
    id: str
    model: str
    name: str
    task: str | None
    status: str
    has_weights: bool = False
    epoch_count: int = 0
    created_at: datetime
    updated_at: datetime


class ProjectCreated(SeedResponse[ProjectSchema]):
    """The seed's ``data`` and the clients' ``{id, owner, project, name, region}``."""

    id: str
    owner: str
    project: str
    name: str
    region: str


class ProjectList(ClientResponse):
    projects: list[ProjectSchema]
    total: int
    region: str


class ProjectWithModels(ClientResponse):
    project: ProjectDetail
    models: list[ProjectModelSchema]
    is_owner: bool


class ProjectUpdated(SeedResponse[ProjectDetail]):
    project: str = Field(description="The slug, new when the name changed")


class TrashedProject(Schema):
    id: str
    trashed: bool
    cascaded_models: int


class ProjectTrashed(SeedResponse[TrashedProject]):
    cascaded_models: int


class ProjectDeleted(ClientResponse):
    cascaded_models: int
