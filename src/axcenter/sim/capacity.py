"""Capacity planning: replay one workload on the cluster plus 0, 1, ... n new nodes.

The question a center asks before a purchase is "how much shorter would the queue be,
and how busy would the new machines be": ``sweep_capacity`` answers it by replaying
the same trace under the same policy for each candidate count of added nodes, on both
cores (``run_many``), and ``plot_capacity`` draws p95 queueing delay and utilization
against the cost (or the GPUs) added. With a budget and a node price, the candidates
are 0 .. floor(budget / price) nodes in a few even steps (``budget_counts``).

``run_many`` is also what ``axc sim run`` uses to replay policies side by side: each
worker process receives the workload once (at start, not with every run) and reports
progress through a queue that the caller's thread drains.
"""

from __future__ import annotations

import html
import multiprocessing
import queue as queue_module
import re
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from axcenter.sim.cluster import ClusterSpec
from axcenter.sim.engine import SimOptions, simulate
from axcenter.sim.metrics import SimResult
from axcenter.sim.report import html_page, html_table, workload_section
from axcenter.sim.workload import Workload

__all__ = [
    "CapacityPoint",
    "Run",
    "budget_counts",
    "parse_add",
    "plot_capacity",
    "run_many",
    "sweep_capacity",
    "write_capacity_report",
]

#: ``progress(run index, fraction of its jobs done)``
RunProgress = Callable[[int, float], None]


@dataclass(frozen=True)
class Run:
    """One replay of the shared workload."""

    cluster: ClusterSpec
    policy: str
    options: SimOptions


@dataclass(frozen=True)
class CapacityPoint:
    added_nodes: int
    added_gpus: int
    cost_won: int | None  # purchase price of the added nodes; None: no price given
    p95_wait_s: float
    mean_wait_s: float
    mean_jct_s: float
    utilization: float
    unfinished: int


# -- parallel replays ----------------------------------------------------------------------

_worker_workload: Workload | None = None
_worker_queue: Any = None


def _init_worker(workload: Workload, progress_queue: Any) -> None:
    global _worker_workload, _worker_queue
    _worker_workload, _worker_queue = workload, progress_queue


def _run_in_worker(index: int, run: Run) -> SimResult:
    assert _worker_workload is not None, "worker not initialised"
    progress_queue = _worker_queue

    def report(fraction: float) -> None:
        progress_queue.put((index, fraction))

    return simulate(_worker_workload, run.cluster, run.policy, run.options, progress=report)


def run_many(
    workload: Workload,
    runs: Sequence[Run],
    *,
    workers: int = 2,
    progress: RunProgress | None = None,
) -> list[SimResult]:
    """Replay ``runs`` (in worker processes when ``workers`` > 1); results in run order.

    Progress callbacks run in the calling thread. With one worker (or one run) the
    replay runs in this process, which is what tests and profilers want.
    """
    if workers <= 1 or len(runs) <= 1:
        results = []
        for i, run in enumerate(runs):

            def report(fraction: float, i: int = i) -> None:
                if progress is not None:
                    progress(i, fraction)

            results.append(simulate(workload, run.cluster, run.policy, run.options, report))
        return results
    context = multiprocessing.get_context()
    updates = context.Queue()
    with ProcessPoolExecutor(
        max_workers=min(workers, len(runs)),
        mp_context=context,
        initializer=_init_worker,
        initargs=(workload, updates),
    ) as pool:
        futures: list[Future[SimResult]] = [
            pool.submit(_run_in_worker, i, run) for i, run in enumerate(runs)
        ]
        pending: set[Future[SimResult]] = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            _drain(updates, progress)
        results = [f.result() for f in futures]
    _drain(updates, progress)
    return results


def _drain(updates: Any, progress: RunProgress | None) -> None:
    while True:
        try:
            index, fraction = updates.get_nowait()
        except queue_module.Empty:
            return
        if progress is not None:
            progress(index, fraction)


# -- the sweep -----------------------------------------------------------------------------


_ADD = re.compile(
    r"^(?P<type>[A-Za-z0-9][A-Za-z0-9._-]*?)x(?P<per>\d+)(?::(?P<lo>\d+)\.\.(?P<hi>\d+))?$"
)


def parse_add(
    add: str, step: int = 1, budget_won: int | None = None, node_price_won: int | None = None
) -> tuple[str, int, list[int]]:
    """``H100x8:0..16`` and step 4 -> ``("H100", 8, [0, 4, 8, 12, 16])`` (the end is always
    tried); with a budget, ``H100x8`` and the counts of ``budget_counts``."""
    match = _ADD.match(add.strip())
    if match is None:
        raise ValueError(f"--add {add!r}: use TYPExGPUS:FROM..TO, e.g. H100x8:0..16")
    gpu_type, per = match["type"], int(match["per"])
    if budget_won is not None:
        if node_price_won is None:
            raise ValueError("--budget needs --node-price")
        return gpu_type, per, budget_counts(budget_won, node_price_won)
    if match["lo"] is None:
        raise ValueError(f"--add {add!r}: give a range (H100x8:0..16) or --budget")
    low, high = int(match["lo"]), int(match["hi"])
    if high < low or step < 1:
        raise ValueError(f"--add {add!r}: the range ends before it starts")
    counts = list(range(low, high + 1, step))
    if counts[-1] != high:
        counts.append(high)
    return gpu_type, per, counts


