"""Snapshot: everything ``sched.plan`` may read, as plain immutable values.

Times are UTC seconds since the epoch (floats) so that the simulator's clock and the
live wall clock are interchangeable.

Pending jobs come in per-project queues, each already in queue order (``queue_key``:
priority class, then submit time pushed back by the requested time limit). The live
cache and the simulator keep these queues sorted as jobs arrive, so a scheduling cycle
reads only the heads it can use instead of sorting the whole backlog: its cost grows
with the jobs that can start, not the queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from axcenter.model.cluster import Allocation, Node
from axcenter.model.money import rate
from axcenter.model.quota import QuotaNode

if TYPE_CHECKING:
    from axcenter.model.index import RunningIndex

__all__ = [
    "LIMIT_STEP_S",
    "Budget",
    "Limits",
    "PendingJob",
    "Reservation",
    "RunningJob",
    "SchedulerConfig",
    "Snapshot",
    "limit_bucket",
    "queue_key",
    "queues_from",
]


@dataclass(frozen=True, slots=True)
class PendingJob:
    id: str
    project_id: str
    user_id: str
    submitted_at: float
    gpus_per_node: int
    nodes: int
    cpus_per_node: int
    memory_mb_per_node: int
    time_limit_s: int
    priority: int = 0
    gpu_types: tuple[str, ...] = ()
    #: held by its owner or an operator (``axc hold``, Slurm's ``scontrol hold``): it keeps
    #: its place in the queue but is not started until released
    held: bool = False
    #: waits for other jobs (``--dependency``) until the service finds them ended as asked
    dependent: bool = False
    #: how long it will likely run, from its user's recent runs of similar jobs
    #: (``sched.history``); 0: no estimate. Orders and backfills, never kills.
    estimate_s: int = 0
    #: ``gpus_per_node * nodes``, derived once (read many times per cycle)
    total_gpus: int = field(init=False, compare=False, repr=False)
    #: what the scheduler plans with: the estimate if it is below the time limit, else
    #: the time limit (derived once)
    expected_s: int = field(init=False, compare=False, repr=False)
    #: its ``queue_key``, derived once (read at every insertion and heap entry)
    order: tuple[int, float, float, str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total_gpus", self.gpus_per_node * self.nodes)
        limit, estimate = self.time_limit_s, self.estimate_s
        expected = estimate if 0 < estimate < limit else limit
        object.__setattr__(self, "expected_s", expected)
        due = self.submitted_at + LIMIT_STEP_S * limit_bucket(expected)
        object.__setattr__(self, "order", (-self.priority, due, self.submitted_at, self.id))

    def accepts(self, gpu_type: str) -> bool:
        return not self.gpu_types or gpu_type in self.gpu_types


#: a job's queue position moves back this long per doubling of its requested time limit
#: (``queue_key``): a 7-day job queues as if submitted 8 x 4 h later than a 1-hour job
LIMIT_STEP_S = 4 * 3600.0


def limit_bucket(time_limit_s: int) -> int:
    """The log2 bucket of a requested time limit, in minutes: 1 min and less -> 0,
    1 h -> 6, 4 h -> 8, 12 h -> 10, 1 d -> 11, 3 d -> 13, 7 d -> 14."""
    minutes = -(-time_limit_s // 60)  # whole minutes, rounded up
    return (minutes - 1).bit_length() if minutes > 1 else 0  # ceil(log2(minutes))


def queue_key(job: PendingJob) -> tuple[int, float, float, str]:
    """Order within a project: higher priority class first; within a class, shorter
    expected runs first (the requested time limit, tightened by the user's history:
    ``PendingJob.expected_s``), with a bound: a job queues as if it had been submitted
    ``LIMIT_STEP_S`` later per log2 bucket of it (``limit_bucket``), so a job
    asking 7 days is passed by 1-hour jobs submitted up to 32 hours after it, never by
    later ones (docs/scheduling.md, "Queue order"). The key never changes while a job
    waits, so the queues stay sorted as jobs arrive. (Computed once, in
    ``PendingJob.order``.)"""
    return job.order


def queues_from(jobs: Iterable[PendingJob]) -> dict[str, tuple[PendingJob, ...]]:
    """Per-project queues in queue order (for callers that hold a flat list)."""
    queues: dict[str, list[PendingJob]] = {}
    for job in jobs:
        queues.setdefault(job.project_id, []).append(job)
    return {p: tuple(sorted(q, key=queue_key)) for p, q in sorted(queues.items())}


@dataclass(frozen=True, slots=True)
class RunningJob:
    id: str
    project_id: str
    user_id: str
    started_at: float
    time_limit_s: int
    allocations: tuple[Allocation, ...]
    priority: int = 0
    gpu_type: str = ""
    borrowed: bool = False  # admitted beyond its project's nominal quota
    preempting: bool = False  # asked to stop; its devices free up soon
    #: when the job last reported a checkpoint (it resumes from there); None: never
    last_checkpoint_at: float | None = None
    #: devices held, derived from ``allocations`` once (read many times per cycle)
    gpus: int = field(init=False, compare=False, repr=False)
    #: the end of its time limit, ``started_at + time_limit_s`` (derived once)
    ends_by: float = field(init=False, compare=False, repr=False)
    #: since when its work would be lost if stopped: its last checkpoint in this run,
    #: else its start (derived once)
    saved_at: float = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "gpus", sum(len(a.devices) for a in self.allocations))
        object.__setattr__(self, "ends_by", self.started_at + self.time_limit_s)
        checkpoint = self.last_checkpoint_at
        saved = self.started_at if checkpoint is None else max(self.started_at, checkpoint)
        object.__setattr__(self, "saved_at", saved)

    def loss(self, now: float) -> float:
        """GPU-seconds thrown away if it stopped at ``now``: those since ``saved_at``."""
        return max(0.0, now - self.saved_at) * self.gpus


@dataclass(frozen=True, slots=True)
class Reservation:
    """Devices held for one project during ``[start, end)`` (e.g. a demonstration day)."""

    id: str
    project_id: str
    start: float
    end: float
    devices: tuple[tuple[str, tuple[int, ...]], ...]  # (node id, device indices)

    def blocks(self, project_id: str, start: float, end: float) -> bool:
        """Whether a job of ``project_id`` running ``[start, end)`` must avoid it."""
        return project_id != self.project_id and start < self.end and end > self.start


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on what runs at once; None is no cap."""

    max_running_jobs: int | None = None
    max_gpus: int | None = None


