from datetime import datetime
from typing import Annotated, Any

from fastapi import UploadFile
from pydantic import AfterValidator, Field, StringConstraints, field_validator

from yolostack.core.responses import ClientResponse, SeedResponse
from yolostack.core.schemas import RequestSchema, Schema
from yolostack.core.slugs import SLUG_PATTERN
from yolostack.core.validation import check_metadata
from yolostack.tables import ModelStatus, Visibility

Slug = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=SLUG_PATTERN)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
Metadata = Annotated[dict[str, Any], AfterValidator(check_metadata)]
Task = Annotated[str, StringConstraints(pattern=r"^(detect|segment|pose|obb|classify)$")]
# PATCH fields the clients send that have no column of their own: kept with the metrics, shown back as sent.
TRAINING_DETAILS = ("train_results", "best_epoch", "best_fitness", "version", "license", "color", "training_error")


class ModelCreate(RequestSchema):
    """The clients' JSON body; ``project`` is a slug of the caller's (or a ``project_…`` id)."""

    owner: str | None = Field(default=None, max_length=128)
    project: str = Field(min_length=1, max_length=128)
    model: Slug | None = None
    name: Name | None = None
    description: str | None = Field(default=None, max_length=10_000)
    metadata: Metadata | None = None
    task: Task | None = None
    visibility: Visibility = Visibility.private
    train_args: dict[str, Any] | None = None
    train_results: Any = None
    epochs: int | None = Field(default=None, ge=0, le=100_000)
    metrics: dict[str, Any] | None = None
    version: Any = None


class ModelUpload(RequestSchema):
    """The seed's multipart ``POST /api/models``: a .pt checkpoint, the project it goes in, and a name."""

    file: UploadFile = Field(description="A PyTorch checkpoint (.pt)")
    project_id: str = Field(min_length=1, max_length=64, description="The project (its id)")
    name: Name | None = Field(default=None, description="Display name (default: the file's name)")


class ModelUpdate(RequestSchema):
    name: Name | None = None
    description: str | None = Field(default=None, max_length=10_000)
    metadata: Metadata | None = None
    visibility: Visibility | None = None
    status: ModelStatus | None = None
    train_args: dict[str, Any] | None = None
    epochs: int | None = Field(default=None, ge=0, le=100_000)
    metrics: dict[str, Any] | None = None
    train_results: Any = None
    best_epoch: int | None = None
    best_fitness: float | None = None
    version: Any = None
    license: str | None = Field(default=None, max_length=64)
    color: str | None = Field(default=None, max_length=32)
    training_error: Any = None
    starred: bool | None = None

    @field_validator("name", "visibility", "status")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Omitted means "leave as is"; an explicit null would blank a required column.
        if value is None:
            raise ValueError("must not be null")
        return value


class ServingState(Schema):
    status: str
    error: str | None = None


class ModelSchema(Schema):
    """One shape for both dialects: the seed reads ``slug``/``projectId``, the clients ``owner``/``project``/``model``."""

    id: str
    owner: str
    project: str
    project_id: str
    project_name: str
    model: str
    slug: str
    name: str
    description: str | None
    task: str | None
    status: str
    visibility: Visibility
    has_weights: bool
    star_count: int = 0
    is_starred: bool = False
    epochs: int | None
    train_args: dict[str, Any] | None
    metrics: dict[str, Any] | None
    class_names: dict[str, str] | None
    imgsz: int | None
    parameters: int | None
    file: dict[str, int] | None
    serving: ServingState
    created_at: datetime
    updated_at: datetime


class ModelDetail(ModelSchema):
    """The read shape plus custom metadata and the training details the clients PATCH in (each only when set)."""

    metadata: dict[str, Any]
    train_results: Any = None
    best_epoch: int | None = None
    best_fitness: float | None = None
    version: Any = None
    license: str | None = None
    color: str | None = None
    training_error: Any = None


class ModelFile(Schema):
    name: str
    size: int | None
    download_url: str = Field(description="Absolute, signed, no auth needed; the .pt file's name ends it")


class Trashed(Schema):
    id: str
    trashed: bool


class ModelCreated(SeedResponse[ModelSchema]):
    """Both dialects: the seed's ``data`` and the clients' ``{id, owner, project, model, name, region}``."""

    id: str
    owner: str
    project: str
    model: str
    name: str
    region: str


class ModelFiles(SeedResponse[list[ModelFile]]):
    """``files[0]`` is the checkpoint (``YOLO("ul://owner/project/model")`` downloads it)."""

    files: list[ModelFile]


class ModelList(ClientResponse):
    models: list[ModelSchema]
    total: int
    region: str


class ModelRead(ClientResponse):
    model: ModelDetail
    is_owner: bool
    region: str


class ModelUpdated(SeedResponse[ModelDetail]):
    model: ModelDetail
    slug: str
