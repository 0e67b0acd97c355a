"""Deployment rules: create, the PATCH actions (start, stop, resize, replace, rename, metadata), delete,
and the one view both route families render. Requests only change the desired state; the reconciler
(``deployments.tasks``) makes the backend match it and writes back what it sees."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from yolostack.config import DeploymentSettings
from yolostack.core.errors import BadRequest, Conflict, NotFound
from yolostack.core.ids import is_id, new_id
from yolostack.core.slugs import is_slug, slugify
from yolostack.core.timeutil import utcnow
from yolostack.core.validation import check_metadata
from yolostack.deployments.repository import DeploymentRepository, DeploymentRow
from yolostack.deployments.schemas import DeploymentUpdate, ResourcesRequest
from yolostack.models.service import ModelRow
from yolostack.models.service import model as model_service
from yolostack.tables import Account, Deployment, DeploymentStatus, DesiredState

CPU_CHOICES = (1, 2, 4, 6, 8)
MEMORY_CHOICES = (2, 4, 8, 16, 24, 32)
REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


@dataclass(frozen=True)
class Resources:
    cpu: int | None = None
    memory_gi: int | None = None
    min_instances: int | None = None
    max_instances: int | None = None


def resources_from(body: ResourcesRequest) -> Resources:
    return Resources(
        cpu=body.cpu, memory_gi=body.memory_gi, min_instances=body.min_instances, max_instances=body.max_instances
    )


def _invalid(field: str, message: str) -> BadRequest:
    return BadRequest(message, details=[{"field": field, "message": message}])


def service_url(base_url: str, deployment_id: str) -> str:
    """The deployment's own endpoint: the HUB request format (seed 000), outside /api and its rate limits."""
    return f"{base_url}/d/{deployment_id}"


def deployment_view(row: DeploymentRow, base_url: str) -> dict[str, Any]:
    """Clients.md's ``Deployment`` plus the seed's flat fields (``modelId``, ``minInstances``, …)."""
    deployment, model, project, owner = row
    return {
        "id": deployment.id,
        "deploymentId": deployment.id,
        "owner": owner.username,
        "project": project.slug,
        "model": model.slug,
        "modelId": model.id,
        "modelName": model.name,
        "task": model.task,
        "deployment": deployment.slug,
        "name": deployment.name,
        "status": str(deployment.status),
        "statusMessage": deployment.status_message,
        "region": deployment.region,
        "backend": deployment.backend,
        "serviceUrl": service_url(base_url, deployment.id),
        "url": service_url(base_url, deployment.id),
        "resources": {
            "cpu": deployment.cpu,
            "memoryGi": deployment.memory_gi,
            "minInstances": deployment.min_instances,
            "maxInstances": deployment.max_instances,
        },
        "minInstances": deployment.min_instances,
        "maxInstances": deployment.max_instances,
        "instances": deployment.instances,
        "generation": deployment.generation,
        "metadata": deployment.meta or {},
        "createdAt": deployment.created_at.isoformat(),
        "updatedAt": deployment.updated_at.isoformat(),
        "readyAt": deployment.ready_at.isoformat() if deployment.ready_at else None,
        "stoppedAt": deployment.stopped_at.isoformat() if deployment.stopped_at else None,
    }


