"""The native format: write then read gives the same jobs, in CSV and in Parquet."""

from __future__ import annotations

from pathlib import Path

import pytest

from axcenter.sim.traces import TraceError, read_trace
from axcenter.sim.traces.history import read_history
from axcenter.sim.traces.native import COLUMNS, read_native, write_native
from axcenter.sim.workload import TraceJob, Workload

JOBS = [
    TraceJob("a", 0.0, 30.5, 1, tenant="t1", user="ann", status="completed"),
    TraceJob(
        "b",
        2.25,
        3600.0,
        8,
        nodes=4,
        gpu_types=("A100", "H100"),
        user="bob",
        tenant="t2",
        status="failed",
        time_limit=7200.0,
        priority=-1,
        cpus_per_node=16,
        memory_mb_per_node=65536,
    ),
    TraceJob("17", 10.0, 1.0, 0, tenant="t1", user="", status="unknown", priority=3),
]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    path = write_native(Workload("w", JOBS), tmp_path / f"jobs{suffix}")
    back = read_native(path)
    assert list(back.jobs) == JOBS
    assert back.name == "jobs"
    assert list(read_trace(path).jobs) == JOBS
    assert list(read_trace(f"native:{path}").jobs) == JOBS
    assert list(read_history(path).jobs) == JOBS


def test_csv_header_is_the_documented_one(tmp_path: Path) -> None:
    path = write_native(JOBS, tmp_path / "jobs.csv")
    header = path.read_text().splitlines()[0].split(",")
    assert tuple(header[: len(COLUMNS)]) == COLUMNS
    assert "A100|H100" in path.read_text()


def test_optional_columns_default_and_bad_rows_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "min.csv"
    path.write_text("id,submit,duration,gpus_per_node,gpu_types\nx,5,10,2,\ny,1,0,1,T4\nz,,3,1,\n")
    w = read_native(path)
    [job] = w.jobs
    assert job == TraceJob("x", 5.0, 10.0, 2, status="unknown")
    assert any(n.startswith("2 rows without") for n in w.notes)


def test_missing_required_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,submit,gpus_per_node\nx,1,1\n")
    with pytest.raises(TraceError, match="missing column"):
        read_native(path)
    with pytest.raises(TraceError, match="no such file"):
        read_native(tmp_path / "nothing.parquet")
