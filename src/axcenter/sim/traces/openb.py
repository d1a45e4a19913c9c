"""Alibaba OpenB 2023 (``cluster-trace-gpu-v2023``): pods become jobs, nodes a cluster.

Rules, all stated in the workload's notes:

- submit = ``creation_time``, rebased so the first kept pod is at 0; duration =
  ``deletion_time - scheduled_time``. Pods never scheduled (``Pending`` at the end, no
  ``scheduled_time``) or with a non-positive duration are dropped and counted.
- CPU-only pods (``num_gpu`` 0) are dropped and counted: the simulated cluster is the
  GPU node list, and CPU-only work does not compete for GPUs.
- A fractional GPU (``gpu_milli`` < 1000, only ever with ``num_gpu`` 1) is rounded up to
  one whole GPU, since the scheduler does not share GPUs; the count is reported.
- ``gpu_spec`` ('|'-separated, duplicates removed) becomes the accepted GPU types;
  empty means any type.
- Tenants: the trace has none, so the tenant is the pod's QoS class (``LS``, ``BE``,
  ``Burstable``, ``Guaranteed``): the one grouping the trace records, and one that
  separates latency-sensitive services from best-effort work. ``BE`` pods also get
  priority -1 (the low class), like Philly's best-effort jobs.
- Status: ``Succeeded`` -> completed, ``Failed`` -> failed, ``Running`` -> unknown (cut
  at the end of the trace, which makes its duration a lower bound).
- CPU and memory requests are not replayed: the engine schedules GPUs, and a node
  group's CPU count is only the most common one of its nodes.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from axcenter.sim.cluster import ClusterSpec, NodeGroup
from axcenter.sim.traces.native import TraceError, workload_from_frame
from axcenter.sim.workload import Workload

__all__ = ["POD_COLUMNS", "find_node_list", "openb_cluster", "read_openb"]

POD_COLUMNS = (
    "name",
    "num_gpu",
    "gpu_milli",
    "gpu_spec",
    "qos",
    "pod_phase",
    "creation_time",
    "deletion_time",
    "scheduled_time",
)
NODE_LIST = "openb_node_list_gpu_node.csv"
_STATUS = {"Succeeded": "completed", "Failed": "failed"}


def read_openb(path: Path, *, limit: int | None = None) -> Workload:
    """The GPU pods of an OpenB pod list (``openb_pod_list_*.csv``) as a workload."""
    try:
        raw = pl.read_csv(path, columns=list(POD_COLUMNS), infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise TraceError(f"{path}: not an OpenB pod list: {exc}") from exc
    total = raw.height
    notes = [f"Alibaba OpenB 2023 pod list {path.name}: {total} pods"]
    timed = raw.filter(
        pl.col("scheduled_time").is_not_null()
        & pl.col("deletion_time").is_not_null()
        & pl.col("creation_time").is_not_null()
        & (pl.col("deletion_time") > pl.col("scheduled_time"))
    )
    if timed.height < total:
        notes.append(
            f"{total - timed.height} pods never scheduled or without a positive run time dropped"
        )
    gpu = timed.filter(pl.col("num_gpu") > 0)
    if gpu.height < timed.height:
        notes.append(f"{timed.height - gpu.height} CPU-only pods (num_gpu 0) dropped")
    fractional = gpu.filter(pl.col("gpu_milli") < 1000).height
    notes.append(f"{fractional} fractional-GPU pods (gpu_milli < 1000) rounded up to 1 whole GPU")
    typed = gpu.filter(pl.col("gpu_spec").fill_null("") != "").height
    notes.append(f"{typed} pods restricted to the GPU types of their gpu_spec; others any type")
    notes.append(
        "tenant = QoS class (LS, BE, Burstable, Guaranteed); BE pods priority -1; "
        "submit = creation_time rebased to 0; duration = deletion_time - scheduled_time; "
        "Running pods were cut at the trace end (status unknown)"
    )
    origin = gpu["creation_time"].min() if gpu.height else 0
    frame = gpu.select(
        pl.col("name").alias("id"),
        (pl.col("creation_time") - pl.lit(origin)).cast(pl.Float64).alias("submit"),
        (pl.col("deletion_time") - pl.col("scheduled_time")).cast(pl.Float64).alias("duration"),
        pl.col("num_gpu").cast(pl.Int64).alias("gpus_per_node"),
        pl.lit(1, dtype=pl.Int64).alias("nodes"),
        pl.col("gpu_spec").fill_null("").alias("gpu_types"),
        pl.col("qos").fill_null("unknown").alias("user"),
        pl.col("qos").fill_null("unknown").alias("tenant"),
        pl.col("pod_phase").replace_strict(_STATUS, default="unknown").alias("status"),
        pl.when(pl.col("qos") == "BE").then(-1).otherwise(0).cast(pl.Int64).alias("priority"),
    )
    return workload_from_frame(frame, f"openb-{_variant(path)}", notes, limit=limit)


def _variant(path: Path) -> str:
    stem = path.stem
    prefix = "openb_pod_list_"
    return stem[len(prefix) :] if stem.startswith(prefix) else stem


def find_node_list(path: Path) -> Path | None:
    """The GPU node list beside an OpenB pod list (or in an OpenB folder), if any."""
    folder = path if path.is_dir() else path.parent
    candidate = folder / NODE_LIST
    return candidate if candidate.is_file() else None


def group_name(model: str, gpus: int) -> str:
    clean = re.sub(r"[^A-Za-z0-9._-]", "-", model).strip("-.") or "gpu"
    return f"{clean.lower()}x{gpus}"


def openb_cluster(path: Path) -> ClusterSpec:
    """The GPU nodes of OpenB as a cluster: one node group per (model, GPUs per node).

    ``path`` is the node list, a pod list beside it, or the folder. A group's CPUs and
    memory are those most of its nodes have (they hardly vary within a group).
    """
    node_list = path if path.is_file() and path.name.startswith("openb_node_list") else None
    node_list = node_list or find_node_list(path)
    if node_list is None:
        raise TraceError(f"{path}: no {NODE_LIST} there to build the cluster from")
    try:
        nodes = pl.read_csv(node_list, columns=["sn", "cpu_milli", "memory_mib", "gpu", "model"])
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise TraceError(f"{node_list}: not an OpenB node list: {exc}") from exc
    nodes = nodes.filter((pl.col("gpu") > 0) & pl.col("model").is_not_null())
    groups = (
        nodes.group_by("model", "gpu")
        .agg(
            pl.len().alias("count"),
            pl.col("cpu_milli").mode().first().alias("cpu_milli"),
            pl.col("memory_mib").mode().first().alias("memory_mib"),
        )
        .sort("model", "gpu")
    )
    node_groups = [
        NodeGroup(
            name=group_name(row["model"], row["gpu"]),
            gpu_type=row["model"],
            gpus_per_node=row["gpu"],
            count=row["count"],
            cpus=max(1, row["cpu_milli"] // 1000),
            memory_mb=max(1, row["memory_mib"]),
        )
        for row in groups.iter_rows(named=True)
    ]
    if not node_groups:
        raise TraceError(f"{node_list}: no GPU nodes")
    return ClusterSpec(name="openb", node_groups=node_groups)
