"""Time one ``sched.plan()`` call on a large center.

Center: 1,250 nodes x 8 GPUs (two GPU types, racks of 25), 500 projects with quotas in
two cohorts, 10,000 running jobs (the cluster ~95% full, some projects borrowing), and
1,000 / 10,000 / 100,000 pending jobs with Slurm-like shapes (70% 1 GPU, 15% 2, 8% 4,
4% 8, 3% 2x8). Also: admitting 1,000 one-GPU jobs into an empty cluster.

Prints one JSON object per line: {"case", "pending", "median_ms", "p95_ms", ...}.
Goal (issue 3): median under 50 ms at 100,000 pending on a 2-core machine.

    .venv/bin/python benchmarks/sched_cycle.py [--repeat 20] [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from rich.progress import Progress

from axcenter.model.cluster import Allocation, Node
from axcenter.model.index import RunningIndex
from axcenter.model.plan import Plan
from axcenter.model.quota import Quota, QuotaNode
from axcenter.model.snapshot import (
    PendingJob,
    RunningJob,
    SchedulerConfig,
    Snapshot,
    queues_from,
)
from axcenter.sched import plan

NODES = 1250
GPUS = 8
TYPES = ("H100", "A100")
PROJECTS = 500
RUNNING = 10_000
NOW = 1_000_000.0


def center() -> tuple[Node, ...]:
    return tuple(
        Node(
            id=f"n{i:04d}",
            name=f"n{i:04d}",
            gpu_type=TYPES[i % 2],
            gpu_count=GPUS,
            cpus=128,
            memory_mb=1024 * 1024,
            rack=f"r{i // 25:02d}",
        )
        for i in range(NODES)
    )


def projects() -> dict[str, QuotaNode]:
    """Quotas cover 80% of the center; 20% is the root's pool anyone may borrow."""
    return {
        f"p{i:03d}": QuotaNode(
            f"p{i:03d}",
            parent="program-a" if i % 2 else "program-b",
            quotas={t: Quota(nominal=8) for t in TYPES},
            weight=1.0 + (i % 3),
        )
        for i in range(PROJECTS)
    }


def running_jobs(rng: random.Random, nodes: tuple[Node, ...]) -> tuple[RunningJob, ...]:
    """10,000 jobs: 9,500 one-GPU jobs on random free devices, 500 CPU-only."""
    free = [(n, d) for n in nodes for d in range(GPUS)]
    rng.shuffle(free)
    jobs = []
    for i in range(RUNNING):
        project = f"p{rng.randrange(PROJECTS):03d}"
        if i < 9_500:
            node, device = free.pop()
            alloc = Allocation(node.id, (device,), 1, 1024)
            gpu_type = node.gpu_type
        else:
            node = nodes[rng.randrange(NODES)]
            alloc = Allocation(node.id, (), 1, 1024)
            gpu_type = ""
        jobs.append(
            RunningJob(
                id=f"r{i:05d}",
                project_id=project,
                user_id=f"u{rng.randrange(2000)}",
                started_at=NOW - rng.uniform(0, 86400),
                time_limit_s=rng.choice([3600, 4 * 3600, 86400]) * 2,
                allocations=(alloc,),
                priority=rng.choice([0, 0, 0, 10]),
                gpu_type=gpu_type,
            )
        )
    return tuple(jobs)


def pending_jobs(rng: random.Random, count: int) -> list[PendingJob]:
    shapes = [(1, 1)] * 70 + [(2, 1)] * 15 + [(4, 1)] * 8 + [(8, 1)] * 4 + [(8, 2)] * 3
    jobs = []
    for i in range(count):
        gpus, nodes = rng.choice(shapes)
        jobs.append(
            PendingJob(
                id=f"j{i:06d}",
                project_id=f"p{rng.randrange(PROJECTS):03d}",
                user_id=f"u{rng.randrange(2000)}",
                submitted_at=NOW - rng.uniform(0, 7 * 86400),
                gpus_per_node=gpus,
                nodes=nodes,
                cpus_per_node=1,
                memory_mb_per_node=1024,
                time_limit_s=int(rng.uniform(600, 86400)),
                priority=rng.choice([0, 0, 0, 0, 0, 0, 0, 100, -100, 10]),
                gpu_types=rng.choice([(), ("H100",), ("A100",)]),
            )
        )
    return jobs


def measure(snapshot: Snapshot, repeat: int) -> tuple[list[float], list[float], Plan]:
    """Wall and CPU milliseconds of ``repeat`` calls (CPU time is less sensitive to other
    processes on a shared machine; both are reported). ``plan()`` pauses the cyclic garbage
    collector and leaves no cycles: what it leaves (its plan) is collected at the caller's
    next allocation, about 0.1 ms, not timed here."""
    wall, cpu = [], []
    result = plan(snapshot, NOW)
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        result = plan(snapshot, NOW)
        cpu.append((time.process_time() - c) * 1000)
        wall.append((time.perf_counter() - w) * 1000)
    return wall, cpu, result


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)


def report(case: str, pending: int, wall: list[float], cpu: list[float], result: Plan) -> None:
    print(
        json.dumps(
            {
                "case": case,
                "pending": pending,
                "median_ms": round(statistics.median(wall), 2),
                "p95_ms": pct(wall, 0.95),
                "cpu_median_ms": round(statistics.median(cpu), 2),
                "admitted": len(result.admissions),
                "preempted": len(result.preemptions),
                "examined": len(result.admissions) + len(result.waiting),
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 1k and 10k only")
    parser.add_argument(
        "--bf-reservations", type=int, default=None, help="backfill reservations a cycle"
    )
    args = parser.parse_args()
    rng = random.Random(42)
    config = SchedulerConfig()
    if args.bf_reservations is not None:
        config = SchedulerConfig(bf_reservations=args.bf_reservations)
    nodes = center()
    quotas = projects()
    cohorts = {c: QuotaNode(c) for c in ("program-a", "program-b")}
    running = running_jobs(rng, nodes)
    index = RunningIndex(running)  # kept incrementally by the live cache and the simulator
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    repeat = 5 if args.quick else args.repeat
    with Progress(transient=True) as progress:
        task = progress.add_task("plan()", total=len(sizes) + 1)
        for count in sizes:
            snap = Snapshot(
                nodes=nodes,
                running=running,
                index=index,
                queues=queues_from(pending_jobs(rng, count)),
                projects=quotas,
                cohorts=cohorts,
                usage={p: rng.uniform(0, 1e6) for p in quotas},
                usage_weights={"H100": 2.5, "A100": 1.0},  # usage in won (price ratio)
                config=config,
            )
            report("full center", count, *measure(snap, repeat))
            progress.advance(task)
        empty = Snapshot(
            nodes=nodes,
            running=(),
            queues=queues_from(
                PendingJob(
                    id=f"e{i:04d}",
                    project_id=f"p{i % PROJECTS:03d}",
                    user_id="u",
                    submitted_at=NOW - i,
                    gpus_per_node=1,
                    nodes=1,
                    cpus_per_node=1,
                    memory_mb_per_node=1024,
                    time_limit_s=3600,
                )
                for i in range(1000)
            ),
            projects=quotas,
            cohorts=cohorts,
            config=config,
        )
        report("admit 1000 into empty center", 1000, *measure(empty, repeat))
        progress.advance(task)


if __name__ == "__main__":
    main()
