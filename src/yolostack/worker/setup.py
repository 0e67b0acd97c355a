"""The job executors this server's settings ask for."""

from __future__ import annotations

from yolostack.config import Settings
from yolostack.tables import Executor
from yolostack.worker.executors import JobExecutor, LocalExecutor


def create_executors(settings: Settings) -> dict[Executor, JobExecutor]:
    work_root = settings.jobs.work_dir or settings.data_dir / "jobs"
    executors: dict[Executor, JobExecutor] = {Executor.local: LocalExecutor(work_root.resolve())}
    if settings.jobs.executor == "ray" or settings.ray_address:
        from yolostack.worker.ray import RayExecutor

        executors[Executor.ray] = RayExecutor.from_settings(settings)
    return executors
