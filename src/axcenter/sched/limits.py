"""Per-user and per-project caps on running jobs and GPUs (Slurm's MaxJobs/GrpTRES)."""

from __future__ import annotations

from collections.abc import Mapping

from axcenter.model.snapshot import Limits, PendingJob

__all__ = ["LimitTracker"]


class LimitTracker:
    def __init__(
        self,
        user_limits: Limits,
        project_limits: Mapping[str, Limits],
        jobs: Mapping[tuple[str, str], int],
        gpus: Mapping[tuple[str, str], int],
    ) -> None:
        """``jobs``/``gpus``: what runs now, by ("user", id) and ("project", id)."""
        self._user_limits = user_limits
        self._project_limits = project_limits
        self._running_jobs = jobs  # the caller's, read only
        self._running_gpus = gpus
        self._jobs: dict[tuple[str, str], int] = {}  # what this cycle admits
        self._gpus: dict[tuple[str, str], int] = {}
        self._uncapped = user_limits.max_running_jobs is None and user_limits.max_gpus is None

    def _count(self, key: tuple[str, str], gpus: int) -> None:
        self._jobs[key] = self._jobs.get(key, 0) + 1
        self._gpus[key] = self._gpus.get(key, 0) + gpus

    def allows(self, job: PendingJob) -> bool:
        if self._uncapped and job.project_id not in self._project_limits:
            return True
        checks = [(("user", job.user_id), self._user_limits)]
        project_limits = self._project_limits.get(job.project_id)
        if project_limits is not None:
            checks.append((("project", job.project_id), project_limits))
        for key, limits in checks:
            if limits.max_running_jobs is not None and (
                self._running_jobs.get(key, 0) + self._jobs.get(key, 0) + 1
                > limits.max_running_jobs
            ):
                return False
            if limits.max_gpus is not None and (
                self._running_gpus.get(key, 0) + self._gpus.get(key, 0) + job.total_gpus
                > limits.max_gpus
            ):
                return False
        return True

    def add(self, job: PendingJob) -> None:
        # only what ``allows`` reads is counted: users if capped, projects with limits
        if not self._uncapped:
            self._count(("user", job.user_id), job.total_gpus)
        if job.project_id in self._project_limits:
            self._count(("project", job.project_id), job.total_gpus)
