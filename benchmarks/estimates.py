"""How far estimated starts are from real ones, and what one refresh costs.

**Error.** A shared trace is replayed by the simulator's engine under the live policy
(``axcenter``, quotas from usage, ``SimOptions()`` defaults: time limits as users give
them, ``sim.limits``). Jobs run their real durations, which the estimates do not know.
For a sample of the jobs (every ``--every``-th), at the first cycle after the job's
submission, and again once 25%, 50% and 75% of its real wait has passed, the engine's
state (queues, running jobs on their devices, quotas, fair-share usage) is handed to
``sim.forecast`` exactly as the live estimator gets the loop's view, and the job's
forecast start is compared with the start the replay then really gave it. A second
replay gives the later points (the engine is deterministic, and forecasting changes
none of its state). Reported per point: median and p90 of |estimate - real start|, the
median signed error (positive: the estimate was later, as expected since jobs end
before their limits), the share of jobs that started no later than their estimate
(within a cycle: the estimate as an upper bound), and the share of jobs with an
estimate (the rest start beyond the forecast's horizon, or could not be placed by it)
among jobs that waited at least one cycle. Slurm's ``squeue --start`` is not run here
(no trace replays on Slurm): ``benchmarks/estimates_vs_slurm.py`` puts the two side by
side on one real burst.

**Cost.** One forecast (one estimator refresh) over a queue of 1,000 and of 10,000
pending jobs drawn from the Philly trace (their time limits by the same rule), on the
assumed Philly center with every GPU busy with jobs ending over the next day.

Traces: ``philly`` (the first ``--jobs`` jobs of Philly MIX1, 11 real virtual clusters as
tenants), ``itp-cluster01`` (Microsoft ITP cluster01, one tenant), each on an *assumed*
center sized as ``benchmarks/sim_replay.py`` does (8-GPU nodes), for ``--load`` (default
90%) offered load: a center where jobs wait, which is when an estimate matters.

Prints one JSON object per line.

    .venv/bin/python benchmarks/estimates.py [--quick] [--only philly] [--every 20]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks.sim_replay

from axcenter.model.cluster import Allocation
from axcenter.model.quota import Quota, QuotaNode
from axcenter.model.snapshot import PendingJob, RunningJob, Snapshot, queues_from
from axcenter.sched.plan import plan
from axcenter.sim.cluster import ClusterSpec
from axcenter.sim.engine import SimOptions, _Engine  # the engine's state, read-only
from axcenter.sim.forecast import forecast
from axcenter.sim.limits import LimitRule
from axcenter.sim.policies import POLICIES
from axcenter.sim.quotas import with_usage_quotas
from axcenter.sim.traces import read_trace
from axcenter.sim.workload import Workload
from benchmarks.sim_replay import TRACES, assumed_cluster

#: the points after submission at which a job's estimate is taken again (share of its wait)
LATER = (0.25, 0.5, 0.75)


@dataclass
class Sample:
    submit: float
    #: (due time, point label) still to take, in time order
    due: list[tuple[float, str]]
    estimates: dict[str, float | None]


class Probe(_Engine):
    """The engine, asking ``sim.forecast`` for sampled jobs' starts after its cycles."""

    samples: dict[str, Sample]

    def cycle(self, t: float) -> None:
        super().cycle(t)
        waiting = {job.id for q in self.queues.values() for job in q}
        asked = [
            (job_id, s)
            for job_id, s in self.samples.items()
            if s.due and s.due[0][0] <= t and job_id in waiting
        ]
        if not asked:
            return
        starts = forecast(self.snapshot(), t, plan, grace_s=self.opt.grace_s).starts
        for job_id, s in asked:
            while s.due and s.due[0][0] <= t:
                s.estimates[s.due.pop(0)[1]] = starts.get(job_id)

    def snapshot(self) -> Snapshot:
        return Snapshot(
            nodes=self.node_tuple,
            running=tuple(self.index.jobs.values()),
            queues=self.queues,
            projects=self.projects,
            usage=dict(self.usage),
            reservations=self.opt.reservations,
            config=self.policy.config,
            reclaiming=self.reclaiming,
        )


def replay(
    workload: Workload, cluster: ClusterSpec, samples: dict[str, Sample], options: SimOptions
) -> dict[str, float]:
    """Replay with probes; returns each job's first real start."""
    options = replace(options, record_starts=True)
    engine = Probe(workload, cluster, POLICIES["axcenter"], "axcenter", options, None)
    engine.samples = samples
    result = engine.run()
    first: dict[str, float] = {}
    for at, job_id, _, _ in result.starts:
        first.setdefault(job_id, at)
    return first