def budget_counts(budget_won: int, node_price_won: int, steps: int = 5) -> list[int]:
    """Node counts 0 .. floor(budget / price) in ``steps`` even steps (duplicates merged)."""
    if node_price_won <= 0:
        raise ValueError("the node price must be positive")
    if budget_won < 0:
        raise ValueError("the budget must not be negative")
    most = budget_won // node_price_won
    counts = np.linspace(0, most, max(2, steps)).round().astype(int)
    return sorted({int(c) for c in counts})


def sweep_capacity(
    workload: Workload,
    cluster: ClusterSpec,
    gpu_type: str,
    gpus_per_node: int,
    counts: Sequence[int],
    policy: str,
    options: SimOptions,
    workers: int = 2,
    *,
    node_price_won: int | None = None,
    progress: RunProgress | None = None,
) -> tuple[list[CapacityPoint], list[SimResult]]:
    """One replay per count of added ``gpu_type`` nodes of ``gpus_per_node`` GPUs.

    Returns the points (in ``counts`` order) and the raw results behind them.
    """
    if any(c < 0 for c in counts):
        raise ValueError("node counts must not be negative")
    runs = [Run(cluster.with_added(gpu_type, gpus_per_node, c), policy, options) for c in counts]
    results = run_many(workload, runs, workers=workers, progress=progress)
    points = []
    for count, result in zip(counts, results, strict=True):
        summary = result.summary()
        points.append(
            CapacityPoint(
                added_nodes=count,
                added_gpus=count * gpus_per_node,
                cost_won=None if node_price_won is None else count * node_price_won,
                p95_wait_s=summary["queueing_delay_s"]["p95"],
                mean_wait_s=summary["queueing_delay_s"]["mean"],
                mean_jct_s=summary["jct_s"]["mean"],
                utilization=summary["utilization"],
                unfinished=summary["unfinished"] + summary["rejected"],
            )
        )
    return points, results


def plot_capacity(points: Sequence[CapacityPoint], out_dir: Path) -> Path:
    """``capacity.png``: p95 queueing delay and utilization against cost (or GPUs) added."""
    out_dir.mkdir(parents=True, exist_ok=True)
    priced = all(p.cost_won is not None for p in points)
    x = [
        (p.cost_won or 0) / 1e8 if priced else p.added_gpus  # 1e8 won = 1 eok
        for p in points
    ]
    from matplotlib.figure import Figure  # noqa: PLC0415 (slow import: only when plotting)

    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(x, [p.p95_wait_s / 3600 for p in points], "o-", color="tab:red", label="p95 wait")
    ax.set_xlabel("cost of the added nodes (100 million won)" if priced else "GPUs added")
    ax.set_ylabel("p95 queueing delay (h)", color="tab:red")
    ax.grid(True, alpha=0.3)
    twin = ax.twinx()
    twin.plot(
        x, [p.utilization * 100 for p in points], "s--", color="tab:blue", label="utilization"
    )
    twin.set_ylabel("utilization (%)", color="tab:blue")
    twin.set_ylim(0, 105)
    ax.set_title("Queueing delay and utilization against added capacity")
    path = out_dir / "capacity.png"
    fig.savefig(path, dpi=100)
    return path


def capacity_rows(points: Sequence[CapacityPoint]) -> list[list[Any]]:
    """Table rows, shared by the CLI and the report."""
    return [
        [
            p.added_nodes,
            p.added_gpus,
            "-" if p.cost_won is None else p.cost_won,
            p.p95_wait_s / 3600,
            p.mean_wait_s / 3600,
            p.mean_jct_s / 3600,
            p.utilization,
            p.unfinished,
        ]
        for p in points
    ]


CAPACITY_HEADINGS = (
    "added nodes",
    "added GPUs",
    "cost (won)",
    "p95 wait (h)",
    "mean wait (h)",
    "mean JCT (h)",
    "utilization",
    "unfinished",
)


def write_capacity_report(
    points: Sequence[CapacityPoint],
    workload: Workload,
    cluster: ClusterSpec,
    description: str,
    command_line: str,
    out_dir: Path,
) -> Path:
    """``out_dir/index.html`` with the sweep's table and chart; returns its path."""
    chart = plot_capacity(points, out_dir)
    sections = [
        workload_section(workload, cluster),
        f"<h2>Capacity sweep</h2><p>{html.escape(description)}</p>",
        html_table(CAPACITY_HEADINGS, capacity_rows(points)),
        f"<img src='{chart.name}' alt='capacity'>",
        "<p>Read it as: the p95 wait falls as nodes are added while utilization drops; "
        "a purchase is worth it up to where the wait stops falling much.</p>",
    ]
    page = out_dir / "index.html"
    page.write_text(html_page("axcenter capacity plan", command_line, sections), "utf-8")
    return page
