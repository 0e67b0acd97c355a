"""Every domain router, mounted once under ``/api``."""

from fastapi import APIRouter

from yolostack.account.endpoints import router as account_router
from yolostack.account.endpoints import users_router
from yolostack.activity.endpoints import router as activity_router
from yolostack.api_keys.endpoints import router as api_keys_router
from yolostack.projects.endpoints import router as projects_router
from yolostack.trash.endpoints import router as trash_router
from yolostack.uploads.endpoints import router as uploads_router

api_router = APIRouter(prefix="/api")
# /api/account/summary
api_router.include_router(account_router, prefix="/account")
# /api/users?username=
api_router.include_router(users_router, prefix="/users")
# /api/api-keys[/{keyId}]
api_router.include_router(api_keys_router, prefix="/api-keys")
# /api/projects[/{projectId} | /{owner}[/{slug}]]
api_router.include_router(projects_router, prefix="/projects")
# /api/activity[/mark-seen | /archive]
api_router.include_router(activity_router, prefix="/activity")
# /api/trash[/empty]
api_router.include_router(trash_router, prefix="/trash")
# /api/upload/signed-url, /api/upload/complete
api_router.include_router(uploads_router, prefix="/upload")
