"""One typed Settings object, read from the environment (prefix ``YOLOSTACK_``) and validated at start."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    development = "development"
    testing = "testing"
    production = "production"


class PlanLimits(BaseModel):
    """Requests allowed per API key within each window."""

    per_minute: int = Field(ge=1)
    per_day: int = Field(ge=1)


class RateLimitSettings(BaseModel):
    """Spec §4: per key, by the owner's plan; enterprise limits are the operator's choice."""

    free: PlanLimits = PlanLimits(per_minute=60, per_day=1_000)
    pro: PlanLimits = PlanLimits(per_minute=300, per_day=50_000)
    enterprise: PlanLimits = PlanLimits(per_minute=3_000, per_day=1_000_000)
    hub_per_hour: int = Field(default=100, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _keep_unset_plan_defaults(cls, data: Any) -> Any:
        """``YOLOSTACK_RATE_LIMITS__ENTERPRISE__PER_MINUTE=6`` alone keeps that plan's default per-day limit."""
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for plan in ("free", "pro", "enterprise"):
            given = data.get(plan)
            if isinstance(given, dict):
                default: PlanLimits = cls.model_fields[plan].default
                merged[plan] = {**default.model_dump(), **given}
        return merged


class TrashSettings(BaseModel):
    retention_days: int = Field(default=30, ge=1)
    purge_interval_seconds: int = Field(default=3600, ge=1)
    # Let the server settle (and migrations finish everywhere) before the first purge.
    purge_initial_delay_seconds: int = Field(default=60, ge=0)


class StorageQuota(BaseModel):
    """Bytes an account may keep, by plan (uploads that would pass it are refused up front)."""

    free: int = Field(default=10 * 1024**3, ge=0)
    pro: int = Field(default=500 * 1024**3, ge=0)
    enterprise: int = Field(default=100 * 1024**4, ge=0)


class StorageSettings(BaseModel):
    """Where files live: the data directory by default, or any S3-compatible store."""

    # The S3 endpoint (any S3-compatible server) and region; credentials come from boto3's usual places
    # (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws, instance roles).
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    # Signed links: long enough for a slow training download, short enough to be worthless when leaked.
    download_url_ttl_seconds: int = Field(default=6 * 3600, ge=60)
    upload_url_ttl_seconds: int = Field(default=3600, ge=60)
    max_upload_bytes: int = Field(default=50 * 1024**3, ge=1)
    quota: StorageQuota = StorageQuota()


class InferenceSettings(BaseModel):
    """The inference engine: which runtime serves converted models, and the limits of one predict call."""

    # auto: OpenVINO on CPU when installed, else ONNX Runtime; on a GPU device ONNX Runtime CUDA, else torch.
    backend: str = Field(default="auto", pattern=r"^(auto|onnxruntime|openvino|torch)$")
    device: str = "cpu"
    # f32 matches ultralytics' own results (parity tests); bf16 is faster on CPUs that have it.
    precision: str = Field(default="f32", pattern=r"^(f32|bf16|auto)$")
    threads: int | None = Field(default=None, ge=1)
    max_models: int = Field(default=4, ge=1)
    max_model_bytes: int = Field(default=4 * 1024**3, ge=1)
    max_batch_size: int = Field(default=8, ge=1, le=64)
    max_wait_ms: float = Field(default=2.0, ge=0, le=1000)
    max_image_bytes: int = Field(default=50 * 1024**2, ge=1)
    max_image_pixels: int = Field(default=50_000_000, ge=1)
    max_video_bytes: int = Field(default=1024**3, ge=1)
    max_video_frames: int = Field(default=3_000, ge=1)
    # A predict that arrives while the model's checkpoint is still being converted waits this long.
    conversion_wait_seconds: float = Field(default=120, ge=0)
    conversion_timeout_seconds: float = Field(default=600, ge=1)
    conversion_memory_bytes: int = Field(default=8 * 1024**3, ge=256 * 1024**2)
    # `source` URLs: public http(s) addresses only, unless the operator allows private ones.
    allow_private_sources: bool = False
    source_max_bytes: int = Field(default=50 * 1024**2, ge=1)
    source_timeout_seconds: float = Field(default=20, gt=0)


