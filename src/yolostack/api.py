"""Every domain router, mounted once under ``/api``."""

from fastapi import APIRouter

from yolostack.account.endpoints import router as account_router
from yolostack.account.endpoints import users_router
from yolostack.activity.endpoints import router as activity_router
from yolostack.api_keys.endpoints import router as api_keys_router
from yolostack.datasets import trash as _dataset_trash  # noqa: F401  (registers the dataset trash kind)
from yolostack.datasets.endpoints import router as datasets_router
from yolostack.datasets.images import router as images_router
from yolostack.deployments.endpoints import router as deployments_router
from yolostack.exports.endpoints import models_router as model_exports_router
from yolostack.exports.endpoints import router as exports_router
from yolostack.inference.endpoints import router as predict_router
from yolostack.jobs.endpoints import router as jobs_router
from yolostack.models import trash as _model_trash  # noqa: F401  (frees weights when models are purged)
from yolostack.models.endpoints import router as models_router
from yolostack.projects.endpoints import router as projects_router
from yolostack.storage.usage import router as storage_router
from yolostack.training.endpoints import models_router as model_training_router
from yolostack.training.endpoints import router as training_router
from yolostack.training.endpoints import telemetry_router
from yolostack.trash.endpoints import router as trash_router
from yolostack.uploads.endpoints import router as uploads_router
from yolostack.webhooks.endpoints import router as webhooks_router

api_router = APIRouter(prefix="/api")
# /api/account/summary
api_router.include_router(account_router, prefix="/account")
# /api/users?username=
api_router.include_router(users_router, prefix="/users")
# /api/api-keys[/{keyId}]
api_router.include_router(api_keys_router, prefix="/api-keys")
# /api/projects[/{projectId} | /{owner}[/{slug}]]
api_router.include_router(projects_router, prefix="/projects")
# /api/datasets[/{datasetId}[/export] | /{owner}[/{slug}[/export | /ingest | /images]]]
api_router.include_router(datasets_router, prefix="/datasets")
# /api/models[/{modelId}[/files | /predict] | /{owner}/{project}[/{model}[/files | /predict]]]
api_router.include_router(predict_router, prefix="/models")
# /api/models/{modelId}/training, /api/models/{owner}/{project}/{model}/training (before /{owner}/{project})
api_router.include_router(model_training_router, prefix="/models")
# /api/models/{owner}/{project}/{model}/exports[/{exportId}] (before /{owner}/{project}/{model})
api_router.include_router(model_exports_router, prefix="/models")
api_router.include_router(models_router, prefix="/models")
# /api/exports[/{exportId}]
api_router.include_router(exports_router, prefix="/exports")
# /api/images/{id}
api_router.include_router(images_router, prefix="/images")
# /api/activity[/mark-seen | /archive]
api_router.include_router(activity_router, prefix="/activity")
# /api/trash[/empty]
api_router.include_router(trash_router, prefix="/trash")
# /api/storage
api_router.include_router(storage_router, prefix="/storage")
# /api/upload/signed-url, /api/upload/complete
api_router.include_router(uploads_router, prefix="/upload")
# /api/training/start, /api/training/gpu-availability
api_router.include_router(training_router, prefix="/training")
# /api/webhooks/training/metrics, /api/webhooks/models/upload: the trainer's inbound telemetry
api_router.include_router(telemetry_router, prefix="/webhooks")
# /api/webhooks[/{webhookId}[/deliveries]]: outbound webhooks (ids only, so never /training or /models)
api_router.include_router(webhooks_router, prefix="/webhooks")
# /api/jobs/{jobId}[/logs | /events | /artifact]
api_router.include_router(jobs_router, prefix="/jobs")
# /api/deployments[/{deploymentId}[/start | /stop | /metrics | /logs] | /{owner}[/{deployment}[/health | /logs |
# /metrics | /predict]]]
api_router.include_router(deployments_router, prefix="/deployments")