@dataclass(frozen=True, slots=True)
class Budget:
    """What a project's current allocation can still pay for (docs/accounting.md).

    A job is admitted funded only if the hold for its worst case (GPUs x (time limit +
    ``hold_grace_s``), rated at the GPU type's price) fits both envelopes. Otherwise it
    waits (reason ``budget``), or with ``unfunded_ok`` runs unfunded as a preemptible
    borrower. A project without a budget is not under allocation control.
    """

    won_left: int
    gpu_seconds_left: Mapping[str, int]  # by GPU type granted
    prices: Mapping[str, int]  # won per GPU-hour, by GPU type
    hold_grace_s: int = 0
    unfunded_ok: bool = False

    def hold(self, gpu_type: str, gpus: int, time_limit_s: int) -> tuple[int, int] | None:
        """(won, GPU-seconds) to hold for a job, or None if it cannot be funded."""
        price = self.prices.get(gpu_type)
        if price is None or gpu_type not in self.gpu_seconds_left:
            return None
        secs = gpus * (time_limit_s + self.hold_grace_s)
        won = rate(secs, price)
        if won > self.won_left or secs > self.gpu_seconds_left[gpu_type]:
            return None
        return won, secs


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    backfill: bool = True
    #: jobs examined per cycle once the top job is blocked (Slurm's bf_max_job_test)
    bf_max_job_test: int = 500
    #: blocked jobs that get a backfill reservation each cycle, in order (Maui's
    #: RESERVATIONDEPTH); 1 is EASY backfill
    bf_reservations: int = 8
    #: reclaim guaranteed quota by preempting borrowers
    preemption: bool = True
    #: a job that has run less than this is not preempted
    min_runtime_s: float = 120.0
    #: higher priority classes preempt lower ones of the same project
    intra_project_preemption: bool = False
    #: preemption searches per cycle (each may look at every running borrower)
    preempt_max_attempts: int = 16
    #: reclaim only when the victims lose at most this many times what the reclaiming
    #: job gains: GPU-seconds since their last checkpoints against its GPUs x the wait
    #: it would have without preemption (docs/scheduling.md); inf: always reclaim
    reclaim_loss_ratio: float = 1.0
    #: how much a head job's wait lowers its project's fair-share key (0 disables aging)
    age_weight: float = 0.25
    #: the wait at which the age bonus stops growing
    max_age_s: float = 7 * 86400.0
    #: succeeded runs of similar jobs a user needs before their run times tighten the
    #: limits of that user's next ones (``sched.history``); 0: plan with limits only
    history_min_runs: int = 3
    #: a single-node job that needs a whole node and that its project's nominal quota
    #: could hold (the project not borrowing that type) is ordered with guaranteed work (tier 0),
    #: even when the project's own running jobs leave too little of the guarantee for
    #: it now (docs/scheduling.md, "Wide jobs within the guarantee")
    wide_within_guarantee: bool = True
    #: configured weights of a GPU-second by type for fair share, (type, weight) pairs;
    #: empty: the live center weighs by the price book (``control.usage``), a replay by
    #: its cluster's prices (the snapshot carries the weights in force: ``usage_weights``)
    usage_weights: tuple[tuple[str, float], ...] = ()
    #: half-life of the decayed usage behind fair share (applied by the caller)
    fair_share_half_life_s: float = 7 * 86400.0
    #: GPU jobs of a project with no budget (no allocation) run, free of charge; False:
    #: they wait (reason ``budget``) until an allocation covers them
    run_unallocated: bool = True