class WebhookSettings(BaseModel):
    """Outbound webhooks: how deliveries are sent and retried, and which addresses receivers may have."""

    # Receivers must be public http(s) addresses unless the operator allows private ones (SSRF).
    allow_private_urls: bool = False
    timeout_seconds: float = Field(default=10, gt=0, le=300)
    # Seconds to wait before each retry; a delivery gets 1 + len(retry_schedule) attempts, then fails.
    retry_schedule: list[Annotated[float, Field(ge=0)]] = Field(
        default=[5, 30, 120, 600, 3600, 10_800, 21_600], max_length=50
    )
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    max_concurrency: int = Field(default=16, ge=1, le=1000)


class JobSettings(BaseModel):
    """Training runs and exports: where they run, how many at once, when a silent one is given up."""

    # local: child processes of this server; ray: Ray jobs on the cluster at YOLOSTACK_RAY_ADDRESS.
    executor: str = Field(default="local", pattern=r"^(local|ray)$")
    # false: this server process only serves the API and launches no jobs (another process runs them).
    run_jobs: bool = True
    # Jobs this server runs at once with the local executor (each training run uses every core it gets).
    max_concurrent: int = Field(default=1, ge=1)
    cpus_per_job: float = Field(default=2, gt=0)
    dispatch_interval_seconds: float = Field(default=2.0, gt=0)
    # A starting/running job whose heartbeat is older than this lost its worker (server restart, lost node).
    heartbeat_timeout_seconds: float = Field(default=90, gt=0)
    # A user's own training run that has not reported for this long is failed (ultralytics never says so).
    telemetry_timeout_seconds: float = Field(default=3600, gt=0)
    # After a cancel, the trainer stops at its next epoch end; a runner still alive after this is killed.
    cancel_grace_seconds: float = Field(default=60, ge=0)
    # How long a runner's key lives: the longest a job may run.
    max_duration_hours: float = Field(default=72, gt=0)
    # Exports whose worker was lost are re-queued this many times in all.
    max_attempts: int = Field(default=3, ge=1)
    # Where runners keep their working directories (default: <data dir>/jobs).
    work_dir: Path | None = None


class DeploymentSettings(BaseModel):
    """Dedicated deployments: where their replicas run and how they scale."""

    # local: replica processes of this server; ray: Ray Serve applications on the cluster at YOLOSTACK_RAY_ADDRESS.
    backend: str = Field(default="local", pattern=r"^(local|ray)$")
    # false: this server process serves the API only and runs no replicas (nor proxies to them).
    run_replicas: bool = True
    # The most replicas one deployment may ask for (maxInstances).
    max_instances: int = Field(default=16, ge=1)
    # Autoscaling (Ray Serve's rule): desired = ceil(in-flight / target_ongoing_requests), within min..max.
    target_ongoing_requests: float = Field(default=2.0, gt=0)
    # Requests one replica works on at once; more wait at the proxy (Ray Serve: max_ongoing_requests).
    max_ongoing_requests: int = Field(default=8, ge=1)
    upscale_delay_seconds: float = Field(default=1.0, ge=0)
    downscale_delay_seconds: float = Field(default=60.0, ge=0)
    # With minInstances 0, the last replica goes after this long without a request (scale to zero).
    scale_to_zero_delay_seconds: float = Field(default=300.0, ge=0)
    # How often the reconciler and autoscaler look (seconds).
    interval_seconds: float = Field(default=0.5, gt=0)
    # A replica that has not loaded its model in this long has failed.
    replica_start_timeout_seconds: float = Field(default=120.0, gt=0)
    # A request waits this long for a free replica (cold start included) before a 503.
    queue_timeout_seconds: float = Field(default=60.0, gt=0)
    request_timeout_seconds: float = Field(default=300.0, gt=0)
    # Per-request log lines (lifecycle events are always kept); logs and metrics older than this are deleted.
    log_requests: bool = True
    retention_days: float = Field(default=30, gt=0)
    # Ray Serve: the HTTP proxy the API forwards to (its port is set in the Serve config; Ray's own default
    # 8000 is yolostack's), CPUs per replica (unset: the deployment's cpu), and whether `region` becomes a
    # custom resource ("region:<name>") that only the nodes of that region have.
    ray_serve_url: str = "http://127.0.0.1:8100"
    ray_replica_cpus: float | None = Field(default=None, ge=0)
    ray_region_resources: bool = False


