"""Per-user and per-project caps on running jobs and GPUs (Slurm's MaxJobs/GrpTRES)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from axcenter.model.snapshot import Limits, PendingJob, RunningJob

__all__ = ["LimitTracker"]


class LimitTracker:
    def __init__(
        self,
        user_limits: Limits,
        project_limits: Mapping[str, Limits],
        running: Iterable[RunningJob],
    ) -> None:
        self._user_limits = user_limits
        self._project_limits = project_limits
        self._jobs: dict[tuple[str, str], int] = {}
        self._gpus: dict[tuple[str, str], int] = {}
        for job in running:
            self._count(("user", job.user_id), job.gpus)
            self._count(("project", job.project_id), job.gpus)

    def _count(self, key: tuple[str, str], gpus: int) -> None:
        self._jobs[key] = self._jobs.get(key, 0) + 1
        self._gpus[key] = self._gpus.get(key, 0) + gpus

    def allows(self, job: PendingJob) -> bool:
        checks = [(("user", job.user_id), self._user_limits)]
        project_limits = self._project_limits.get(job.project_id)
        if project_limits is not None:
            checks.append((("project", job.project_id), project_limits))
        for key, limits in checks:
            if limits.max_running_jobs is not None and (
                self._jobs.get(key, 0) + 1 > limits.max_running_jobs
            ):
                return False
            if limits.max_gpus is not None and (
                self._gpus.get(key, 0) + job.total_gpus > limits.max_gpus
            ):
                return False
        return True

    def add(self, job: PendingJob) -> None:
        self._count(("user", job.user_id), job.total_gpus)
        self._count(("project", job.project_id), job.total_gpus)
