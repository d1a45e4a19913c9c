"""Time replays of the shared traces, and of a synthetic 1,000,000-job trace.

Cases (``--only`` picks by name prefix):

- ``openb-default``, ``openb-gpuspec33``: Alibaba OpenB pods on OpenB's own GPU node list
  (12 node groups, 1,213 nodes, 6,212 GPUs).
- ``itp-cluster01`` ... ``itp-cluster10`` and ``itp-all`` (merged, one tenant per file),
  ``philly``: these traces publish no cluster, so each replays on an *assumed* one:
  8-GPU nodes of one type ``GPU``, as many as make the trace's offered load (its
  GPU-seconds over its arrival window) 70% of the GPUs, and at least enough for its
  largest job. The replay states the assumed size (``gpus`` in the output).
- ``synth-1m``: 1,000,000 jobs drawn (seed 0) from the Philly trace's distributions,
  arriving ``--synth-scale`` (default 10) times as fast, on Philly's assumed center
  scaled up by the same factor, so the load stays near 70%.

Every case uses the default policy ``axcenter`` (``--policy`` to change it) with quotas
from usage (80% guaranteed, ``sim.quotas``), ``SimOptions()`` defaults otherwise.

Prints one JSON object per line: ``{"trace", "jobs", "wall_s", "events_per_s", ...}``
(``wall_s``: the replay itself; ``read_s``: reading or generating the trace). A Rich
progress bar goes to stderr. Goal: ``synth-1m`` under 120 s.

    .venv/bin/python benchmarks/sim_replay.py [--quick] [--only synth] [--synth-jobs N]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from axcenter.sim.cluster import ClusterSpec, NodeGroup
from axcenter.sim.engine import SimOptions, simulate
from axcenter.sim.quotas import with_usage_quotas
from axcenter.sim.synth import scale_cluster, synthesize
from axcenter.sim.traces import openb_cluster, read_trace
from axcenter.sim.workload import Workload

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
LOAD = 0.7
GPUS_PER_NODE = 8
QUICK_JOBS = 300
QUICK_SYNTH_JOBS = 5_000
#: with --quick, only these ITP cluster files (plus the merged slice)
QUICK_ITP = ("cluster01",)


@dataclass
class Case:
    name: str
    load: Callable[[], tuple[Workload, ClusterSpec]]


def assumed_cluster(workload: Workload, name: str, load: float = LOAD) -> ClusterSpec:
    """8-GPU nodes enough for ``load`` utilization of the offered load (see module doc)."""
    jobs = workload.jobs
    window = max(jobs[-1].submit - jobs[0].submit, 1.0)
    offered = sum(j.gpus * j.duration for j in jobs) / window
    nodes = max(math.ceil(offered / load / GPUS_PER_NODE), *(j.nodes for j in jobs))
    group = NodeGroup(name="gpu", gpu_type="GPU", gpus_per_node=GPUS_PER_NODE, count=nodes)
    return ClusterSpec(name=f"{name}-assumed", node_groups=[group])


def cases(traces: Path, quick: bool, synth_jobs: int, synth_scale: float) -> Iterator[Case]:
    limit = QUICK_JOBS if quick else None
    openb = traces / "alibaba-openb-2023"
    for variant in ("default", "gpuspec33"):
        path = openb / f"openb_pod_list_{variant}.csv"
        yield Case(
            f"openb-{variant}",
            lambda path=path: (read_trace(path, limit=limit), openb_cluster(path)),
        )
    itp = traces / "microsoft-itp-2021"
    for path in sorted(itp.glob("cluster*.csv")):
        if quick and path.stem not in QUICK_ITP:
            continue
        yield Case(f"itp-{path.stem}", lambda path=path: _assumed(path, limit))
    yield Case("itp-all", lambda: _assumed(itp, limit))
    philly = traces / "philly-chronus-mix1" / "trace_job_Philly_MIX1.csv"
    yield Case("philly", lambda: _assumed(philly, limit))
    jobs = QUICK_SYNTH_JOBS if quick else synth_jobs

    def synthetic() -> tuple[Workload, ClusterSpec]:
        base = read_trace(philly)
        center = scale_cluster(assumed_cluster(base, "philly"), synth_scale)
        return synthesize(base, jobs, seed=0, rate_scale=synth_scale), center

    yield Case("synth-1m" if jobs == 1_000_000 else f"synth-{jobs}", synthetic)


def _assumed(path: Path, limit: int | None) -> tuple[Workload, ClusterSpec]:
    workload = read_trace(path, limit=limit)
    return workload, assumed_cluster(workload, workload.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small slices of every trace")
    parser.add_argument("--only", default="", help="run the cases whose name starts so")
    parser.add_argument("--policy", default="axcenter")
    parser.add_argument("--synth-jobs", type=int, default=1_000_000)
    parser.add_argument("--synth-scale", type=float, default=10.0)
    parser.add_argument("--traces", type=Path, default=TRACES)
    args = parser.parse_args()
    chosen = [
        c
        for c in cases(args.traces, args.quick, args.synth_jobs, args.synth_scale)
        if c.name.startswith(args.only)
    ]
    progress = Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    with progress:
        for case in chosen:
            task = progress.add_task(case.name, total=1.0)
            began = time.perf_counter()
            workload, cluster = case.load()
            workload = with_usage_quotas(workload, cluster)
            read_s = time.perf_counter() - began
            result = simulate(
                workload,
                cluster,
                args.policy,
                SimOptions(),
                progress=lambda f, task=task: progress.update(task, completed=f),
            )
            summary = result.summary()
            line = {
                "trace": case.name,
                "jobs": len(workload.jobs),
                "wall_s": round(result.wall_s, 3),
                "events_per_s": round(result.events / max(result.wall_s, 1e-9)),
                "read_s": round(read_s, 3),
                "events": result.events,
                "cycles": result.cycles,
                "policy": args.policy,
                "gpus": cluster.gpus,
                "utilization": round(summary["utilization"], 4),
                "unfinished": summary["unfinished"],
                "rejected": summary["rejected"],
            }
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
