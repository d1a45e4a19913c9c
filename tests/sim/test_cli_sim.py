"""``axc sim`` end to end through Typer's CliRunner on small traces and a tiny cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from axcenter.cli import main
from axcenter.sim.capacity import parse_add
from axcenter.sim.cluster import ClusterSpec
from axcenter.sim.traces import read_trace
from axcenter.sim.traces.native import write_native
from axcenter.sim.workload import TraceJob, Workload

CLUSTER = """
name: tiny
node_groups:
  - {name: a, gpu_type: A100, gpus_per_node: 8, count: 2}
  - {name: h, gpu_type: H100, gpus_per_node: 8, count: 1}
prices: {A100: 3800, H100: 6500}
"""


def axc(*args: str) -> Result:
    return CliRunner().invoke(main.app, list(args), env={"COLUMNS": "200"})


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    jobs = [
        TraceJob(
            f"j{i}",
            i * 60.0,
            900.0 + 300 * (i % 5),
            (1, 2, 4, 8)[i % 4],
            nodes=2 if i % 17 == 0 else 1,
            tenant=("vision", "nlp", "bio")[i % 3],
            priority=-1 if i % 4 == 0 else 0,
        )
        for i in range(80)
    ]
    return write_native(Workload("t", jobs), tmp_path / "trace.csv")


@pytest.fixture
def cluster(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(CLUSTER)
    return path


def test_run_two_policies_with_report(trace: Path, cluster: Path, tmp_path: Path) -> None:
    report = tmp_path / "report"
    result = axc(
        "sim", "run", str(trace), "--cluster", str(cluster),
        "--policy", "fifo", "--policy", "axcenter", "--report", str(report), "--workers", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith("$ axc sim run ") and "--policy fifo --policy axcenter" in first
    assert "--interval 30.0 --seed 0" in first
    assert "policies compared" in result.stdout
    assert "fifo" in result.stdout and "axcenter" in result.stdout
    assert "quotas from usage" in result.stdout
    assert "--limits buckets --ask-max 0.3" in first
    assert "time limits as users give them" in result.stdout
    page = (report / "index.html").read_text()
    assert first.removeprefix("$ ") in page
    assert len(list(report.glob("*.png"))) == 4


def test_run_json_is_reproducible(trace: Path, cluster: Path) -> None:
    args = ("sim", "run", str(trace), "-c", str(cluster), "-p", "sjf", "--json", "--workers", "1")
    one, two = axc(*args), axc(*args)
    assert one.exit_code == 0, one.output
    a, b = json.loads(one.stdout), json.loads(two.stdout)
    assert a["command"].startswith("axc sim run")
    [summary] = a["summaries"]
    assert summary["policy"] == "sjf" and summary["jobs"] == 80
    summary.pop("wall_s"), b["summaries"][0].pop("wall_s")
    assert summary == b["summaries"][0]


def test_run_synthetic_jobs(trace: Path, cluster: Path) -> None:
    result = axc(
        "sim", "run", str(trace), "-c", str(cluster), "-p", "fifo", "--jobs", "200",
        "--seed", "4", "--rate-scale", "2", "--workers", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "200 jobs" in result.stdout and "--jobs 200" in result.stdout


def test_capacity_three_points(trace: Path, cluster: Path, tmp_path: Path) -> None:
    result = axc(
        "sim", "capacity", str(trace), "-c", str(cluster), "--add", "H100x8:0..2",
        "--node-price", "600000000", "--report", str(tmp_path / "cap"), "--workers", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "adding H100x8 nodes" in result.stdout
    assert "1,200,000,000" in result.stdout  # cost of 2 nodes
    assert (tmp_path / "cap" / "capacity.png").is_file()
    assert "axc sim capacity" in (tmp_path / "cap" / "index.html").read_text()
    budget = axc(
        "sim", "capacity", str(trace), "-c", str(cluster), "--add", "H100x8",
        "--budget", "1800000000", "--node-price", "600000000", "--workers", "1",
    )  # fmt: skip
    assert budget.exit_code == 0, budget.output
    assert "+3 H100x8" in budget.output


def test_parse_add() -> None:
    assert parse_add("H100x8:0..16", 4) == ("H100", 8, [0, 4, 8, 12, 16])
    assert parse_add("V100M16x4:1..6", 2) == ("V100M16", 4, [1, 3, 5, 6])
    assert parse_add("gpu-x-1x2:0..0") == ("gpu-x-1", 2, [0])


def test_synth_command(trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "synth.parquet"
    result = axc("sim", "synth", "--from", str(trace), "--jobs", "300", "--seed", "2",
                 "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    w = read_trace(out)
    assert len(w.jobs) == 300
    assert set(w.tenants) <= {"vision", "nlp", "bio"}


def test_cluster_command_for_openb(tmp_path: Path) -> None:
    (tmp_path / "openb_node_list_gpu_node.csv").write_text(
        "sn,cpu_milli,memory_mib,gpu,model\n"
        "n0,64000,262144,2,P100\nn1,64000,262144,2,P100\nn2,96000,393216,8,G2\n"
    )
    (tmp_path / "openb_pod_list_default.csv").write_text(
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
        "creation_time,deletion_time,scheduled_time\np0,1,1,1,1000,,LS,Running,0,10,0\n"
    )
    result = axc("sim", "cluster", str(tmp_path))
    assert result.exit_code == 0, result.output
    spec = ClusterSpec.model_validate(yaml.safe_load(result.stdout))
    assert spec.gpus_by_type() == {"P100": 4, "G2": 8}
    scaled = axc("sim", "cluster", str(tmp_path), "--scale", "3")
    assert ClusterSpec.model_validate(yaml.safe_load(scaled.stdout)).gpus == 36


def test_cluster_command_for_a_fleet_and_without_a_node_list(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    (fleet / "node_info_df.csv").write_text(
        "gpu_model,gpu_capacity_num,cpu_num,node_name\nA10,1,128,0\nH800,8,192,1\nH800,8,192,2\n"
    )
    result = axc("sim", "cluster", str(fleet))
    assert result.exit_code == 0, result.output
    assert ClusterSpec.model_validate(yaml.safe_load(result.stdout)).gpus_by_type() == {
        "A10": 1,
        "H800": 16,
    }
    bare = axc("sim", "cluster", str(tmp_path))
    assert bare.exit_code == 2 and "no node list here" in bare.output
    assert "--cluster" not in bare.output  # sim cluster has no such option


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sim", "run", "nowhere.csv", "-c", "{cluster}"], "nowhere.csv: no such file"),
        (["sim", "run", "{trace}", "-c", "missing.yaml"], "missing.yaml: no such cluster file"),
        (["sim", "run", "{trace}", "-c", "{bad}"], "node_groups.0.count"),
        (["sim", "run", "{trace}", "-c", "{cluster}", "-p", "lifo"], "unknown policy 'lifo'"),
        (["sim", "run", "{trace}"], "--cluster is required"),
        (["sim", "run", "{trace}", "-c", "{cluster}", "--limits", "exact"], "unknown --limits"),
        (["sim", "capacity", "{trace}", "-c", "{cluster}", "--add", "H100"], "TYPExGPUS"),
        (
            ["sim", "capacity", "{trace}", "-c", "{cluster}", "--add", "H100x8", "--budget", "5"],
            "--budget needs --node-price",
        ),
    ],
)
def test_errors_are_one_line(
    args: list[str], message: str, trace: Path, cluster: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(CLUSTER.replace("count: 2", "count: -1"))
    paths = {"trace": str(trace), "cluster": str(cluster), "bad": str(bad)}
    result = axc(*(a.format(**paths) for a in args))
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and message in result.output
    assert "Traceback" not in result.output
