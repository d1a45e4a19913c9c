"""What a simulation measured, and the summary a policy comparison reads.

The engine records raw facts only (per-job times and shapes as NumPy arrays, a
step-function timeline of busy GPUs, a few integrals it cannot recover afterwards, such
as the guaranteed-quota shortfall); every derived number is computed here, after the
run, so a new metric never slows the event loop and old results can be re-summarized.

Definitions (each chosen so that it can be checked by hand on a tiny trace):

- *JCT* (job completion time) = end - submit, over jobs that ended (succeeded or timed
  out); *queueing delay* = first start - submit, over jobs that started at least once.
- *size class* by total GPUs: ``1`` (CPU-only jobs count here too), ``2-4``, ``5-8``,
  ``>8``.
- percentiles use NumPy's default (linear interpolation between order statistics).
- *utilization* = integral of busy GPUs / integral of up GPUs over the timeline.
- *delivered GPU-seconds* of a job = GPUs x time held, over all its runs (a preempted or
  failed run used the GPUs too); a tenant's *share* is its part of all delivered
  GPU-seconds. *Entitlement*: its part of the guaranteed quotas when the workload has
  quotas (tenants without quota are then left out of the index), else equal parts among
  tenants that submitted work. Jain's index over share / entitlement: 1 is perfectly
  proportional, 1/n is one tenant taking everything.
- *guaranteed-quota violation*: integral over time, per tenant, of
  ``max(0, min(quota, running + owed GPUs) - running GPUs)``: GPU-seconds a tenant
  waited while below what its quota promised (quota = sum over GPU types). *Owed* are
  the GPUs of its overdue jobs that fit what its nominal quota has left, now, on some
  GPU type they accept (``running on T + the job's GPUs <= nominal of T``: the test by
  which the scheduler may reclaim for a job); of jobs of one shape (accepted types,
  GPUs) no more than that room could hold at once. *Overdue* jobs are those that have
  waited more than one scheduling cycle (``interval_s``) since they were queued (or
  requeued): no scheduler can start a job before its next cycle, so that latency is
  not charged. A job wider than what is left of its tenant's quota on every type it
  accepts (its own running jobs hold the rest, or it is wider than the quota itself)
  is not owed while that lasts: the quota never promised it a start.
- *cost* in integer won: per job, round half up of (GPU-seconds x price of the GPU type
  it ran on / 3600), then summed; prices are won per GPU-hour from the cluster spec.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from axcenter.sim.workload import TraceJob

__all__ = [
    "SIZE_CLASSES",
    "STATES",
    "Recorder",
    "Shape",
    "SimResult",
    "Start",
    "jain_index",
    "size_class",
    "stats",
    "won",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: job states in ``SimResult.state``, by code
STATES = ("succeeded", "timed_out", "unfinished", "rejected")
SUCCEEDED, TIMED_OUT, UNFINISHED, REJECTED = range(4)
#: size classes in ``SimResult.size_class``, by code (total GPUs of the job)
SIZE_CLASSES = ("1", "2-4", "5-8", ">8")

#: a waiting job's shape for the quota violation: (indices of the GPU types it accepts,
#: its GPUs)
Shape = tuple[tuple[int, ...], int]

#: one admission, when ``SimOptions.record_starts`` is set:
#: (time, job id, GPU type, ((node, devices), ...))
Start = tuple[float, str, str, tuple[tuple[str, tuple[int, ...]], ...]]


def size_class(gpus: int) -> int:
    return 0 if gpus <= 1 else 1 if gpus <= 4 else 2 if gpus <= 8 else 3


def won(priced_gpu_seconds: float) -> int:
    """GPU-seconds x (won per GPU-hour) -> integer won, rounded half up."""
    return math.floor(priced_gpu_seconds / 3600.0 + 0.5)


def stats(values: npt.ArrayLike) -> dict[str, float | int]:
    """count, mean, median, p95, p99 as plain numbers (zeros when there is nothing)."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"count": 0, "mean": 0.0, "median": 0.0, "p95": 0.0, "p99": 0.0}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {
        "count": int(a.size),
        "mean": float(a.mean()),
        "median": float(p50),
        "p95": float(p95),
        "p99": float(p99),
    }


