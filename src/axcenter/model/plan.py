"""Plan: what ``sched.plan`` decided, each decision with its reason."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from axcenter.model.cluster import Allocation

__all__ = ["Admission", "PendingReason", "Plan", "Preemption"]


class PendingReason(StrEnum):
    """Why a pending job is not running, in the spirit of ``squeue``'s reason column."""

    PRIORITY = "priority"  # jobs ahead of it in the queue come first
    RESOURCES = "resources"  # not enough free devices of an accepted type
    QUOTA = "quota"  # its project's quota is exhausted and nothing can be borrowed
    RESERVATION = "reservation"  # devices are held by a reservation
    LIMIT = "limit"  # a per-user or per-project limit is reached
    GANG = "gang"  # blocked behind a higher-priority gang job
    NODES = "nodes"  # no node of an accepted type is up


@dataclass(frozen=True, slots=True)
class Admission:
    job_id: str
    gpu_type: str
    placement: tuple[Allocation, ...]


@dataclass(frozen=True, slots=True)
class Preemption:
    job_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    admissions: tuple[Admission, ...] = ()
    preemptions: tuple[Preemption, ...] = ()
    waiting: Mapping[str, PendingReason] = field(default_factory=dict)