def errors(
    workload: Workload, cluster: ClusterSpec, every: int, options: SimOptions
) -> list[dict[str, object]]:
    interval = options.interval_s
    sampled = workload.jobs[::every]
    at_submit = {j.id: Sample(j.submit, [(j.submit, "submit")], {}) for j in sampled}
    began = time.perf_counter()
    real = replay(workload, cluster, at_submit, options)
    waited = {
        j.id: real[j.id] - j.submit
        for j in sampled
        if j.id in real and real[j.id] - j.submit > interval
    }
    later = {
        job_id: Sample(
            at_submit[job_id].submit,
            [(at_submit[job_id].submit + f * wait, f"{f:.0%} of wait") for f in LATER],
            {},
        )
        for job_id, wait in waited.items()
    }
    replay(workload, cluster, later, options)
    wall = time.perf_counter() - began
    rows: list[dict[str, object]] = []
    points = ["submit", *(f"{f:.0%} of wait" for f in LATER)]
    for point in points:
        source = at_submit if point == "submit" else later
        signed = [
            est - real[job_id]
            for job_id in waited
            if (est := source[job_id].estimates.get(point)) is not None
        ]
        absolute = sorted(abs(e) for e in signed)
        held = sum(e >= -interval for e in signed)  # started no later than said (a cycle)
        rows.append(
            {
                "point": point,
                "jobs_waited": len(waited),
                "with_estimate": round(len(signed) / len(waited), 3) if waited else None,
                "median_abs_error_s": round(statistics.median(absolute)) if absolute else None,
                "p90_abs_error_s": round(_p90(absolute)) if absolute else None,
                "median_signed_error_s": round(statistics.median(signed)) if signed else None,
                "started_by_estimate": round(held / len(signed), 3) if signed else None,
                "median_wait_s": round(statistics.median(waited.values())) if waited else None,
                "replays_wall_s": round(wall, 1),
            }
        )
    return rows


def _p90(values: list[float]) -> float:
    return values[min(len(values) - 1, int(0.9 * len(values)))]


def refresh_cost(workload: Workload, cluster: ClusterSpec, pending: int) -> dict[str, object]:
    """One forecast over ``pending`` waiting jobs on a full center."""
    rule = SimOptions().limits
    rng = random.Random(0)
    nodes = cluster.nodes()
    running = []
    for node in nodes:
        running.append(
            RunningJob(
                id=f"run-{node.id}",
                project_id=workload.jobs[0].tenant,
                user_id="u",
                started_at=0.0,
                time_limit_s=rng.randint(600, 86_400),
                allocations=(Allocation(node.id, tuple(range(node.gpu_count)), 1, 1024),),
                gpu_type=node.gpu_type,
            )
        )
    jobs = [workload.jobs[i % len(workload.jobs)] for i in range(pending)]
    waiting = [
        PendingJob(
            id=f"p{i}",
            project_id=j.tenant,
            user_id=j.user or j.tenant,
            submitted_at=float(i),
            gpus_per_node=j.gpus_per_node,
            nodes=j.nodes,
            cpus_per_node=1,
            memory_mb_per_node=1024,
            time_limit_s=rule.limit(j, 0),
            gpu_types=j.gpu_types,
        )
        for i, j in enumerate(jobs)
    ]
    projects = {
        t: QuotaNode(t, quotas={g: Quota(nominal=q) for g, q in quotas.items() if q > 0})
        for t, quotas in workload.quotas.items()
    }
    snap = Snapshot(
        nodes=nodes, running=tuple(running), queues=queues_from(waiting), projects=projects
    )
    began = time.perf_counter()
    result = forecast(snap, float(pending), plan)
    cost = time.perf_counter() - began
    return {
        "pending": pending,
        "gpus": sum(n.gpu_count for n in nodes),
        "refresh_s": round(cost, 3),
        "cycles": result.cycles,
        "estimated": len(result.starts),
        "horizon_reached": result.until >= pending + 14 * 86_400 - 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer jobs, fewer samples")
    parser.add_argument("--only", default="", help="run the cases whose name starts so")
    parser.add_argument("--jobs", type=int, default=6000, help="Philly jobs replayed")
    parser.add_argument("--every", type=int, default=20, help="sample every N-th job")
    parser.add_argument("--load", type=float, default=0.9, help="offered load of the center")
    parser.add_argument(
        "--limits",
        choices=("users", "exact"),
        default="users",
        help="users: time limits as users give them (sim.limits); exact: every limit is the "
        "job's duration (what the forecast alone gets wrong: later arrivals)",
    )
    parser.add_argument("--traces", type=Path, default=TRACES)
    args = parser.parse_args()
    jobs = 1500 if args.quick else args.jobs
    every = 10 if args.quick else args.every
    philly = args.traces / "philly-chronus-mix1" / "trace_job_Philly_MIX1.csv"
    itp = args.traces / "microsoft-itp-2021" / "cluster01.csv"
    loads: dict[str, Callable[[], Workload]] = {
        "philly": lambda: read_trace(philly, limit=jobs),
        "itp-cluster01": lambda: read_trace(itp, limit=jobs),
    }
    options = SimOptions(
        limits=LimitRule("oracle", factor=1.0) if args.limits == "exact" else LimitRule()
    )
    for name, load in loads.items():
        if not name.startswith(args.only):
            continue
        workload = load()
        cluster = assumed_cluster(workload, workload.name, args.load)
        workload = with_usage_quotas(workload, cluster)
        gpus = sum(g.gpus_per_node * g.count for g in cluster.node_groups)
        for row in errors(workload, cluster, every, options):
            head = {
                "trace": name,
                "jobs": len(workload.jobs),
                "gpus": gpus,
                "load": args.load,
                "limits": args.limits,
            }
            print(json.dumps({**head, **row}))
    if "cost".startswith(args.only):
        workload = with_usage_quotas(
            read_trace(philly, limit=20_000),
            cluster := assumed_cluster(read_trace(philly, limit=20_000), "philly"),
        )
        for pending in (1_000, 10_000):
            print(json.dumps({"case": "refresh-cost", **refresh_cost(workload, cluster, pending)}))


if __name__ == "__main__":
    main()