def jain_index(values: npt.ArrayLike) -> float:
    """Jain's fairness index (sum x)^2 / (n sum x^2); 1.0 for no values or all zeros."""
    x = np.asarray(values, dtype=np.float64)
    squares = float((x * x).sum())
    if x.size == 0 or squares == 0.0:
        return 1.0
    return float(x.sum()) ** 2 / (x.size * squares)


@dataclass(slots=True)
class SimResult:
    """Per-job arrays (index = position in the time-sorted workload) and run totals."""

    policy: str
    workload: str
    seed: int
    tenants: tuple[str, ...]
    gpu_types: tuple[str, ...]
    ids: tuple[str, ...]
    submit: FloatArray
    first_start: FloatArray  # NaN: never started
    end: FloatArray  # NaN: did not end
    gpus: IntArray
    tenant: IntArray  # index into ``tenants``
    size_class: IntArray  # index into ``SIZE_CLASSES``
    gpu_type: IntArray  # index into ``gpu_types`` of its last run; -1: never ran
    preemptions: IntArray
    state: IntArray  # index into ``STATES``
    gpu_seconds: FloatArray  # delivered: GPUs x time held, all runs
    cost_won: IntArray
    #: busy GPUs as a step function: value ``[k]`` holds from ``times[k]`` to ``times[k+1]``
    times: FloatArray
    busy: IntArray
    busy_by_type: IntArray  # shape (len(times), len(gpu_types))
    capacity: IntArray  # GPUs on nodes that are up
    quota: IntArray  # guaranteed GPUs per tenant (all types)
    quota_violation_gpu_s: FloatArray  # per tenant
    lost_gpu_s: float  # run time thrown away by preemptions and node failures
    failure_requeues: int
    events: int
    cycles: int
    wall_s: float
    starts: list[Start] = field(default_factory=list)
    notes: tuple[str, ...] = ()

    # -- derived --------------------------------------------------------------------

    @property
    def jct(self) -> FloatArray:
        ended = ~np.isnan(self.end)
        out: FloatArray = self.end[ended] - self.submit[ended]
        return out

    @property
    def queueing_delay(self) -> FloatArray:
        started = ~np.isnan(self.first_start)
        out: FloatArray = self.first_start[started] - self.submit[started]
        return out

    def utilization(self) -> float:
        """Busy GPU-seconds / up GPU-seconds over the timeline."""
        if self.times.size < 2:
            return 0.0
        dt = np.diff(self.times)
        up = float((self.capacity[:-1] * dt).sum())
        return float((self.busy[:-1] * dt).sum()) / up if up > 0 else 0.0

    def makespan(self) -> float:
        ended = ~np.isnan(self.end)
        if not ended.any():
            return 0.0
        return float(self.end[ended].max() - self.submit.min())

    def shares(self) -> dict[str, float]:
        """Per tenant: share of delivered GPU-seconds / entitlement (see the module doc)."""
        delivered = np.bincount(self.tenant, weights=self.gpu_seconds, minlength=len(self.tenants))
        submitted = np.bincount(self.tenant, minlength=len(self.tenants)) > 0
        if self.quota.any():
            members = submitted & (self.quota > 0)
            weights = np.where(members, self.quota, 0).astype(np.float64)
        else:
            members = submitted
            weights = members.astype(np.float64)
        total, total_weight = float(delivered.sum()), float(weights.sum())
        if total_weight == 0:
            return {}
        out: dict[str, float] = {}
        for i in np.flatnonzero(members):
            share = float(delivered[i]) / total if total > 0 else 0.0
            out[self.tenants[i]] = share / (float(weights[i]) / total_weight)
        return out

    def _grouped(
        self,
        values: FloatArray,
        mask: npt.NDArray[np.bool_],
        groups: IntArray,
        names: Sequence[str],
    ) -> dict[str, dict[str, float | int]]:
        keys = groups[mask]
        return {name: stats(values[keys == k]) for k, name in enumerate(names)}

    def summary(self) -> dict[str, Any]:
        """Plain JSON-serializable numbers (floats and ints), nested by topic."""
        ended = ~np.isnan(self.end)
        started = ~np.isnan(self.first_start)
        jct, delay = self.jct, self.queueing_delay
        counts = np.bincount(self.state, minlength=len(STATES))
        shares = self.shares()
        violation: Mapping[str, float] = {
            t: float(v)
            for t, v, q in zip(self.tenants, self.quota_violation_gpu_s, self.quota, strict=True)
            if q > 0
        }
        return {
            "policy": self.policy,
            "workload": self.workload,
            "seed": self.seed,
            "jobs": int(self.submit.size),
            **{name: int(counts[code]) for code, name in enumerate(STATES)},
            "jct_s": stats(jct),
            "queueing_delay_s": stats(delay),
            "jct_by_size": self._grouped(jct, ended, self.size_class, SIZE_CLASSES),
            "queueing_delay_by_size": self._grouped(delay, started, self.size_class, SIZE_CLASSES),
            "jct_by_tenant": self._grouped(jct, ended, self.tenant, self.tenants),
            "queueing_delay_by_tenant": self._grouped(delay, started, self.tenant, self.tenants),
            "makespan_s": self.makespan(),
            "utilization": self.utilization(),
            "preemptions": int(self.preemptions.sum()),
            "failure_requeues": self.failure_requeues,
            "lost_gpu_hours": self.lost_gpu_s / 3600.0,
            "gpu_hours": float(self.gpu_seconds.sum()) / 3600.0,
            "jain_index": jain_index(list(shares.values())),
            "share_vs_entitlement": shares,
            "quota_violation_gpu_s": float(sum(violation.values())),
            "quota_violation_by_tenant": dict(violation),
            "cost_won": int(self.cost_won.sum()),
            "events": self.events,
            "cycles": self.cycles,
            "wall_s": self.wall_s,
        }


