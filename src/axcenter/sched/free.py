"""Free capacity per node, indexed so that best fit is a lookup, not a scan.

Nodes of each GPU type sit in buckets by their number of free devices. Finding the
tightest node with at least ``g`` free devices walks buckets ``g, g+1, …`` (at most the
devices a node has), so a placement costs little even on thousands of nodes.

Planning takes devices from it and may give them back (``release``, ``take_exact``): the
preemption search tries removals and restores them, as Kueue's snapshot does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from axcenter.model.cluster import Allocation, Node, NodeState
from axcenter.model.index import RunningIndex

__all__ = ["Blocked", "FreeCapacity", "NodeFree"]

#: devices a job must not use, by node id
Blocked = Mapping[str, frozenset[int]]


@dataclass(slots=True)
class NodeFree:
    node: Node
    devices: list[int]  # free device indices, ascending
    cpus: int
    memory_mb: int

    def usable(self, blocked: Blocked | None) -> list[int]:
        if not blocked:
            return self.devices
        held = blocked.get(self.node.id)
        return [d for d in self.devices if d not in held] if held else self.devices


def _name(node: Node) -> str:
    return node.name


class FreeCapacity:
    def __init__(self, nodes: Iterable[Node], index: RunningIndex) -> None:
        self.by_id: dict[str, NodeFree] = {}
        #: gpu type -> free count -> nodes (insertion-ordered dict used as an ordered set)
        self._buckets: dict[str, list[dict[str, NodeFree]]] = {}
        self.free_gpus = 0
        up = NodeState.UP
        held_on = index.nodes
        for node in sorted(nodes, key=_name):
            if node.state is not up:  # drained and down nodes take nothing new
                continue
            held = held_on.get(node.id)
            if held is None:
                nf = NodeFree(node, list(range(node.gpu_count)), node.cpus, node.memory_mb)
            else:
                nf = NodeFree(
                    node=node,
                    devices=[d for d in range(node.gpu_count) if d not in held.devices],
                    cpus=node.cpus - held.cpus,
                    memory_mb=node.memory_mb - held.memory_mb,
                )
            self.by_id[node.id] = nf
            buckets = self._buckets.setdefault(node.gpu_type, [])
            while len(buckets) <= node.gpu_count:
                buckets.append({})
            buckets[len(nf.devices)][node.id] = nf
            self.free_gpus += len(nf.devices)

        self.gpu_types = sorted(self._buckets)  # types with a schedulable node

    def candidates(self, gpu_type: str, at_least: int) -> Iterator[NodeFree]:
        """Nodes of ``gpu_type`` with at least ``at_least`` free devices, tightest first.

        A live view: take nothing until the iteration is over.
        """
        buckets = self._buckets.get(gpu_type, [])
        for count in range(at_least, len(buckets)):
            yield from buckets[count].values()

    def count_at_least(self, gpu_type: str, at_least: int) -> int:
        buckets = self._buckets.get(gpu_type, [])
        return sum(len(b) for b in buckets[at_least:])

    def all_nodes(self) -> Iterator[NodeFree]:
        return iter(self.by_id.values())

    def take(self, nf: NodeFree, devices: list[int], cpus: int, memory_mb: int) -> Allocation:
        """Take ``devices`` (free on ``nf``) and resources; returns the allocation."""
        taken = set(devices)
        if len(taken) != len(devices) or not taken <= set(nf.devices):
            raise ValueError(f"devices {devices} are not all free on {nf.node.name}")
        self._unindex(nf)
        nf.devices = [d for d in nf.devices if d not in taken]
        self._index(nf)
        nf.cpus -= cpus
        nf.memory_mb -= memory_mb
        self.free_gpus -= len(devices)
        return Allocation(nf.node.id, tuple(devices), cpus, memory_mb)

    def take_exact(self, alloc: Allocation) -> None:
        nf = self.by_id.get(alloc.node_id)
        if nf is not None:
            self.take(nf, list(alloc.devices), alloc.cpus, alloc.memory_mb)

    def release(self, alloc: Allocation) -> None:
        nf = self.by_id.get(alloc.node_id)
        if nf is None:  # the node is drained or down: nothing to give back
            return
        self._unindex(nf)
        nf.devices = sorted({*nf.devices, *alloc.devices})
        self._index(nf)
        nf.cpus += alloc.cpus
        nf.memory_mb += alloc.memory_mb
        self.free_gpus += len(alloc.devices)

    def _unindex(self, nf: NodeFree) -> None:
        del self._buckets[nf.node.gpu_type][len(nf.devices)][nf.node.id]

    def _index(self, nf: NodeFree) -> None:
        self._buckets[nf.node.gpu_type][len(nf.devices)][nf.node.id] = nf
