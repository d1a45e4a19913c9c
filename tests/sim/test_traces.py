"""Trace readers on slices of the shared traces (copied to tmp_path) and on tiny hand-made
files whose every rule (rounding, types, drops, tenants, multi-node splits) is visible."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from axcenter.sim.traces import TraceError, detect_format, openb_cluster, read_trace
from axcenter.sim.traces.itp import read_itp
from axcenter.sim.traces.native import split_gpus
from axcenter.sim.traces.openb import read_openb
from axcenter.sim.traces.philly import read_philly

SHARED = Path(__file__).resolve().parents[3] / "shared" / "traces"
OPENB = SHARED / "alibaba-openb-2023"
ITP = SHARED / "microsoft-itp-2021"
PHILLY = SHARED / "philly-chronus-mix1" / "trace_job_Philly_MIX1.csv"

needs_traces = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/traces not present")


def head(src: Path, dest_dir: Path, rows: int = 200) -> Path:
    """The header and first ``rows`` rows of ``src`` in ``dest_dir`` (same file name)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / src.name
    with src.open() as f, dest.open("w") as out:
        for i, line in enumerate(f):
            if i > rows:
                break
            out.write(line)
    return dest


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def write_csv(path: Path, header: str, *lines: str) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def note(notes: tuple[str, ...], text: str) -> str:
    [found] = [n for n in notes if text in n]
    return found


# -- OpenB -------------------------------------------------------------------------------


@needs_traces
@pytest.mark.parametrize("variant", ["default", "gpuspec33"])
def test_openb_slice_follows_the_rules(tmp_path: Path, variant: str) -> None:
    path = head(OPENB / f"openb_pod_list_{variant}.csv", tmp_path, 300)
    raw = rows_of(path)
    w = read_trace(path)
    assert w.name == f"openb-{variant}"
    kept = [
        r
        for r in raw
        if r["scheduled_time"]
        and int(r["deletion_time"]) > int(r["scheduled_time"])
        and int(r["num_gpu"]) > 0
    ]
    assert len(w.jobs) == len(kept)
    by_id = {j.id: j for j in w.jobs}
    origin = min(int(r["creation_time"]) for r in kept)
    for r in kept:
        j = by_id[r["name"]]
        assert j.duration == int(r["deletion_time"]) - int(r["scheduled_time"])
        assert j.submit == int(r["creation_time"]) - origin
        assert j.gpus_per_node == int(r["num_gpu"]) and j.nodes == 1
        assert j.gpu_types == tuple(sorted({t for t in r["gpu_spec"].split("|") if t}))
        assert j.tenant == r["qos"]
        assert j.priority == (-1 if r["qos"] == "BE" else 0)
    fractional = sum(1 for r in kept if int(r["gpu_milli"]) < 1000)
    assert note(w.notes, "fractional").startswith(f"{fractional} fractional-GPU pods")
    unscheduled = sum(1 for r in raw if not r["scheduled_time"])
    assert note(w.notes, "never scheduled").startswith(f"{unscheduled} pods")
    cpu_only = sum(1 for r in raw if r["scheduled_time"] and r["num_gpu"] == "0")
    assert note(w.notes, "CPU-only").startswith(f"{cpu_only} CPU-only")
    assert min(j.submit for j in w.jobs) == 0
    assert [j.submit for j in w.jobs] == sorted(j.submit for j in w.jobs)
    assert set(w.tenants) <= {"LS", "BE", "Burstable", "Guaranteed"}


def test_openb_handmade_rules(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "openb_pod_list_x.csv",
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
        "creation_time,deletion_time,scheduled_time",
        "p0,1000,1024,1,460,V100M16|V100M32|V100M32,LS,Succeeded,100,500,110",
        "p1,1000,1024,8,1000,,BE,Failed,200,900,250",
        "p2,1000,1024,1,1000,,LS,Pending,300,1000,",
        "p3,1000,1024,0,0,,LS,Running,300,1000,300",
        "p4,1000,1024,2,1000,T4,Burstable,Running,400,2000,400",
    )
    w = read_openb(path)
    assert [j.id for j in w.jobs] == ["p0", "p1", "p4"]
    p0, p1, p4 = w.jobs
    assert (p0.submit, p0.duration, p0.gpus_per_node) == (0, 390, 1)
    assert p0.gpu_types == ("V100M16", "V100M32")  # duplicate removed
    assert (p0.status, p1.status, p4.status) == ("completed", "failed", "unknown")
    assert (p1.tenant, p1.priority, p1.gpu_types) == ("BE", -1, ())
    assert p4.gpu_types == ("T4",)
    assert note(w.notes, "fractional").startswith("1 fractional")
    assert note(w.notes, "never scheduled").startswith("1 pods")
    assert note(w.notes, "CPU-only").startswith("1 CPU-only")