class LimitSettings(BaseModel):
    """How much of a request body the server reads before refusing it (413), counted while it streams."""

    # JSON (and every body that is neither multipart nor a route's declared raw upload): metadata of
    # 500,000 characters and a trainer's telemetry fit many times over.
    json_body_bytes: int = Field(default=4 * 1024**2, ge=64 * 1024)
    # multipart/form-data (predict's image or video); unset: the largest predict input (inference
    # max_video_bytes or max_image_bytes) plus 1 MiB for the form's other fields.
    form_body_bytes: int | None = Field(default=None, ge=64 * 1024)
    # JSON that nests deeper than this is refused (422).
    json_max_depth: int = Field(default=64, ge=2, le=512)

    def body_caps(self, inference: InferenceSettings) -> dict[str, int]:
        """The request-body wrapper's arguments (``core.limits.BodyLimits``)."""
        form = self.form_body_bytes or max(inference.max_video_bytes, inference.max_image_bytes) + 1024**2
        return {"json_bytes": self.json_body_bytes, "form_bytes": form, "json_max_depth": self.json_max_depth}


class WebSettings(BaseModel):
    """The web app's sign-in."""

    session_ttl_hours: float = Field(default=168.0, gt=0, description="A browser session ends this long after sign-in")
    sign_in_link_ttl_hours: float = Field(default=24.0, gt=0)
    # Per client address and per username: a password guesser gets this many tries a minute.
    login_attempts_per_minute: int = Field(default=10, ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="YOLOSTACK_",
        env_nested_delimiter="__",
        env_ignore_empty=True,
        extra="ignore",
    )

    environment: Environment = Environment.development
    data_dir: Path = Path("./data")
    database_url: str | None = None
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str | None = None
    region: str = "local"
    admin_username: str = "admin"
    # When the server runs several worker processes the limiter must share its state (spec §4).
    workers: int = Field(default=1, ge=1)
    rate_limits: RateLimitSettings = RateLimitSettings()
    trash: TrashSettings = TrashSettings()
    storage: StorageSettings = StorageSettings()
    inference: InferenceSettings = InferenceSettings()
    webhooks: WebhookSettings = WebhookSettings()
    jobs: JobSettings = JobSettings()
    deployments: DeploymentSettings = DeploymentSettings()
    limits: LimitSettings = LimitSettings()
    web: WebSettings = WebSettings()
    # A Ray cluster's dashboard (Jobs API) address, e.g. http://127.0.0.1:8265, for YOLOSTACK_JOBS__EXECUTOR=ray.
    ray_address: str | None = None
    ray_token: str | None = None
    # s3://bucket[/prefix] to keep files in an S3-compatible store; unset: the data directory.
    storage_url: str | None = None
    # Signs file URLs. Unset: generated once and kept in the data directory (set it when several servers
    # share one database, so that any of them accepts the links another one signed).
    secret_key: str | None = Field(default=None, min_length=32)

    @field_validator("database_url")
    @classmethod
    def _normalise_driver(cls, value: str | None) -> str | None:
        """Accept the plain URLs users paste and pick the async driver ourselves."""
        if value is None:
            return None
        for plain in ("postgres://", "postgresql://"):
            if value.startswith(plain):
                return "postgresql+asyncpg://" + value.removeprefix(plain)
        if value.startswith("sqlite://") and not value.startswith("sqlite+aiosqlite://"):
            return "sqlite+aiosqlite://" + value.removeprefix("sqlite://")
        return value

    @field_validator("storage_url")
    @classmethod
    def _s3_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("s3://"):
            raise ValueError("must look like s3://bucket[/prefix] (leave it unset for local disk)")
        return value

    @model_validator(mode="after")
    def _shared_state_for_many_workers(self) -> Settings:
        if self.workers > 1 and self.redis_url is None:
            raise ValueError("YOLOSTACK_WORKERS > 1 needs YOLOSTACK_REDIS_URL: rate limits must be shared")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'yolostack.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def base_url(self) -> str:
        """The absolute origin that clients reach this server at (for links and signed URLs)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
