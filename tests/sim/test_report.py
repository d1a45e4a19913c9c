"""Reports and capacity planning on a tiny workload replayed for real."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from axcenter.sim.capacity import (
    CapacityPoint,
    Run,
    budget_counts,
    plot_capacity,
    run_many,
    sweep_capacity,
    write_capacity_report,
)
from axcenter.sim.cluster import ClusterSpec, NodeGroup
from axcenter.sim.engine import SimOptions, simulate
from axcenter.sim.quotas import with_usage_quotas
from axcenter.sim.report import binned_utilization, write_report
from axcenter.sim.workload import TraceJob, Workload

PNG = b"\x89PNG"


def tiny() -> tuple[Workload, ClusterSpec]:
    cluster = ClusterSpec(
        name="tiny",
        node_groups=[NodeGroup(name="h", gpu_type="H100", gpus_per_node=4, count=2)],
        prices={"H100": 6500},
    )
    jobs = [
        TraceJob(f"j{i}", i * 100.0, 600.0 + 50 * (i % 4), 1 + (i % 4), tenant=f"t{i % 3}")
        for i in range(30)
    ]
    workload = Workload("tiny-trace", jobs, notes=("tenant = i mod 3 <rule>",))
    return with_usage_quotas(workload, cluster), cluster


def test_write_report(tmp_path: Path) -> None:
    workload, cluster = tiny()
    results = [simulate(workload, cluster, p, SimOptions(interval_s=10)) for p in ("fifo", "sjf")]
    command = "axc sim run trace.csv --cluster c.yaml --policy fifo --policy sjf"
    page = write_report(results, workload, cluster, command, tmp_path / "out")
    text = page.read_text()
    assert page == tmp_path / "out" / "index.html"
    assert text.index(command) < text.index("Policies compared")
    assert "tenant = i mod 3 &lt;rule&gt;" in text  # notes shown, escaped
    assert "quotas from usage" in text
    assert "<td>fifo</td>" in text and "<td>sjf</td>" in text
    for chart in ("cdf_jct", "cdf_queueing", "utilization", "tenant_share"):
        png = tmp_path / "out" / f"{chart}.png"
        assert png.read_bytes()[:4] == PNG
        assert f"src='{chart}.png'" in text
    with pytest.raises(ValueError, match="no results"):
        write_report([], workload, cluster, command, tmp_path / "none")


def test_binned_utilization_is_the_exact_average() -> None:
    workload, cluster = tiny()
    result = simulate(workload, cluster, "fifo", SimOptions(interval_s=10))
    centres, util = binned_utilization(result, bins=1)
    assert centres.size == 1
    assert util[0] == pytest.approx(result.utilization())
    _, many = binned_utilization(result, bins=50)
    assert np.all((many >= 0) & (many <= 1))


def test_run_many_in_two_processes_matches_in_process() -> None:
    workload, cluster = tiny()
    runs = [Run(cluster, p, SimOptions(interval_s=10)) for p in ("fifo", "axcenter")]
    seen: list[tuple[int, float]] = []
    parallel = run_many(workload, runs, workers=2, progress=lambda i, f: seen.append((i, f)))
    serial = run_many(workload, runs, workers=1)
    for a, b in zip(parallel, serial, strict=True):
        sa, sb = a.summary(), b.summary()
        sa.pop("wall_s"), sb.pop("wall_s")
        assert sa == sb
    assert {(i, f) for i, f in seen if f == 1.0} == {(0, 1.0), (1, 1.0)}


def test_budget_counts() -> None:
    assert budget_counts(5_000_000_000, 600_000_000) == [0, 2, 4, 6, 8]
    assert budget_counts(1_000, 600) == [0, 1]
    assert budget_counts(100, 600) == [0]
    with pytest.raises(ValueError):
        budget_counts(100, 0)


def test_capacity_sweep_and_report(tmp_path: Path) -> None:
    workload, cluster = tiny()
    points, results = sweep_capacity(
        workload,
        cluster,
        "H100",
        4,
        [0, 1, 4],
        "fifo",
        SimOptions(interval_s=10),
        workers=1,
        node_price_won=300_000_000,
    )
    assert [p.added_nodes for p in points] == [0, 1, 4]
    assert [p.added_gpus for p in points] == [0, 4, 16]
    assert [p.cost_won for p in points] == [0, 300_000_000, 1_200_000_000]
    assert len(results) == 3
    # more GPUs: never a longer tail wait, never a higher utilization
    waits = [p.p95_wait_s for p in points]
    assert waits == sorted(waits, reverse=True)
    assert points[0].utilization >= points[-1].utilization
    page = write_capacity_report(points, workload, cluster, "adding <H100>", "axc sim x", tmp_path)
    assert "axc sim x" in page.read_text() and "&lt;H100&gt;" in page.read_text()
    assert (tmp_path / "capacity.png").read_bytes()[:4] == PNG


def test_plot_capacity_without_prices(tmp_path: Path) -> None:
    points = [
        CapacityPoint(n, n * 8, None, 3600.0 / (n + 1), 60.0, 7200.0, 0.9 - 0.1 * n, 0)
        for n in range(3)
    ]
    assert plot_capacity(points, tmp_path / "p").read_bytes()[:4] == PNG