@dataclass(frozen=True, slots=True)
class Snapshot:
    nodes: tuple[Node, ...]
    running: tuple[RunningJob, ...]
    queues: Mapping[str, Sequence[PendingJob]]
    projects: Mapping[str, QuotaNode] = field(default_factory=dict)
    cohorts: Mapping[str, QuotaNode] = field(default_factory=dict)
    #: decayed weighted GPU-seconds per project, the usage behind fair share
    usage: Mapping[str, float] = field(default_factory=dict)
    #: what a GPU-second of each type weighs in ``usage`` (``sched.fairshare``): its
    #: price relative to the cheapest type, or a configured throughput weight; a type
    #: not named weighs 1
    usage_weights: Mapping[str, float] = field(default_factory=dict)
    reservations: tuple[Reservation, ...] = ()
    user_limits: Limits = field(default_factory=Limits)
    project_limits: Mapping[str, Limits] = field(default_factory=dict)
    #: per project under allocation control: what its current allocation can still pay
    budgets: Mapping[str, Budget] = field(default_factory=dict)
    config: SchedulerConfig = field(default_factory=SchedulerConfig)
    #: aggregates of ``running`` kept by the caller (see ``model.index``); None: built here
    index: RunningIndex | None = None
    #: pending jobs the previous plan left waiting on ``preempting`` (the caller keeps
    #: them): they are decided first, so the devices their victims free go to them
    reclaiming: tuple[PendingJob, ...] = ()

    def running_index(self) -> RunningIndex:
        from axcenter.model.index import RunningIndex  # noqa: PLC0415 (index imports us)

        return self.index if self.index is not None else RunningIndex(self.running)

    @property
    def pending_count(self) -> int:
        return sum(len(q) for q in self.queues.values())
