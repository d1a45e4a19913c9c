"""The default policy against the shortest-job-first oracle, on honest replays (issue 23).

Every shared trace, plus variants made from it, replayed under each policy side by side:

- traces: Philly (Chronus MIX1, its 11 virtual clusters as tenants), Microsoft ITP 2021
  (cluster01 and cluster04, jobs up to 64 GPUs; cluster05, up to 8; cluster07, up to 16;
  each file's jobs in 8 tenants by the reader's seeded draw; and the ten clusters merged,
  one tenant per cluster), Alibaba OpenB (default pod list, QoS classes as tenants).
  ITP and Philly publish no cluster: each replays on 8-GPU nodes of one type, as many
  as make the trace's offered load ``BASE_LOAD`` (0.7) of the GPUs.
  OpenB replays on its own node list scaled (``scale_cluster``) to the same load.
- variants: ``load`` compresses arrivals (submit times divided by 1.25 or 1.7) on the
  same cluster, so the offered load is 0.875 or 1.19 (overload); ``ask-max`` sets the
  share of jobs asking the maximum time limit, 7 d (0, 0.3, 1.0); the others ask the
  smallest of 1 h, 4 h, 12 h, 1 d, 3 d, 7 d covering their run (``sim.limits``).
  Never the true duration: only the oracle knows it.
- policies: ``axcenter`` (the default, ``sched.plan``), ``sjf-easy`` (the oracle: one
  queue by true duration, EASY backfill on true durations), ``fifo``; ``--ablation``
  adds the default with one rule of issue 23 undone: ``axcenter-submit-order`` (queue
  order priority, then submit time), ``axcenter-reclaim-always`` (reclaim whatever the
  victims lose), both (``axcenter-before``), ``axcenter-strict-limit-order`` (limit
  buckets without the anti-starvation bound), ``axcenter-nopreempt`` and
  ``axcenter-no-history`` (requested limits only, no estimates from users' history),
  ``axcenter-no-wide-tier`` (whole-node jobs within their project's nominal quota are
  borrowing work when its own jobs are in the way, as before).

Quotas from usage (80% guaranteed, ``sim.quotas``), 30 s cycles, seed 0. Prints one JSON
row per (trace, variant, policy): mean and p95 wait, mean JCT (hours), lost GPU-hours
(run time thrown away by preemption), quota violation beyond one cycle (GPU-hours,
docs/simulation.md), and ``wait_vs_oracle`` = mean wait / the oracle's on the same row.
``long_mean_wait_h`` and ``long_max_wait_h``: the wait of jobs asking a day or more, the
measure of the queue order's anti-starvation bound. At the end, a Markdown table of the
same on stderr; progress on stderr too.

``--quick``: Philly, ITP cluster01 and cluster05 (up to 8 GPUs a job, the heavy 8-GPU
mix) and OpenB, whole, at the base load and 1.7x only: a few minutes on 2 cores
(``--workers 2``). The full run took 29 minutes there.

    .venv/bin/python benchmarks/policy.py [--quick] [--only philly] [--ablation]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from axcenter.model.snapshot import PendingJob, SchedulerConfig, limit_bucket
from axcenter.sim.capacity import Run, run_many
from axcenter.sim.cluster import ClusterSpec, NodeGroup
from axcenter.sim.engine import SimOptions
from axcenter.sim.limits import LimitRule
from axcenter.sim.metrics import SimResult
from axcenter.sim.policies import POLICIES, AxcenterPolicy, JobView, NoPreemptPolicy
from axcenter.sim.quotas import with_usage_quotas
from axcenter.sim.synth import scale_cluster
from axcenter.sim.traces import openb_cluster, read_trace
from axcenter.sim.workload import Workload

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
BASE_LOAD = 0.7
GPUS_PER_NODE = 8
#: (load factor, share asking the maximum)
VARIANTS = ((1.0, 0.3), (1.25, 0.3), (1.7, 0.3), (1.25, 0.0), (1.25, 1.0))
QUICK_VARIANTS = ((1.0, 0.3), (1.7, 0.3))
#: with --quick, only these (whole) traces: the rest take minutes a replay
QUICK_TRACES = ("philly", "itp-cluster01", "itp-cluster05", "openb-default")
POLICY_NAMES = ("axcenter", "sjf-easy", "fifo")
ABLATION = (
    "axcenter-before",
    "axcenter-submit-order",
    "axcenter-strict-limit-order",
    "axcenter-reclaim-always",
    "axcenter-nopreempt",
    "axcenter-no-history",
    "axcenter-no-wide-tier",
)


class SubmitOrderPolicy(AxcenterPolicy):
    """The default policy with the queue order before issue 23 (priority, submit)."""

    name = "axcenter-submit-order"

    def queue_key(self, job: PendingJob) -> tuple[Any, ...]:
        return (-job.priority, job.submitted_at, job.id)


class StrictLimitOrderPolicy(AxcenterPolicy):
    """The default policy ordering by limit bucket without the anti-starvation bound."""

    name = "axcenter-strict-limit-order"

    def queue_key(self, job: PendingJob) -> tuple[Any, ...]:
        return (-job.priority, limit_bucket(job.time_limit_s), job.submitted_at, job.id)


class NoHistoryPolicy(AxcenterPolicy):
    """The default policy planning with requested limits only (no ``sched.history``)."""

    name = "axcenter-no-history"
    plans_with_history = False


class ReclaimAlwaysPolicy(AxcenterPolicy):
    """The default policy reclaiming whatever the victims lose (before issue 23)."""

    name = "axcenter-reclaim-always"

    def __init__(self, view: JobView, config: SchedulerConfig) -> None:
        super().__init__(view, replace(config, reclaim_loss_ratio=math.inf))


class BeforePolicy(SubmitOrderPolicy, ReclaimAlwaysPolicy):
    """The default policy as it was before issue 23: submit order, reclaim always."""

    name = "axcenter-before"


class NoWideTierPolicy(AxcenterPolicy):
    """The default policy with whole-node jobs within their project's nominal quota
    treated as borrowing work when the project's own jobs leave too little of it."""

    name = "axcenter-no-wide-tier"

    def __init__(self, view: JobView, config: SchedulerConfig) -> None:
        super().__init__(view, replace(config, wide_within_guarantee=False))


