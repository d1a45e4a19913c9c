"""Cluster specs for simulation: node groups and prices, from a small YAML file.

name: demo-center
node_groups:
  - {name: h100, gpu_type: H100, gpus_per_node: 8, count: 16, rack: r1}
  - {name: a100, gpu_type: A100, gpus_per_node: 8, count: 32, rack: r2,
     cpus: 128, memory_mb: 1048576}
prices:            # won per GPU-hour, integers
  H100: 6500
  A100: 3800
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from axcenter.model.cluster import Node

__all__ = ["ClusterSpec", "NodeGroup", "load_cluster"]

GpuType = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")]


class NodeGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    gpu_type: GpuType
    gpus_per_node: Annotated[int, Field(ge=1, le=64)]
    count: Annotated[int, Field(ge=0, le=100_000)]
    rack: str = ""
    #: nodes per rack when ``rack`` is empty: racks are then numbered within the group
    rack_size: Annotated[int, Field(ge=1)] = 32
    cpus: Annotated[int, Field(ge=1)] = 128
    memory_mb: Annotated[int, Field(ge=1)] = 1024 * 1024


class ClusterSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "cluster"
    node_groups: Annotated[list[NodeGroup], Field(min_length=1)]
    prices: dict[GpuType, Annotated[int, Field(ge=0)]] = {}  # won per GPU-hour

    @property
    def gpus(self) -> int:
        return sum(g.gpus_per_node * g.count for g in self.node_groups)

    def gpus_by_type(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for g in self.node_groups:
            out[g.gpu_type] = out.get(g.gpu_type, 0) + g.gpus_per_node * g.count
        return out

    def nodes(self) -> tuple[Node, ...]:
        """The scheduler's nodes: ``<group>-<i>`` in group order."""
        out = []
        for g in self.node_groups:
            for i in range(g.count):
                rack = g.rack or f"{g.name}-r{i // g.rack_size}"
                name = f"{g.name}-{i:05d}"
                out.append(
                    Node(
                        id=name,
                        name=name,
                        gpu_type=g.gpu_type,
                        gpu_count=g.gpus_per_node,
                        cpus=g.cpus,
                        memory_mb=g.memory_mb,
                        rack=rack,
                    )
                )
        return tuple(out)

    def with_added(self, gpu_type: str, gpus_per_node: int, count: int) -> ClusterSpec:
        """This cluster plus ``count`` new nodes (capacity planning)."""
        if count == 0:
            return self
        group = NodeGroup(
            name=f"added-{gpu_type.lower()}x{gpus_per_node}",
            gpu_type=gpu_type,
            gpus_per_node=gpus_per_node,
            count=count,
        )
        return self.model_copy(update={"node_groups": [*self.node_groups, group]})


def load_cluster(path: Path) -> ClusterSpec:
    """Read a cluster spec; errors name the file and the field."""
    data = yaml.safe_load(path.read_text())
    return ClusterSpec.model_validate(data)
