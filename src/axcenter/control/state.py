"""In-memory cluster state: the loop's cache of what the store says is active.

Kueue keeps pending workloads and admitted usage in memory and takes a snapshot of that
cache each cycle instead of reading the database; so does axcenter. Pending jobs sit in
one sorted queue per project, so a snapshot costs nothing per pending job and the
scheduler reads only the heads it uses. The cache is owned by the control loop thread;
the store stays the source of truth, and ``reconcile`` rebuilds the cache from it after a
restart or any failed cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sortedcontainers import SortedKeyList

from axcenter.control.usage import UsageTracker
from axcenter.model.cluster import Node
from axcenter.model.index import RunningIndex
from axcenter.model.plan import PendingReason
from axcenter.model.snapshot import (
    Budget,
    Limits,
    PendingJob,
    RunningJob,
    SchedulerConfig,
    Snapshot,
    queue_key,
)
from axcenter.sched.history import RunHistory
from axcenter.store.policy import Policy

__all__ = ["ClusterState", "Staged", "StartHint"]


@dataclass(frozen=True, slots=True)
class StartHint:
    """What the API thread needs, between cycles, to tell whether a submission needs a
    cycle of its own: the free GPUs, and the projects that could reclaim GPUs by
    preemption. It errs towards a cycle: ``could_start`` holds for every job for which
    ``ClusterState.cannot_start`` would not (table-tested side by side)."""

    free_gpus: int
    may_reclaim: frozenset[str]

    def could_start(self, job: PendingJob) -> bool:
        return job.total_gpus <= self.free_gpus or job.project_id in self.may_reclaim


@dataclass(frozen=True, slots=True)
class Staged:
    """A job handed to the engine ahead (``control/stage.py``): it will run as ``job``,
    on the devices of the jobs ``after``, once those have ended."""

    job: RunningJob
    after: frozenset[str]


@dataclass
class ClusterState:
    config: SchedulerConfig = field(default_factory=SchedulerConfig)
    user_limits: Limits = field(default_factory=Limits)
    nodes: dict[str, Node] = field(default_factory=dict)
    queues: dict[str, Any] = field(default_factory=dict)  # project id -> SortedKeyList
    pending: dict[str, PendingJob] = field(default_factory=dict)
    #: pending jobs per user (the API's cap on them reads it: ``service.throttle``)
    pending_users: dict[str, int] = field(default_factory=dict)
    running: dict[str, RunningJob] = field(default_factory=dict)
    #: the spec of every active job, kept so that a requeued job can wait again
    specs: dict[str, PendingJob] = field(default_factory=dict)
    #: aggregates of ``running`` for the scheduler, kept in step with it
    index: RunningIndex = field(default_factory=RunningIndex)
    policy: Policy = field(default_factory=Policy)
    #: what each project's current allocation can still pay (refreshed after each write)
    budgets: dict[str, Budget] = field(default_factory=dict)
    #: seconds beyond its time limit a run may last (grace), held with it
    hold_grace_s: int = 0
    usage: UsageTracker = field(default_factory=lambda: UsageTracker(7 * 86400.0, 0.0))
    #: recent run times by user and kind of job: what new pending jobs are expected to run
    history: RunHistory = field(default_factory=RunHistory)
    #: why each examined pending job waits, from the latest plan (read by the API)
    reasons: dict[str, PendingReason] = field(default_factory=dict)
    #: reserved starts (epoch seconds) of waiting jobs, from the latest plan
    estimates: dict[str, float] = field(default_factory=dict)
    #: jobs staged behind running ones: neither pending nor running (their devices are
    #: their predecessors' in ``index``) until the last of those ends
    staged: dict[str, Staged] = field(default_factory=dict)
    #: running job id -> the staged jobs that follow it
    followers: dict[str, set[str]] = field(default_factory=dict)
    #: staged jobs that became running since ``take_promoted`` was last called
    promoted: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.history.min_runs = self.config.history_min_runs

    def snapshot(self) -> Snapshot:
        return Snapshot(
            nodes=tuple(self.nodes.values()),
            running=tuple(self.running.values()),
            queues=self.queues,
            projects=self.policy.projects,
            cohorts=self.policy.cohorts,
            usage=self.usage.usage,
            usage_weights=self.usage.weights,
            reservations=self.policy.reservations,
            user_limits=self.user_limits,
            project_limits=self.policy.project_limits,
            budgets=self.budgets,
            config=self.config,
            index=self.index,
            reclaiming=tuple(
                self.pending[job_id]
                for job_id, reason in self.reasons.items()
                if reason is PendingReason.PREEMPTING and job_id in self.pending
            ),
        )

    def frozen(self) -> Snapshot:
        """A snapshot that shares nothing the loop changes afterwards: the queues, running
        jobs, usage and budgets copied (references to immutable jobs: O(pending +
        running), about a millisecond at 10,000 pending), no running index (its reader
        builds its own). For readers on other threads (the estimator); the loop's own
        cycles use ``snapshot``, which copies nothing."""
        return replace(
            self.snapshot(),
            running=tuple(self.running.values()),
            queues={p: tuple(q) for p, q in self.queues.items()},
            usage=dict(self.usage.usage),
            budgets=dict(self.budgets),
            index=None,
        )

    def cannot_start(self, jobs: list[PendingJob]) -> bool:
        """True when none of ``jobs`` (just submitted) could start or reclaim now: every
        one needs more GPUs than are free, and none could preempt for them (it is not
        within its project's nominal quota of a type another project borrows, nor may it
        stop lower priority work of its own). A quick cycle is then skipped; the next
        full cycle decides."""
        free = self.free_gpus()
        if any(job.total_gpus <= free for job in jobs):
            return False
        if self.config.preemption and any(self._may_preempt(job) for job in jobs):
            return False
        for job in jobs:
            self.reasons.setdefault(job.id, PendingReason.RESOURCES)
        return True

    def free_gpus(self) -> int:
        """GPUs held by no job on schedulable nodes."""
        return sum(
            n.gpu_count - len(self.index.nodes[n.id].devices if n.id in self.index.nodes else ())
            for n in self.nodes.values()
            if n.schedulable
        )

    def start_hint(self) -> StartHint:
        """``cannot_start``'s inputs, for any job: a project may reclaim when, on a type
        where it runs below its nominal quota, another project borrows or (if configured)
        it runs work of its own that a higher priority job could stop."""
        reclaim: set[str] = set()
        if self.config.preemption:
            borrowers: dict[str, set[str]] = {}
            for project_id, gpu_type in self.index.usage:
                if self._borrows(project_id, gpu_type):
                    borrowers.setdefault(gpu_type, set()).add(project_id)
            intra = self.config.intra_project_preemption
            for project_id, spec in self.policy.projects.items():
                for gpu_type, quota in spec.quotas.items():
                    used = self.index.usage.get((project_id, gpu_type), 0)
                    if used >= quota.nominal:
                        continue
                    if borrowers.get(gpu_type, set()) - {project_id} or (intra and used > 0):
                        reclaim.add(project_id)
                        break
        return StartHint(self.free_gpus(), frozenset(reclaim))

    def _may_preempt(self, job: PendingJob) -> bool:
        """Whether the scheduler could look for victims for ``job`` (``sched.preempt``'s
        rules, without searching): on a type within its project's nominal quota, another
        project runs above its own, or (if configured) its project runs lower priority
        work."""
        spec = self.policy.projects.get(job.project_id)
        if spec is None:
            return False
        for gpu_type, quota in spec.quotas.items():
            used = self.index.usage.get((job.project_id, gpu_type), 0)
            if not job.accepts(gpu_type) or used + job.total_gpus > quota.nominal:
                continue
            if any(
                t == gpu_type and project_id != job.project_id
                and self._borrows(project_id, gpu_type)
                for project_id, t in self.index.usage
            ):  # fmt: skip
                return True
            if self.config.intra_project_preemption and any(
                r.project_id == job.project_id and r.gpu_type == gpu_type
                and r.priority < job.priority
                for r in self.running.values()
            ):  # fmt: skip
                return True
        return False

    def _borrows(self, project_id: str, gpu_type: str) -> bool:
        spec = self.policy.projects.get(project_id)
        quota = spec.quotas.get(gpu_type) if spec is not None else None
        return self.index.usage.get((project_id, gpu_type), 0) > (quota.nominal if quota else 0)

    def reason(self, job_id: str) -> PendingReason | None:
        if job_id not in self.pending:
            return None
        return self.reasons.get(job_id, PendingReason.PRIORITY)

    def add_pending(self, job: PendingJob) -> None:
        """Queue ``job``, carrying what its user's history says it will run (fixed while
        it waits: its queue position depends on it)."""
        if job.id not in self.specs:
            job = self.history.with_estimate(job)
        self.specs[job.id] = job
        if job.id in self.pending:
            return
        self.pending[job.id] = job
        self.pending_users[job.user_id] = self.pending_users.get(job.user_id, 0) + 1
        queue = self.queues.get(job.project_id)
        if queue is None:
            queue = self.queues[job.project_id] = SortedKeyList(key=queue_key)
        queue.add(job)

    def _unqueue(self, job_id: str) -> PendingJob | None:
        job = self.pending.pop(job_id, None)
        if job is not None:
            left = self.pending_users.pop(job.user_id) - 1
            if left:
                self.pending_users[job.user_id] = left
            queue = self.queues[job.project_id]
            queue.remove(job)
            if not queue:
                del self.queues[job.project_id]
        return job

    def start(self, job: RunningJob) -> None:
        self._unqueue(job.id)
        self.running[job.id] = job
        self.index.add(job)

    def _stop(self, job_id: str) -> None:
        if self.running.pop(job_id, None) is not None:
            self.index.remove(job_id)
        self.unstage(job_id)
        for follower in self.followers.pop(job_id, ()):
            staged = self.staged[follower]
            after = staged.after - {job_id}
            if after:
                self.staged[follower] = Staged(staged.job, after)
                continue
            del self.staged[follower]  # its devices are free: it holds them now
            self.running[follower] = staged.job
            self.index.add(staged.job)
            self.promoted.append(follower)

    def stage(self, job: RunningJob, after: frozenset[str]) -> None:
        """``job`` leaves the queue to run on devices of the running jobs ``after``."""
        self._unqueue(job.id)
        self.staged[job.id] = Staged(job, after)
        for before in after:
            self.followers.setdefault(before, set()).add(job.id)

    def unstage(self, job_id: str) -> None:
        """The staged job will not take its devices (it is being withdrawn): it waits,
        neither here nor queued, until its run's end requeues it."""
        if (staged := self.staged.pop(job_id, None)) is None:
            return
        for before in staged.after:
            followers = self.followers.get(before)
            if followers is not None:
                followers.discard(job_id)
                if not followers:
                    del self.followers[before]

    def take_promoted(self) -> list[str]:
        promoted, self.promoted = self.promoted, []
        return [job_id for job_id in promoted if job_id in self.running]

    def started(self, job_id: str, at: float) -> None:
        """The engine reported the job's start at ``at``."""
        if (running := self.running.get(job_id)) is not None:
            self.update_running(replace(running, started_at=at))
        elif (staged := self.staged.get(job_id)) is not None:
            self.staged[job_id] = Staged(replace(staged.job, started_at=at), staged.after)

    def update_running(self, job: RunningJob) -> None:
        self.running[job.id] = job
        self.index.replace(job)

    def checkpointed(self, job_id: str, at: float) -> None:
        """A running job reported a checkpoint (a job no longer running is ignored)."""
        job = self.running.get(job_id)
        if job is not None and (job.last_checkpoint_at or 0.0) < at:
            self.update_running(replace(job, last_checkpoint_at=at))

    def mark_preempting(self, job_id: str) -> None:
        job = self.running.get(job_id)
        if job is not None:
            self.update_running(replace(job, preempting=True))

    def ended(self, job_id: str, succeeded: bool, ended_at: float) -> None:
        """The job's run ended for good: a success teaches its user's history."""
        running = self.running.get(job_id)
        if succeeded and running is not None:
            self.history.record(
                running.user_id,
                running.project_id,
                running.time_limit_s,
                running.gpus,
                ended_at - running.started_at,
            )
        self.forget(job_id)

    def forget(self, job_id: str) -> None:
        self._unqueue(job_id)
        self._stop(job_id)
        self.specs.pop(job_id, None)
        self.reasons.pop(job_id, None)

    def hold(self, job_id: str) -> None:
        """The job, when it is requeued, waits held (``axc requeue --hold``)."""
        spec = self.specs.get(job_id)
        if spec is not None:
            self.specs[job_id] = replace(spec, held=True)

    def requeue(self, job_id: str) -> None:
        self._stop(job_id)
        spec = self.specs.get(job_id)
        if spec is not None:
            self.add_pending(spec)
