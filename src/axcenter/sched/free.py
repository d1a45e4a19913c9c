"""Free capacity per node, derived from a snapshot and consumed while planning."""

from __future__ import annotations

from dataclasses import dataclass

from axcenter.model.cluster import Allocation, Node
from axcenter.model.snapshot import Snapshot

__all__ = ["FreeCapacity", "NodeFree"]


@dataclass(slots=True)
class NodeFree:
    node: Node
    devices: list[int]  # free device indices, ascending
    cpus: int
    memory_mb: int

    def fits(self, gpus: int, cpus: int, memory_mb: int) -> bool:
        return len(self.devices) >= gpus and self.cpus >= cpus and self.memory_mb >= memory_mb

    def take(self, gpus: int, cpus: int, memory_mb: int) -> Allocation:
        taken = tuple(self.devices[:gpus])
        del self.devices[:gpus]
        self.cpus -= cpus
        self.memory_mb -= memory_mb
        return Allocation(self.node.id, taken, cpus, memory_mb)


class FreeCapacity:
    """What is still free on each schedulable node, in node order.

    Built once per plan from the nodes minus running allocations; the planner takes
    from it as it admits jobs, so later decisions in the same cycle see earlier ones.
    """

    def __init__(self, snapshot: Snapshot) -> None:
        held: dict[str, set[int]] = {}
        cpus: dict[str, int] = {}
        mem: dict[str, int] = {}
        for job in snapshot.running:
            for alloc in job.allocations:
                held.setdefault(alloc.node_id, set()).update(alloc.devices)
                cpus[alloc.node_id] = cpus.get(alloc.node_id, 0) + alloc.cpus
                mem[alloc.node_id] = mem.get(alloc.node_id, 0) + alloc.memory_mb
        self.nodes: list[NodeFree] = []
        for node in sorted(snapshot.nodes, key=lambda n: n.name):
            if not node.schedulable:
                continue
            busy = held.get(node.id, set())
            self.nodes.append(
                NodeFree(
                    node=node,
                    devices=[d for d in range(node.gpu_count) if d not in busy],
                    cpus=node.cpus - cpus.get(node.id, 0),
                    memory_mb=node.memory_mb - mem.get(node.id, 0),
                )
            )

    @property
    def free_gpus(self) -> int:
        return sum(len(n.devices) for n in self.nodes)
