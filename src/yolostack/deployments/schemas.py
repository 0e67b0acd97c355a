"""Deployment request bodies: create (seed by model id, clients by project/model slugs) and the PATCH actions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from yolostack.core.responses import ClientResponse, SeedPage, SeedResponse
from yolostack.core.schemas import RequestSchema, Schema

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
Cpu = Literal[1, 2, 4, 6, 8]
MemoryGi = Literal[2, 4, 8, 16, 24, 32]
# Bounds a column can hold; the server's own ceiling (deployments.max_instances) is checked by the service.
Instances = Annotated[int, Field(ge=0, le=10_000)]


class ResourcesRequest(RequestSchema):
    """Resources a create or a resize may set; what is omitted keeps its default (or its current value)."""

    cpu: Cpu | None = Field(default=None, description="vCPU cores per replica")
    memory_gi: MemoryGi | None = Field(default=None, description="Memory per replica, GiB")
    min_instances: Instances | None = Field(default=None, description="Replicas kept running (0: scale to zero)")
    max_instances: Instances | None = Field(default=None, description="Most replicas under load")


class DeploymentCreate(ResourcesRequest):
    """Clients (``POST /api/deployments/{owner}``): ``{project, model, deployment, name, region, cpu?, memoryGi?}``."""

    project: Text = Field(description="The model's project (slug)")
    model: Text = Field(description="The model (slug)")
    deployment: Text = Field(description="The deployment's slug: lowercase letters, digits and dashes")
    name: Text | None = Field(default=None, description="Display name (default: the slug)")
    region: str | None = Field(default=None, max_length=64, description="A region label (default: the server's)")


class SeedDeploymentCreate(ResourcesRequest):
    """Seed (``POST /api/deployments``): ``{modelId, region, minInstances, maxInstances}``."""

    model_id: Text = Field(description="The model to serve (its id)")
    name: Text | None = Field(default=None, description="Display name (the slug is made from it)")
    region: str | None = Field(default=None, max_length=64, description="A region label (default: the server's)")


DeploymentAction = Literal["start", "stop", "resize", "replace", "camera"]


class DeploymentUpdate(ResourcesRequest):
    """``PATCH /api/deployments/{owner}/{deployment}``: one of three shapes (clients.md §1.4).

    - ``{action: start|stop}``; ``{action: resize, cpu?, memoryGi?, minInstances?, maxInstances?}``;
      ``{action: replace, project + model | model: ul://owner/project/model | modelId}``; ``camera`` is refused;
    - ``{name}``: rename (the slug follows the name);
    - ``{metadata}``: replace the custom metadata (``null`` clears it).
    """

    action: DeploymentAction | None = None
    name: Text | None = Field(default=None, description="Rename (without an action); a model's name with replace")
    metadata: dict[str, Any] | None = Field(default=None, description="Custom JSON metadata (without an action)")
    project: Text | None = Field(default=None, description="replace: the new model's project (slug)")
    model: Text | None = Field(default=None, description="replace: the new model (slug, or ul://owner/project/model)")
    model_id: Text | None = Field(default=None, description="replace: the new model by id")
    url: str | None = Field(default=None, max_length=2048, description="camera: an RTSP URL (not supported)")

    @model_validator(mode="after")
    def _one_shape(self) -> DeploymentUpdate:
        if self.action is None and not {"name", "metadata"} & self.model_fields_set:
            raise ValueError("send one of {action}, {name} or {metadata}")
        return self


class DeploymentResources(Schema):
    cpu: int
    memory_gi: int
    min_instances: int
    max_instances: int


class DeploymentSchema(Schema):
    """Clients.md's ``Deployment`` plus the seed's flat fields (``deploymentId``, ``modelId``, ``minInstances``…)."""

    id: str
    deployment_id: str
    owner: str
    project: str
    model: str
    model_id: str
    model_name: str
    task: str | None
    deployment: str = Field(description="The slug")
    name: str
    status: str = Field(description="creating, deploying, ready, stopping, stopped or failed")
    status_message: str | None
    region: str
    backend: str = Field(description="local or ray")
    service_url: str = Field(description="The deployment's own endpoint (HUB request format)")
    url: str
    resources: DeploymentResources
    min_instances: int
    max_instances: int
    instances: int = Field(description="Replicas serving now")
    generation: int
    metadata: dict[str, Any]
    created_at: str
    updated_at: str
    ready_at: str | None
    stopped_at: str | None


class DeploymentDeleted(Schema):
    id: str
    deleted: bool


class DeploymentPage(SeedPage[DeploymentSchema]):
    deployments: list[DeploymentSchema]
    total: int
    region: str


class DeploymentList(ClientResponse):
    deployments: list[DeploymentSchema]
    total: int
    region: str


class DeploymentCreated(SeedResponse[DeploymentSchema]):
    """Both dialects: the seed's ``data`` and the clients' ``{id, deployment, status: creating, message, region}``."""

    id: str
    deployment: str
    status: str
    message: str
    region: str
    service_url: str


class DeploymentRead(SeedResponse[DeploymentSchema]):
    deployment: DeploymentSchema
    region: str


class DeploymentRetrieved(ClientResponse):
    deployment: DeploymentSchema
    region: str


class DeploymentChanged(SeedResponse[DeploymentSchema]):
    """A PATCH (or the seed's start/stop): the new status, what happened, and the deployment."""

    status: str
    message: str
    deployment: DeploymentSchema


class DeploymentHealth(ClientResponse):
    healthy: bool
    status: str
    latency_ms: float
    error: str | None = Field(default=None, description="Only when unhealthy: why")


class HttpRequest(Schema):
    """A request log line's request: the SDK's keys first, then Google Cloud Logging's ``HttpRequest`` ones."""

    method: str | None
    url: str | None
    status: int | None
    latency_ms: float
    request_method: str | None = None
    request_url: str | None = None
    latency: str | None = Field(default=None, description='Seconds, as "0.0352s"')
    request_size: str | None = None
    response_size: str | None = None
    user_agent: str | None = None
    remote_ip: str | None = None


class LogEntry(Schema):
    timestamp: str | None
    severity: str = Field(description="DEBUG, INFO, WARNING, ERROR or CRITICAL")
    message: str
    http_request: HttpRequest | None = Field(default=None, description="Request lines only")


class DeploymentLogs(SeedResponse[list[LogEntry]]):
    """Newest first; ``nextPageToken`` (only when there is more) reads the next, older page."""

    entries: list[LogEntry]
    next_page_token: str | None = None


class TimeRange(Schema):
    start: str | None
    end: str | None


class MetricsSummary(Schema):
    total_requests: int
    error_count: int
    error_rate: float
    avg_latency_ms: float
    p50_latency_ms: float
    p95_latency_ms: float
    p99_latency_ms: float


class Point(Schema):
    timestamp: str | None
    value: float


class TimeSeries(Schema):
    """Every series of the full view; ``view=overview`` has requests, errors and latencyP95 only."""

    requests: list[Point]
    errors: list[Point]
    latency_p50: list[Point] | None = None
    latency_p95: list[Point]
    cpu_utilization: list[Point] | None = None
    memory_utilization: list[Point] | None = None
    instance_count: list[Point] | None = None


class MetricsView(Schema):
    deployment_id: str
    region: str
    time_range: TimeRange
    summary: MetricsSummary
    time_series: TimeSeries


class DeploymentMetrics(ClientResponse):
    """The full view (``view=overview``: fewer series)."""

    deployment_id: str
    region: str
    time_range: TimeRange
    summary: MetricsSummary
    time_series: TimeSeries


class SeedDeploymentMetrics(SeedResponse[MetricsView]):
    deployment_id: str
    region: str
    time_range: TimeRange
    summary: MetricsSummary
    time_series: TimeSeries


class DeploymentSparkline(ClientResponse):
    """``sparkline=true``: the last 24 hours by hour."""

    requests24h: list[int] = Field(alias="requests24h")
    total_requests: int
    error_rate: float
    avg_latency_ms: float
