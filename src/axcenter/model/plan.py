"""Plan: what ``sched.plan`` decided, each decision with its reason."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from axcenter.model.cluster import Allocation

__all__ = ["Admission", "Estimate", "PendingReason", "Plan", "Preemption"]


class PendingReason(StrEnum):
    """Why a pending job is not running, in the spirit of ``squeue``'s reason column."""

    PRIORITY = "priority"  # jobs ahead of it come first (also: not examined this cycle)
    RESOURCES = "resources"  # not enough free devices of an accepted type
    QUOTA = "quota"  # its project's quota and borrowing limit are used up
    RESERVATION = "reservation"  # the devices it could use are reserved for a project
    LIMIT = "limit"  # a per-user or per-project limit is reached
    BUDGET = "budget"  # its allocation cannot pay for it (GPU-hours or won exhausted)
    GANG = "gang"  # it would delay the reserved start of a higher-priority gang job
    PREEMPTING = "preempting"  # borrowers are being preempted to give it its quota
    NODES = "nodes"  # no node of an accepted type is up
    HELD = "held"  # held by its owner or an operator until released
    DEPENDENCY = "dependency"  # waits for jobs it depends on (--dependency) to end


@dataclass(frozen=True, slots=True)
class Admission:
    job_id: str
    gpu_type: str
    placement: tuple[Allocation, ...]
    borrowed: bool = False  # runs beyond its project's nominal quota: preemptible
    #: charged to its project's allocation (False: unfunded, runs preemptible)
    funded: bool = True


@dataclass(frozen=True, slots=True)
class Preemption:
    job_id: str
    for_job: str  # the pending job whose guaranteed quota this reclaims
    reason: str


@dataclass(frozen=True, slots=True)
class Estimate:
    """The reserved start of the top blocked job (EASY backfill's shadow time)."""

    job_id: str
    at: float
    placement: tuple[Allocation, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    admissions: tuple[Admission, ...] = ()
    preemptions: tuple[Preemption, ...] = ()
    estimates: tuple[Estimate, ...] = ()
    #: reasons for the jobs this cycle examined, in the order it examined them (the
    #: queue's scheduling order, ``service/queue.py``); any other pending job waits on
    #: PRIORITY
    waiting: Mapping[str, PendingReason] = field(default_factory=dict)

    def reason(self, job_id: str) -> PendingReason:
        return self.waiting.get(job_id, PendingReason.PRIORITY)