# registered before the worker processes fork, so they find them by name
POLICIES.setdefault("axcenter-submit-order", SubmitOrderPolicy)
POLICIES.setdefault("axcenter-strict-limit-order", StrictLimitOrderPolicy)
POLICIES.setdefault("axcenter-nopreempt", NoPreemptPolicy)
POLICIES.setdefault("axcenter-reclaim-always", ReclaimAlwaysPolicy)
POLICIES.setdefault("axcenter-before", BeforePolicy)
POLICIES.setdefault("axcenter-no-history", NoHistoryPolicy)
POLICIES.setdefault("axcenter-no-wide-tier", NoWideTierPolicy)


@dataclass
class Case:
    name: str
    load: Callable[[int | None], tuple[Workload, ClusterSpec]]


def offered(workload: Workload) -> float:
    """The GPUs the trace asks for on average: GPU-seconds over its arrival window."""
    jobs = workload.jobs
    window = max(jobs[-1].submit - jobs[0].submit, 1.0)
    return sum(j.gpus * j.duration for j in jobs) / window


def assumed(workload: Workload, name: str) -> ClusterSpec:
    """8-GPU nodes of one type, enough for ``BASE_LOAD`` of the offered load."""
    nodes = max(
        math.ceil(offered(workload) / BASE_LOAD / GPUS_PER_NODE), *(j.nodes for j in workload.jobs)
    )
    group = NodeGroup(name="gpu", gpu_type="GPU", gpus_per_node=GPUS_PER_NODE, count=nodes)
    return ClusterSpec(name=f"{name}-assumed", node_groups=[group])


def compressed(workload: Workload, factor: float) -> Workload:
    """Arrivals ``factor`` times as fast: the same jobs, submit times divided."""
    if factor == 1.0:
        return workload
    jobs = [replace(j, submit=j.submit / factor) for j in workload.jobs]
    notes = (*workload.notes, f"arrivals compressed x{factor:g} (submit / {factor:g})")
    return Workload(f"{workload.name}-x{factor:g}", jobs, notes, workload.quotas)


def cases(traces: Path) -> Iterator[Case]:
    def trace(path: Path) -> Callable[[int | None], tuple[Workload, ClusterSpec]]:
        def load(limit: int | None) -> tuple[Workload, ClusterSpec]:
            workload = read_trace(path, limit=limit)
            return workload, assumed(workload, workload.name)

        return load

    philly = traces / "philly-chronus-mix1" / "trace_job_Philly_MIX1.csv"
    yield Case("philly", trace(philly))
    itp = traces / "microsoft-itp-2021"
    for cluster in ("cluster01", "cluster04", "cluster05", "cluster07"):
        yield Case(f"itp-{cluster}", trace(itp / f"{cluster}.csv"))
    yield Case("itp-all", trace(itp))
    pods = traces / "alibaba-openb-2023" / "openb_pod_list_default.csv"

    def openb(limit: int | None) -> tuple[Workload, ClusterSpec]:
        workload = read_trace(pods, limit=limit)
        own = openb_cluster(pods)
        return workload, scale_cluster(own, offered(workload) / BASE_LOAD / own.gpus)

    yield Case("openb-default", openb)


