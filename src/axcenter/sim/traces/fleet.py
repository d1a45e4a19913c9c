"""Node inventories without jobs: the Alibaba GFS fleet (``node_info_df.csv``).

The GFS trace publishes 4,278 nodes of a heterogeneous fleet (``gpu_model,
gpu_capacity_num, cpu_num, node_name``) and no job list: a realistic center to replay
other traces on, or to plan capacity against. Nodes become one group per (model, GPUs per
node); memory is not published, so groups keep the cluster spec's default.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from axcenter.sim.cluster import ClusterSpec, NodeGroup
from axcenter.sim.traces.native import TraceError
from axcenter.sim.traces.openb import group_name

__all__ = ["FLEET_NODE_LIST", "find_fleet_list", "fleet_cluster"]

FLEET_NODE_LIST = "node_info_df.csv"
_COLUMNS = ["gpu_model", "gpu_capacity_num", "cpu_num", "node_name"]


def find_fleet_list(path: Path) -> Path | None:
    """The fleet node list at ``path`` (the file, or a folder holding it), if any."""
    if path.is_file():
        return path if path.name == FLEET_NODE_LIST else None
    candidate = path / FLEET_NODE_LIST
    return candidate if candidate.is_file() else None


def fleet_cluster(path: Path) -> ClusterSpec:
    """The fleet's GPU nodes as a cluster: one group per (model, GPUs per node), each with
    the CPU count most of its nodes have."""
    node_list = find_fleet_list(path)
    if node_list is None:
        raise TraceError(f"{path}: no {FLEET_NODE_LIST} there to build the cluster from")
    try:
        nodes = pl.read_csv(
            node_list,
            columns=_COLUMNS,
            schema_overrides={"gpu_capacity_num": pl.Int64, "cpu_num": pl.Int64},
        )
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise TraceError(f"{node_list}: not a fleet node list: {exc}") from exc
    groups = (
        nodes.filter((pl.col("gpu_capacity_num") > 0) & pl.col("gpu_model").is_not_null())
        .group_by("gpu_model", "gpu_capacity_num")
        .agg(pl.len().alias("count"), pl.col("cpu_num").mode().first().alias("cpus"))
        .sort("gpu_model", "gpu_capacity_num")
    )
    node_groups = [
        NodeGroup(
            name=group_name(row["gpu_model"], row["gpu_capacity_num"]),
            gpu_type=row["gpu_model"],
            gpus_per_node=row["gpu_capacity_num"],
            count=row["count"],
            cpus=max(1, row["cpus"]),
        )
        for row in groups.iter_rows(named=True)
    ]
    if not node_groups:
        raise TraceError(f"{node_list}: no GPU nodes")
    return ClusterSpec(name="gfs-fleet", node_groups=node_groups)