@needs_traces
def test_openb_cluster_from_the_node_list(tmp_path: Path) -> None:
    shutil.copy(OPENB / "openb_node_list_gpu_node.csv", tmp_path)
    pods = head(OPENB / "openb_pod_list_default.csv", tmp_path, 50)
    spec = openb_cluster(pods)
    assert spec == openb_cluster(tmp_path)
    raw = rows_of(tmp_path / "openb_node_list_gpu_node.csv")
    assert sum(g.count for g in spec.node_groups) == len(raw)
    assert spec.gpus == sum(int(r["gpu"]) for r in raw)
    shapes = {(g.gpu_type, g.gpus_per_node) for g in spec.node_groups}
    assert shapes == {(r["model"], int(r["gpu"])) for r in raw}
    assert len(shapes) == len(spec.node_groups)  # one group per (model, GPUs per node)
    g2 = next(g for g in spec.node_groups if g.gpu_type == "G2")
    assert (g2.gpus_per_node, g2.count) == (8, 549)
    with pytest.raises(TraceError, match=r"no openb_node_list_gpu_node\.csv"):
        openb_cluster(tmp_path / "elsewhere" / "x.csv")


@needs_traces
def test_fleet_cluster_from_the_gfs_node_list(tmp_path: Path) -> None:
    from axcenter.sim.traces import node_list_cluster
    from axcenter.sim.traces.fleet import fleet_cluster

    spec = fleet_cluster(SHARED / "alibaba-gfs-2026")
    assert node_list_cluster(SHARED / "alibaba-gfs-2026") == spec
    assert sum(g.count for g in spec.node_groups) == 4_278  # SOURCES.md's figures
    assert spec.gpus == 10_412
    by_type = spec.gpus_by_type()
    assert by_type["A100-SXM4-80GB"] == 3_456 and by_type["A10"] == 2_494
    a100 = next(g for g in spec.node_groups if g.gpu_type == "A100-SXM4-80GB")
    assert (a100.gpus_per_node, a100.count) == (8, 432)
    (tmp_path / "node_info_df.csv").write_text("gpu_model,gpu_capacity_num,cpu_num,node_name\n")
    with pytest.raises(TraceError, match="no GPU nodes"):
        fleet_cluster(tmp_path)
    assert node_list_cluster(tmp_path / "nothing-here") is None


# -- ITP ---------------------------------------------------------------------------------


def test_split_gpus() -> None:
    per, nodes, uneven = split_gpus(np.array([1, 2, 8, 16, 64, 12, 20, 0]))
    assert per.tolist() == [1, 2, 8, 8, 8, 6, 5, 0]
    assert nodes.tolist() == [1, 1, 1, 2, 8, 2, 4, 1]
    assert uneven == 2