def long_waits(result: SimResult, workload: Workload, rule: LimitRule) -> tuple[float, float]:
    """Mean and max wait (hours) of the jobs asking a day or more: the starvation guard."""
    asks = {j.id: rule.limit(j, result.seed) for j in workload.jobs}
    waits = [
        (start - submit) / 3600
        for job_id, submit, start in zip(result.ids, result.submit, result.first_start, strict=True)
        if asks[job_id] >= 86400 and start == start
    ]
    return (sum(waits) / len(waits), max(waits)) if waits else (0.0, 0.0)


def row(trace: str, load: float, ask_max: float, summary: dict[str, Any]) -> dict[str, Any]:
    wait, jct = summary["queueing_delay_s"], summary["jct_s"]
    return {
        "trace": trace,
        "load": round(BASE_LOAD * load, 3),
        "ask_max": ask_max,
        "policy": summary["policy"],
        "jobs": summary["jobs"],
        "mean_wait_h": round(wait["mean"] / 3600, 4),
        "p95_wait_h": round(wait["p95"] / 3600, 4),
        "mean_jct_h": round(jct["mean"] / 3600, 4),
        "lost_gpu_h": round(summary["lost_gpu_hours"], 1),
        "quota_violation_gpu_h": round(summary["quota_violation_gpu_s"] / 3600, 1),
        "preemptions": summary["preemptions"],
        "unfinished": summary["unfinished"],
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    head = (
        "| trace | load | ask max | policy | mean wait h | p95 wait h | mean JCT h | "
        "lost GPU-h | quota viol. GPU-h | wait / oracle | jobs asking >= 1 d: mean / max wait h |\n"
        "| --- | --: | --: | --- | --: | --: | --: | --: | --: | --: | --: |\n"
    )
    lines = [
        f"| {r['trace']} | {r['load']:g} | {r['ask_max']:g} | {r['policy']} | "
        f"{r['mean_wait_h']:.3f} | {r['p95_wait_h']:.2f} | {r['mean_jct_h']:.2f} | "
        f"{r['lost_gpu_h']:,.0f} | {r['quota_violation_gpu_h']:,.1f} | "
        f"{r['wait_vs_oracle']:.2f} | {r['long_mean_wait_h']:.2f} / {r['long_max_wait_h']:.1f} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 traces, 2 variants")
    parser.add_argument("--only", default="", help="the traces whose name starts so")
    parser.add_argument("--jobs", type=int, default=None, help="the first N jobs of each trace")
    parser.add_argument("--ablation", action="store_true", help="also the default's variants")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--traces", type=Path, default=TRACES)
    args = parser.parse_args()
    limit = args.jobs
    variants = QUICK_VARIANTS if args.quick else VARIANTS
    policies = POLICY_NAMES + (ABLATION if args.ablation else ())
    chosen = [
        c
        for c in cases(args.traces)
        if c.name.startswith(args.only) and (not args.quick or c.name in QUICK_TRACES)
    ]
    progress = Progress(
        TextColumn("{task.description:<40}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    rows: list[dict[str, Any]] = []
    began = time.perf_counter()
    with progress:
        for case in chosen:
            base, cluster = case.load(limit)
            for load, ask_max in variants:
                workload = with_usage_quotas(compressed(base, load), cluster)
                options = SimOptions(limits=LimitRule(max_share=ask_max))
                label = f"{case.name} load {BASE_LOAD * load:g} ask-max {ask_max:g}"
                tasks = [progress.add_task(f"{label} {p}", total=1.0) for p in policies]

                def update(i: int, fraction: float, tasks: list[Any] = tasks) -> None:
                    progress.update(tasks[i], completed=fraction)

                runs = [Run(cluster, p, options) for p in policies]
                results = run_many(workload, runs, workers=args.workers, progress=update)
                found = [row(case.name, load, ask_max, r.summary()) for r in results]
                for r, result in zip(found, results, strict=True):
                    mean, most = long_waits(result, workload, options.limits)
                    r["long_mean_wait_h"], r["long_max_wait_h"] = round(mean, 3), round(most, 2)
                oracle = next(r for r in found if r["policy"] == "sjf-easy")["mean_wait_h"]
                for r in found:
                    r["wait_vs_oracle"] = round(r["mean_wait_h"] / oracle, 3) if oracle else 0.0
                    sys.stdout.write(json.dumps(r) + "\n")
                    sys.stdout.flush()
                rows += found
                for task in tasks:
                    progress.remove_task(task)
    sys.stderr.write(markdown(rows))
    sys.stderr.write(f"({time.perf_counter() - began:.0f} s)\n")


if __name__ == "__main__":
    main()