class DeploymentService:
    async def get(self, session: AsyncSession, account: Account, deployment_id: str) -> DeploymentRow:
        row = await DeploymentRepository(session).get(account.id, deployment_id) if is_id(deployment_id) else None
        if row is None:
            raise NotFound(f"deployment '{deployment_id}' not found")
        return row

    async def get_by_slug(self, session: AsyncSession, account: Account, owner: str, slug: str) -> DeploymentRow:
        """Another account's deployment is a 404, as if it did not exist."""
        row = None
        if owner == account.username:
            repository = DeploymentRepository(session)
            row = await (repository.get(account.id, slug) if is_id(slug) else repository.get_by_slug(account.id, slug))
        if row is None:
            raise NotFound(f"deployment '{owner}/{slug}' not found")
        return row

    async def list(
        self,
        session: AsyncSession,
        account: Account,
        *,
        status: str | None,
        model_id: str | None,
        limit: int,
        offset: int = 0,
    ) -> tuple[list[DeploymentRow], int]:
        if status is not None and status not in DeploymentStatus.__members__:
            raise _invalid("status", f"status must be one of {', '.join(DeploymentStatus)}")
        return await DeploymentRepository(session).list_for_owner(
            account.id, status=status, model_id=model_id, limit=limit, offset=offset
        )

    async def create(
        self,
        session: AsyncSession,
        account: Account,
        model_row: ModelRow,
        settings: DeploymentSettings,
        *,
        slug: str | None,
        name: str | None,
        region: str,
        resources: Resources,
    ) -> Deployment:
        model = model_row[0]
        if model.weights_key is None:
            raise Conflict("the model has no weights yet: upload or train a checkpoint first")
        repository = DeploymentRepository(session)
        if slug is None:
            slug = await self._free_slug(session, account, slugify(name or model.slug) or "deployment")
        elif not is_slug(slug):
            raise _invalid("deployment", "deployment must be a slug: lowercase letters, digits and dashes")
        elif await repository.slug_taken(account.id, slug):
            raise Conflict(f"a deployment named '{slug}' already exists")
        cpu, memory, low, high = self._resources(resources, settings, default=(1, 2, 1, 1))
        deployment = Deployment(
            id=new_id("deployment"),
            owner_id=account.id,
            model_id=model.id,
            slug=slug,
            name=(name or slug)[:256],
            region=self._region(region),
            backend=settings.backend,
            status=DeploymentStatus.creating,
            desired=DesiredState.running,
            generation=1,
            cpu=cpu,
            memory_gi=memory,
            min_instances=low,
            max_instances=high,
            meta={},
        )
        return await repository.add(deployment)

    async def _free_slug(self, session: AsyncSession, account: Account, base: str) -> str:
        repository = DeploymentRepository(session)
        base = base[:100]
        candidate, number = base, 1
        while await repository.slug_taken(account.id, candidate):
            number += 1
            candidate = f"{base}-{number}"
        return candidate

    @staticmethod
    def _region(region: str) -> str:
        if not REGION.match(region):
            raise _invalid("region", "region must be lowercase letters, digits and dashes")
        return region

    @staticmethod
    def _resources(
        resources: Resources, settings: DeploymentSettings, *, default: tuple[int, int, int, int]
    ) -> tuple[int, int, int, int]:
        cpu = resources.cpu if resources.cpu is not None else default[0]
        memory = resources.memory_gi if resources.memory_gi is not None else default[1]
        low = resources.min_instances if resources.min_instances is not None else default[2]
        high = resources.max_instances if resources.max_instances is not None else max(default[3], low)
        if cpu not in CPU_CHOICES:
            raise _invalid("cpu", f"cpu must be one of {CPU_CHOICES}")
        if memory not in MEMORY_CHOICES:
            raise _invalid("memoryGi", f"memoryGi must be one of {MEMORY_CHOICES}")
        if not 0 <= low <= settings.max_instances:
            raise _invalid("minInstances", f"minInstances must be between 0 and {settings.max_instances}")
        if not max(1, low) <= high <= settings.max_instances:
            raise _invalid(
                "maxInstances", f"maxInstances must be between max(1, minInstances) and {settings.max_instances}"
            )
        return cpu, memory, low, high

    # -- PATCH ----------------------------------------------------------------------------------------

    async def update(
        self,
        session: AsyncSession,
        account: Account,
        row: DeploymentRow,
        body: DeploymentUpdate,
        settings: DeploymentSettings,
    ) -> str:
        """Apply one PATCH body; the message says what happened."""
        deployment = row[0]
        action = body.action
        if action is None:
            return await self._edit(session, account, deployment, body)
        if action == "start":
            return self.start(deployment)
        if action == "stop":
            return self.stop(deployment)
        if action == "resize":
            return self.resize(deployment, resources_from(body), settings)
        if action == "replace":
            return await self._replace(session, account, deployment, body)
        raise _invalid("action", "the camera action (always-on RTSP inference) is not supported by this server")

    async def _edit(
        self, session: AsyncSession, account: Account, deployment: Deployment, body: DeploymentUpdate
    ) -> str:
        changed = []
        given = body.model_fields_set
        if "metadata" in given:
            try:
                deployment.meta = dict(check_metadata(body.metadata) or {})
            except ValueError as error:
                raise _invalid("metadata", str(error)) from error
            changed.append("metadata")
        if "name" in given:
            name = body.name
            if name is None:
                raise _invalid("name", "name must be a non-empty string")
            slug = slugify(name)
            if not slug:
                raise _invalid("name", "name must contain letters or digits")
            if slug != deployment.slug and await DeploymentRepository(session).slug_taken(account.id, slug):
                raise Conflict(f"a deployment named '{slug}' already exists")
            deployment.name, deployment.slug = name[:256], slug
            changed.append("name")
        return f"updated {' and '.join(changed)}"

    @staticmethod
    def _roll(deployment: Deployment) -> None:
        """A new generation of replicas (the reconciler rolls it out; the old one serves until it is ready)."""
        deployment.generation += 1
        if deployment.desired == DesiredState.running:
            deployment.status = DeploymentStatus.deploying
            deployment.status_message = None

    def start(self, deployment: Deployment) -> str:
        if deployment.desired == DesiredState.running and deployment.status != DeploymentStatus.failed:
            return f"deployment is already {deployment.status}"
        deployment.desired = DesiredState.running
        self._roll(deployment)
        deployment.stopped_at = None
        return "deployment is starting"

    @staticmethod
    def stop(deployment: Deployment) -> str:
        if deployment.desired == DesiredState.stopped:
            return f"deployment is already {deployment.status}"
        deployment.desired = DesiredState.stopped
        if deployment.status != DeploymentStatus.stopped:
            deployment.status = DeploymentStatus.stopping
        deployment.status_message = None
        return "deployment is stopping"

    def resize(self, deployment: Deployment, resources: Resources, settings: DeploymentSettings) -> str:
        current = (deployment.cpu, deployment.memory_gi, deployment.min_instances, deployment.max_instances)
        if resources == Resources():
            raise _invalid("action", "resize needs cpu, memoryGi, minInstances or maxInstances")
        cpu, memory, low, high = self._resources(resources, settings, default=current)
        if (cpu, memory, low, high) == current:
            return "resources unchanged"
        deployment.cpu, deployment.memory_gi, deployment.min_instances, deployment.max_instances = (
            cpu,
            memory,
            low,
            high,
        )
        self._roll(deployment)
        return f"resized to {cpu} cpu, {memory} GiB, {low}–{high} instance(s)"

    async def _replace(
        self, session: AsyncSession, account: Account, deployment: Deployment, body: DeploymentUpdate
    ) -> str:
        model_id, project, model = body.model_id, body.project, body.model
        if model_id:
            row = await model_service.get_by_id(session, account, model_id)
        elif model:
            if project:
                row = await model_service.get_by_slug(session, account, account.username, project, model)
            else:
                parts = model.removeprefix("ul://").split("/")
                if len(parts) != 3:
                    raise _invalid("model", "replace needs project and model (or modelId)")
                row = await model_service.get_by_slug(session, account, *parts)
        else:
            raise _invalid("model", "replace needs project and model (or modelId)")
        if row[0].weights_key is None:
            raise Conflict("the model has no weights yet: upload or train a checkpoint first")
        deployment.model_id = row[0].id
        self._roll(deployment)
        return f"replacing the model with {row[2].username}/{row[1].slug}/{row[0].slug}"

    async def delete(self, session: AsyncSession, account: Account, deployment: Deployment) -> None:
        """The reconciler stops the replicas of a deployment that is gone."""
        await DeploymentRepository(session).delete(account.id, deployment.id)

    @staticmethod
    def mark_stopped(deployment: Deployment) -> None:
        deployment.status = DeploymentStatus.stopped
        deployment.stopped_at = utcnow()
        deployment.instances = 0


deployments = DeploymentService()
