"""Every ORM table, re-exported so Alembic and relationships see one metadata."""

from yolostack.tables.account import Account, AccountType, Plan
from yolostack.tables.activity_event import ActivityEvent
from yolostack.tables.api_key import ApiKey
from yolostack.tables.base import Table
from yolostack.tables.dataset import Dataset, DatasetIngest, DatasetStatus
from yolostack.tables.dataset_export import DatasetExport
from yolostack.tables.dataset_image import DatasetImage, image_key
from yolostack.tables.deployment import (
    Deployment,
    DeploymentLog,
    DeploymentMetric,
    DeploymentStatus,
    DesiredState,
    Severity,
)
from yolostack.tables.job import ACTIVE_STATUSES, FINISHED_STATUSES, Executor, Job, JobKind, JobLog, JobStatus
from yolostack.tables.model import Model, ModelStatus, ServingStatus
from yolostack.tables.project import Project, Visibility
from yolostack.tables.upload_session import UploadSession, UploadStatus
from yolostack.tables.web_session import SignInLink, WebSession
from yolostack.tables.webhook import DeliveryStatus, Webhook, WebhookAttempt, WebhookDelivery

__all__ = [
    "ACTIVE_STATUSES",
    "FINISHED_STATUSES",
    "Executor",
    "Job",
    "JobKind",
    "JobLog",
    "JobStatus",
    "Account",
    "AccountType",
    "ActivityEvent",
    "ApiKey",
    "Dataset",
    "DatasetIngest",
    "Deployment",
    "DeploymentLog",
    "DeploymentMetric",
    "DeploymentStatus",
    "DesiredState",
    "Severity",
    "DatasetExport",
    "DatasetImage",
    "DatasetStatus",
    "Model",
    "ModelStatus",
    "Plan",
    "Project",
    "ServingStatus",
    "SignInLink",
    "Table",
    "UploadSession",
    "UploadStatus",
    "Visibility",
    "WebSession",
    "image_key",
    "DeliveryStatus",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
]
