"""What N more GPUs would have changed: a center's own history replayed on its own
cluster and on larger ones, under the live scheduler (``plan()`` through the engine).

The history and the cluster come from the live center (``service.evidence``: the jobs
that ran in the period, the nodes as node groups), so nothing is written by hand. Every
scenario is a replay of the same workload under the same policy, options and quotas;
the baseline is the replay on the cluster as it is, so differences are between replays
(the real waits are reported beside, for what actually happened).

For each scenario: waits (nearest-rank p50 and p95) of all jobs and of the program's
jobs, the p95 per company size, the program's jobs that waited more than ``SERVED_WAIT_S``,
and the program's projects "served promptly": those whose own p95 wait is within it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from axcenter.sim.capacity import Run, run_many
from axcenter.sim.cluster import ClusterSpec
from axcenter.sim.engine import SimOptions
from axcenter.sim.quotas import with_usage_quotas
from axcenter.sim.workload import TraceJob, Workload

__all__ = ["SERVED_WAIT_S", "Scenario", "WhatIf", "replay_history", "workload_from_history"]

#: a job served "promptly" starts within an hour
SERVED_WAIT_S = 3600.0


@dataclass(frozen=True)
class Scenario:
    label: str
    gpu_type: str = ""
    gpus_per_node: int = 0
    nodes: int = 0

    @property
    def added_gpus(self) -> int:
        return self.gpus_per_node * self.nodes


@dataclass(frozen=True)
class WhatIf:
    scenario: Scenario
    gpus: int
    p50_wait_s: float | None
    p95_wait_s: float | None
    program_p50_wait_s: float | None
    program_p95_wait_s: float | None
    program_waited_over: int
    program_projects: int
    program_projects_served: int
    p95_by_size: dict[str, float | None] = field(default_factory=dict)
    utilization: float = 0.0
    unfinished: int = 0


def _nearest(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(math.ceil(q * len(ordered)), 1) - 1], 1)


def workload_from_history(history: Sequence[Mapping[str, Any]], name: str) -> Workload:
    """The exported jobs (``service.evidence``) as a workload, in submission order."""
    jobs = [
        TraceJob(
            id=str(h["id"]),
            submit=float(h["submit"]),
            duration=float(h["duration"]),
            gpus_per_node=int(h["gpus_per_node"]),
            nodes=int(h["nodes"]),
            gpu_types=tuple(h.get("gpu_types") or ()),
            tenant=str(h["tenant"]),
            time_limit=float(h["time_limit"]) if h.get("time_limit") else None,
            priority=int(h.get("priority") or 0),
        )
        for h in sorted(history, key=lambda h: (float(h["submit"]), str(h["id"])))
    ]
    return Workload(
        name=name,
        jobs=jobs,
        notes=("the center's own history in the period: the jobs that ran",),
    )


def replay_history(
    history: Sequence[Mapping[str, Any]],
    cluster: ClusterSpec,
    scenarios: Sequence[Scenario],
    *,
    workers: int = 2,
    policy: str = "axcenter",
) -> list[WhatIf]:
    """Replay ``history`` on ``cluster`` grown by each scenario (one with no nodes is the
    baseline)."""
    if not history:
        return []
    workload = with_usage_quotas(workload_from_history(history, "history"), cluster, 0.8)
    info = {str(h["id"]): h for h in history}
    runs = [
        Run(
            cluster=cluster.with_added(s.gpu_type, s.gpus_per_node, s.nodes)
            if s.nodes
            else cluster,
            policy=policy,
            options=SimOptions(interval_s=30.0, seed=0),
        )
        for s in scenarios
    ]
    results = run_many(workload, runs, workers=workers)
    out = []
    for scenario, run, result in zip(scenarios, runs, results, strict=True):
        waits = result.first_start - result.submit
        all_waits: list[float] = []
        program: dict[str, list[float]] = {}
        by_size: dict[str, list[float]] = {}
        for job_id, wait in zip(result.ids, waits.tolist(), strict=True):
            if np.isnan(wait):
                continue
            all_waits.append(wait)
            h = info[job_id]
            if h.get("program"):
                program.setdefault(str(h["tenant"]), []).append(wait)
                by_size.setdefault(str(h.get("size_class") or "-"), []).append(wait)
        mine = [w for ws in program.values() for w in ws]
        out.append(
            WhatIf(
                scenario=scenario,
                gpus=run.cluster.gpus,
                p50_wait_s=_nearest(all_waits, 0.5),
                p95_wait_s=_nearest(all_waits, 0.95),
                program_p50_wait_s=_nearest(mine, 0.5),
                program_p95_wait_s=_nearest(mine, 0.95),
                program_waited_over=sum(1 for w in mine if w > SERVED_WAIT_S),
                program_projects=len(program),
                program_projects_served=sum(
                    1 for ws in program.values() if (_nearest(ws, 0.95) or 0.0) <= SERVED_WAIT_S
                ),
                p95_by_size={k: _nearest(v, 0.95) for k, v in sorted(by_size.items())},
                utilization=round(result.utilization(), 4),
                unfinished=int(np.isnan(result.end).sum()),
            )
        )
    return out