@needs_traces
def test_itp_single_file_seeded_tenants_and_multi_node(tmp_path: Path) -> None:
    path = head(ITP / "cluster03.csv", tmp_path)
    raw = rows_of(path)
    w = read_trace(path, seed=1)
    assert w.name == "itp-cluster03" and len(w.jobs) == len(raw)
    assert set(w.tenants) <= {f"t{i}" for i in range(8)}
    assert "seeded draw (seed 1)" in note(w.notes, "no tenants")
    by_id = {j.id: j for j in w.jobs}
    big = 0
    for r in raw:
        j, g = by_id[r["job_id"]], int(r["num_gpu"])
        assert j.gpus == g and j.duration == float(r["duration"]) and j.gpu_types == ()
        if g > 8:
            big += 1
            assert (j.gpus_per_node, j.nodes) == (8, g // 8)
        else:
            assert j.nodes == 1
    assert big > 0
    assert note(w.notes, "span 8-GPU nodes").startswith(f"{big} jobs")
    again = read_trace(path, seed=1)
    assert [j.tenant for j in again.jobs] == [j.tenant for j in w.jobs]
    other = read_trace(path, seed=2)
    assert [j.tenant for j in other.jobs] != [j.tenant for j in w.jobs]
    assert len(read_itp(path, tenants=3).tenants) <= 3


@needs_traces
def test_itp_merged_folder_has_one_tenant_per_cluster(tmp_path: Path) -> None:
    folder = tmp_path / "itp"
    head(ITP / "cluster01.csv", folder, 50)
    head(ITP / "cluster05.csv", folder, 50)
    assert detect_format(folder) == ("itp", folder)
    w = read_trace(folder)
    assert w.tenants == ["cluster01", "cluster05"]
    assert len(w.jobs) == 100
    assert min(j.submit for j in w.jobs) == 0
    assert "one tenant per ITP cluster" in note(w.notes, "tenant = cluster file")


# -- Philly ------------------------------------------------------------------------------


@needs_traces
def test_philly_slice(tmp_path: Path) -> None:
    path = head(PHILLY, tmp_path, 400)
    raw = rows_of(path)
    w = read_trace(path)
    kept = [r for r in raw if int(r["num_gpu"]) > 0]
    assert len(w.jobs) == len(kept)
    by_id = {j.id: j for j in w.jobs}
    for r in kept:
        j = by_id[r["job_id"]]
        assert j.tenant == r["user"] and j.user == r["user"]
        assert j.priority == (-1 if r["best_effort"] == "1" else 0)
        assert j.gpus == int(r["num_gpu"]) and j.duration == float(r["duration"])
    dropped = len(raw) - len(kept)
    if dropped:
        assert note(w.notes, "num_gpu 0").startswith(f"{dropped} jobs")


def test_philly_handmade_sizes(tmp_path: Path) -> None:
    header = (
        "job_id,user,num_gpu,submit_time,iterations,model_name,duration,interval,"
        "expect_time_list,expect_value_list,best_effort,job_type"
    )
    path = write_csv(
        tmp_path / "trace_job_Philly_T.csv",
        header,
        "0,vc_a,12,10,1,m,100,1,1,1,0,strict",
        "1,vc_a,20,20,1,m,100,1,1,1,1,best",
        "2,vc_b,16,30,1,m,100,1,1,1,0,strict",
        "3,vc_b,0,40,1,m,100,1,1,1,0,strict",
    )
    w = read_philly(path)
    assert [(j.gpus_per_node, j.nodes) for j in w.jobs] == [(6, 2), (5, 4), (8, 2)]
    assert [j.priority for j in w.jobs] == [0, -1, 0]
    assert [j.submit for j in w.jobs] == [0, 10, 20]
    assert note(w.notes, "num_gpu 0").startswith("1 jobs")
    assert "2 uneven sizes" in note(w.notes, "uneven")


# -- the registry ------------------------------------------------------------------------


@needs_traces
def test_formats_are_detected_from_headers_and_folders(tmp_path: Path) -> None:
    openb = head(OPENB / "openb_pod_list_default.csv", tmp_path / "openb", 20)
    itp = head(ITP / "cluster01.csv", tmp_path / "itp", 20)
    philly = head(PHILLY, tmp_path / "philly", 20)
    assert detect_format(openb) == ("openb", openb)
    assert detect_format(openb.parent) == ("openb", openb)
    assert detect_format(itp) == ("itp", itp)
    assert detect_format(philly) == ("philly", philly)
    assert detect_format(philly.parent) == ("philly", philly)
    assert read_trace(f"itp:{itp}").name == "itp-cluster01"


def test_read_trace_errors_and_limit(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no such file"):
        read_trace(tmp_path / "absent.csv")
    odd = write_csv(tmp_path / "odd.csv", "a,b", "1,2")
    with pytest.raises(TraceError, match="unknown trace format"):
        read_trace(odd)
    with pytest.raises(TraceError, match="synth:N"):
        read_trace("synth:100")
    native = write_csv(
        tmp_path / "n.csv", "id,submit,duration,gpus_per_node", "b,5,10,1", "a,1,10,2", "c,9,1,1"
    )
    w = read_trace(native, limit=2)
    assert [j.id for j in w.jobs] == ["a", "b"]
    assert any("first 2 of 3" in n for n in w.notes)
    synth = read_trace(f"synth:50,rate=2:{native}", seed=3)
    assert len(synth.jobs) == 50
    assert synth.jobs == read_trace(f"synth:50,rate=2:{native}", seed=3).jobs
