"""Run times learned from each user's history: a requested limit, tightened.

Users ask for round time limits (1 h, 4 h, 1 d, the maximum), so a queue ordered and
backfilled by requested limits cannot tell a 10-minute job from a 20-hour one when both
ask for a day. Their own recent runs can: Tsafrir, Etsion and Feitelson ("Backfilling
using system-generated predictions rather than user runtime estimates", IEEE TPDS 2007)
predicted each job from its user's last runs and let the scheduler plan with that, while
the user's limit still bounds the run. So does axcenter:

- *similar jobs*: the same user and project asking the same time limit for the same
  number of GPUs; with too few of those, the same user, project and time limit;
- the estimate is the ``QUANTILE`` (0.9) of the last ``WINDOW`` (20) run times of
  similar jobs that succeeded, rounded up to the minute, once there are at least
  ``SchedulerConfig.history_min_runs`` of them (0: no estimates);
- it only ever tightens: ``PendingJob.expected_s`` is the smaller of it and the limit.

The estimate orders the project's queue (``model.snapshot.queue_key``) and decides
whether a waiting job may backfill: it may start on devices reserved for the top job if
its *expected* run ends before that job's reserved start. It never ends a run: the time
limit the user asked for does (the engine's supervisor), and budgets hold for it. Once
running, a job is expected to hold its devices until its limit: reservations and the
gain of a reclaim are computed from running jobs' limits, as before. (Expecting running
jobs to end by their estimates too, as Tsafrir et al. do, made replays worse where
estimates are poor: reclaims were judged not worth it against waits that then turned
out longer, docs/scheduling.md.)

The class is pure bookkeeping: the live cache (``control.state``) feeds it each succeeded
run and rebuilds it from the store at start; the simulator feeds it the same way.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace

from axcenter.model.snapshot import PendingJob

__all__ = ["QUANTILE", "WINDOW", "RunHistory"]

#: the recent run times kept per kind of job
WINDOW = 20
#: the quantile of them a job is expected to run
QUANTILE = 0.9

_Key = tuple[str, str, int, int]  # (user, project, time limit, GPUs); GPUs -1: any


class RunHistory:
    def __init__(self, min_runs: int = 3) -> None:
        #: 0 disables estimates
        self.min_runs = min_runs
        self._runs: dict[_Key, deque[float]] = {}

    def record(
        self, user_id: str, project_id: str, time_limit_s: int, gpus: int, run_s: float
    ) -> None:
        """A run of this kind of job succeeded after ``run_s`` seconds."""
        if run_s < 0 or self.min_runs <= 0:
            return
        for key in (
            (user_id, project_id, time_limit_s, gpus),
            (user_id, project_id, time_limit_s, -1),
        ):
            runs = self._runs.get(key)
            if runs is None:
                runs = self._runs[key] = deque(maxlen=WINDOW)
            runs.append(run_s)

    def estimate(self, job: PendingJob) -> int:
        """Seconds ``job`` will likely run, never above its limit; 0: too little history."""
        if self.min_runs <= 0:
            return 0
        key = (job.user_id, job.project_id, job.time_limit_s, job.total_gpus)
        runs = self._runs.get(key)
        if runs is None or len(runs) < self.min_runs:
            runs = self._runs.get((job.user_id, job.project_id, job.time_limit_s, -1))
            if runs is None or len(runs) < self.min_runs:
                return 0
        ordered = sorted(runs)
        rank = max(1, math.ceil(QUANTILE * len(ordered)))  # nearest rank
        minutes = max(1, math.ceil(ordered[rank - 1] / 60))
        return min(job.time_limit_s, 60 * minutes)

    def with_estimate(self, job: PendingJob) -> PendingJob:
        """``job`` carrying its estimate (the same object if it has none)."""
        estimate = self.estimate(job)
        if estimate == job.estimate_s:
            return job
        return replace(job, estimate_s=estimate)
