"""Which deployment backend this server process uses (``YOLOSTACK_DEPLOYMENTS__BACKEND``)."""

from __future__ import annotations

from yolostack.config import Settings
from yolostack.deployments.backends import DeploymentBackend, EventSink


def create_deployment_backend(settings: Settings, events: EventSink) -> DeploymentBackend | None:
    """``local``: replica processes of this process (none when it runs no replicas); ``ray``: Ray Serve on the
    cluster at ``YOLOSTACK_RAY_ADDRESS`` (an API-only process still forwards to it)."""
    options = settings.deployments
    if options.backend == "ray":
        from yolostack.deployments.ray import RayServeBackend

        if not settings.ray_address:
            raise RuntimeError("YOLOSTACK_DEPLOYMENTS__BACKEND=ray needs YOLOSTACK_RAY_ADDRESS (the Ray dashboard URL)")
        return RayServeBackend(options, settings.ray_address, settings.ray_token, events)
    if not options.run_replicas:
        return None
    from yolostack.deployments.local import LocalBackend

    return LocalBackend(options, settings.data_dir / "deployments", events)