class Recorder:
    """The facts a run leaves behind, filled in by the engine as events happen.

    Per-job lists are preallocated (index = position in the time-sorted workload); the
    timeline gets one row per distinct time at which busy or up GPUs changed; the quota
    shortfall is integrated lazily, per tenant, whenever that tenant's held or waiting
    GPUs change, so the cost per change is one pass over the shapes (accepted types,
    GPUs) of that tenant's overdue jobs, whatever the number of tenants or jobs.
    """

    def __init__(
        self,
        jobs: Sequence[TraceJob],
        tenants: Sequence[str],
        quota: Sequence[int],
        gpu_types: Sequence[str],
        capacity: int,
        start: float,
        nominal: Sequence[Sequence[int]],
    ) -> None:
        n = len(jobs)
        self.jobs = jobs
        self.first_start = [math.nan] * n
        self.end = [math.nan] * n
        self.state = [UNFINISHED] * n
        self.gpu_type = [-1] * n
        self.preemptions = [0] * n
        self.gpu_s = [0.0] * n  # delivered GPU-seconds so far, all runs
        self.priced = [0.0] * n  # GPU-seconds x won per GPU-hour
        self.busy = 0
        self.busy_t = [0] * len(gpu_types)
        self.capacity = capacity
        self.times: list[float] = []
        self.rows: list[tuple[int, int, tuple[int, ...]]] = []
        self.quota = list(quota)
        #: per tenant, nominal quota by GPU type (index into ``gpu_types``)
        self.nominal = [list(q) for q in nominal]
        self.held = [0] * len(tenants)
        #: per tenant, GPUs its running jobs hold by GPU type
        self.used = [[0] * len(q) for q in self.nominal]
        self.waiting = [0] * len(tenants)  # overdue GPUs (see the module doc)
        #: per tenant, overdue GPUs by shape: (accepted type indices, GPUs of one job)
        self.shapes: list[dict[Shape, int]] = [{} for _ in tenants]
        self.overdue = [False] * n  # job i counts in its tenant's ``waiting``
        self.touched = [start] * len(tenants)
        self.violation = [0.0] * len(tenants)
        self.lost = 0.0
        self.failure_requeues = 0
        self.start = start

    def started(self, i: int, t: float, gpus: int, gpu_type: int) -> None:
        if self.first_start[i] != self.first_start[i]:  # NaN: its first start
            self.first_start[i] = t
        self.busy += gpus
        if gpu_type >= 0:
            self.gpu_type[i] = gpu_type
            self.busy_t[gpu_type] += gpus

    def stopped(self, i: int, gpu_seconds: float, price: int, gpus: int, gpu_type: int) -> None:
        self.gpu_s[i] += gpu_seconds
        self.priced[i] += gpu_seconds * price
        self.busy -= gpus
        if gpu_type >= 0:
            self.busy_t[gpu_type] -= gpus

    def may_owe(self, ti: int, shape: Shape) -> bool:
        """Whether a job of ``shape`` could ever be owed to tenant ``ti``: its nominal
        quota of some type the job accepts is as wide as the job."""
        nominal = self.nominal[ti]
        types, gpus = shape
        return gpus > 0 and any(gpus <= nominal[k] for k in types)

    def account(
        self,
        ti: int,
        t: float,
        held: int,
        waiting: int,
        gpu_type: int = -1,
        shape: Shape | None = None,
    ) -> None:
        """A tenant's held GPUs (of ``gpu_type``) or waiting GPUs (of ``shape``) change at
        ``t``: integrate its shortfall."""
        quota = self.quota[ti]
        if quota:
            if self.waiting[ti] > 0:
                short = self.shortfall(ti)
                if short > 0:
                    self.violation[ti] += short * (t - self.touched[ti])
            self.touched[ti] = t
        self.held[ti] += held
        if held and gpu_type >= 0:
            self.used[ti][gpu_type] += held
        if waiting:
            assert shape is not None, "waiting GPUs change by shape"
            self.waiting[ti] += waiting
            shapes = self.shapes[ti]
            left = shapes.get(shape, 0) + waiting
            if left:
                shapes[shape] = left
            else:
                del shapes[shape]

    def shortfall(self, ti: int) -> int:
        """GPUs tenant ``ti`` is short of its guarantee now (see the module doc)."""
        run = self.held[ti]
        used, nominal = self.used[ti], self.nominal[ti]
        owed = 0
        for (types, gpus), waiting in self.shapes[ti].items():
            room = max((nominal[k] - used[k] for k in types), default=0)
            if gpus <= room:
                owed += min(waiting, room // gpus * gpus)
        return min(self.quota[ti], run + owed) - run

    def record(self, t: float) -> None:
        row = (self.busy, self.capacity, tuple(self.busy_t))
        if self.rows and self.rows[-1] == row:
            return
        if self.times and self.times[-1] == t:
            self.rows[-1] = row
        else:
            self.times.append(t)
            self.rows.append(row)

    def result(
        self,
        *,
        policy: str,
        workload: str,
        seed: int,
        tenants: Sequence[str],
        gpu_types: Sequence[str],
        tenant_ix: Mapping[str, int],
        events: int,
        cycles: int,
        wall_s: float,
        starts: list[Start],
        notes: Sequence[str],
    ) -> SimResult:
        end = self.times[-1] if self.times else self.start
        for ti in range(len(tenants)):
            self.account(ti, end, 0, 0)  # integrate the shortfall up to the end
        jobs, n = self.jobs, len(self.jobs)
        gpus = np.fromiter((j.gpus for j in jobs), np.int64, n)
        rows = self.rows or [(0, self.capacity, tuple(self.busy_t))]
        return SimResult(
            policy=policy,
            workload=workload,
            seed=seed,
            tenants=tuple(tenants),
            gpu_types=tuple(gpu_types),
            ids=tuple(j.id for j in jobs),
            submit=np.fromiter((j.submit for j in jobs), np.float64, n),
            first_start=np.array(self.first_start, dtype=np.float64),
            end=np.array(self.end, dtype=np.float64),
            gpus=gpus,
            tenant=np.fromiter((tenant_ix[j.tenant] for j in jobs), np.int64, n),
            size_class=np.fromiter((size_class(g) for g in gpus.tolist()), np.int64, n),
            gpu_type=np.array(self.gpu_type, dtype=np.int64),
            preemptions=np.array(self.preemptions, dtype=np.int64),
            state=np.array(self.state, dtype=np.int64),
            gpu_seconds=np.array(self.gpu_s, dtype=np.float64),
            cost_won=np.fromiter((won(p) for p in self.priced), np.int64, n),
            times=np.array(self.times or [self.start], dtype=np.float64),
            busy=np.array([r[0] for r in rows], dtype=np.int64),
            busy_by_type=np.array([r[2] for r in rows], dtype=np.int64).reshape(-1, len(gpu_types)),
            capacity=np.array([r[1] for r in rows], dtype=np.int64),
            quota=np.array(self.quota, dtype=np.int64),
            quota_violation_gpu_s=np.array(self.violation, dtype=np.float64),
            lost_gpu_s=self.lost,
            failure_requeues=self.failure_requeues,
            events=events,
            cycles=cycles,
            wall_s=wall_s,
            starts=starts,
            notes=tuple(notes),
        )
