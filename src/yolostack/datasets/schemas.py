from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from yolostack.core.responses import ClientResponse, SeedResponse
from yolostack.core.schemas import RequestSchema, Schema
from yolostack.core.slugs import slugify
from yolostack.projects.schemas import Metadata, Name, Slug, Tags
from yolostack.tables import Visibility

Task = Literal["detect", "segment", "pose", "obb", "classify"]
SplitName = Literal["train", "val", "test"]


class DatasetCreate(RequestSchema):
    """Seed body ``{name, task, description}`` or client body ``{dataset: slug, name, …}``."""

    dataset: Slug | None = None
    name: Name | None = None
    description: str | None = Field(default=None, max_length=10_000)
    task: Task = "detect"
    visibility: Visibility = Visibility.private
    metadata: Metadata | None = None
    tags: Tags = Field(default_factory=list)
    license: str | None = Field(default=None, max_length=64)
    class_names: list[str] | None = Field(default=None, max_length=10_000)
    owner: str | None = Field(default=None, max_length=128)

    @model_validator(mode="after")
    def _name_or_slug(self) -> DatasetCreate:
        if self.dataset is None and self.name is None:
            raise ValueError("give 'name' (and optionally 'dataset', the URL slug)")
        if self.dataset is None:
            assert self.name is not None
            self.dataset = slugify(self.name) or None
            if self.dataset is None:
                raise ValueError("name must contain at least one letter or digit")
        if self.name is None:
            self.name = self.dataset
        return self


class DatasetUpdate(RequestSchema):
    name: Name | None = None
    description: str | None = Field(default=None, max_length=10_000)
    visibility: Visibility | None = None
    metadata: Metadata | None = None
    tags: Tags | None = None
    license: str | None = Field(default=None, max_length=64)
    class_names: list[str] | None = Field(default=None, max_length=10_000)
    task: Task | None = None


class IngestRequest(RequestSchema):
    session_id: str = Field(min_length=1, max_length=40)
    target_split: SplitName | None = None
    conflict_policy: Literal["skip", "keep_both", "replace"] = "skip"


class Splits(Schema):
    train: int = 0
    val: int = 0
    test: int = 0
    labeled: int = 0


class DatasetSchema(Schema):
    """One shape for both dialects: the seed reads ``slug``/``classCount``, the clients ``dataset``/``owner``."""

    id: str
    owner: str
    dataset: str
    slug: str
    name: str
    description: str | None
    task: str
    visibility: Visibility
    status: str
    image_count: int
    splits: Splits
    class_names: list[str]
    class_count: int
    kpt_shape: list[int] | None = None
    flip_idx: list[int] | None = None
    error_count: int = 0
    version: int
    star_count: int = 0
    is_starred: bool = False
    processing_error: dict[str, Any] | None = None
    processing_progress: dict[str, Any] | None = None
    tags: list[str]
    license: str | None
    created_at: datetime
    updated_at: datetime


class DatasetDetail(DatasetSchema):
    metadata: dict[str, Any]


class ImageSchema(Schema):
    id: str
    hash: str
    ext: str
    name: str
    width: int
    height: int
    bytes: int
    split: str
    label_count: int
    error: str | None
    labels: list[dict[str, Any]] | None = None
    image_url: str | None = None


class LabelsUpdate(RequestSchema):
    labels: list[dict[str, Any]] | None = Field(default=None, max_length=10_000)
    split: SplitName | None = None


class DatasetCreated(SeedResponse[DatasetSchema]):
    """The seed's ``data`` and the clients' ``{id, owner, dataset, name, region}``."""

    id: str
    owner: str
    dataset: str
    name: str
    region: str


class DatasetList(ClientResponse):
    datasets: list[DatasetSchema]
    total: int
    region: str


class DatasetResponse(ClientResponse):
    dataset: DatasetDetail


class DatasetUpdated(SeedResponse[DatasetDetail]):
    dataset: str = Field(description="The slug, new when the name changed")


class TrashedDataset(Schema):
    id: str
    trashed: bool


class DatasetExportLink(Schema):
    download_url: str = Field(description="A signed link to the dataset as Ultralytics NDJSON")
    version: int
    cached: bool


class DatasetExportResponse(SeedResponse[DatasetExportLink], DatasetExportLink):
    """The link twice: in ``data`` (seed) and at the top level (clients, ``ul://`` downloads)."""


class IngestQueued(Schema):
    job_id: str = Field(description="Read it back at GET /api/jobs/{jobId}")
    status: Literal["queued"] = "queued"


class IngestResponse(SeedResponse[IngestQueued], IngestQueued):
    pass


class ImagePage(ClientResponse):
    images: list[ImageSchema]
    total: int
    has_more: bool
    next_cursor: str | None
    classes: list[str]
    error_count: int


class ImageProperties(ImageSchema):
    dataset_id: str
    filename: str
    extension: str = Field(description="The stored file's extension without the dot, e.g. jpg")
    annotation_count: int
    retained_by_version: bool = False
    created_at: datetime


class ImageDetail(ClientResponse):
    properties: ImageProperties
    labels: list[dict[str, Any]]
    class_names: list[str]
    metadata: dict[str, Any]
    image_url: str | None


class ImageUpdated(ClientResponse):
    labels: list[dict[str, Any]]
    label_count: int
    split: str


class ImageDeleted(ClientResponse):
    deleted_image_id: str
    deleted_count: int
