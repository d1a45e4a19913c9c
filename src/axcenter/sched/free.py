"""Free capacity per node, indexed so that best fit is a lookup, not a scan.

Nodes of each GPU type sit in buckets by their number of free devices. Finding the
tightest node with at least ``g`` free devices walks buckets ``g, g+1, …`` (at most the
devices a node has), so a placement costs little even on thousands of nodes.

Planning takes devices from it and may give them back (``release``, ``take_exact``): the
preemption search tries removals and restores them, as Kueue's snapshot does.

What is free when the cycle starts comes from the running index (``FreeNodes``, kept up
to date as jobs start and end), so a cycle does not rebuild it from the nodes. The cycle
never changes that: a node it takes from or gives to is copied first (``_own``), and so is
a bucket before its first change (``_buckets``), which costs what the cycle changes, not
the size of the cluster. A changed node moves to the end of its new bucket, as in an index
rebuilt each cycle: within a bucket, nodes untouched this cycle come by name, then the
nodes this cycle moved there, in the order they came.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from axcenter.model.cluster import Allocation, Node
from axcenter.model.index import FreeNodes, NodeFree, RunningIndex

__all__ = ["Blocked", "FreeCapacity", "NodeFree"]

#: devices a job must not use, by node id
Blocked = Mapping[str, frozenset[int]]


class _Nodes:
    """``by_id`` of a ``FreeCapacity``: the node's copy if this cycle changed it, else
    the index's (read-only) value."""

    __slots__ = ("_base", "_own")

    def __init__(self, base: dict[str, NodeFree], own: dict[str, NodeFree]) -> None:
        self._base = base
        self._own = own

    def get(self, node_id: str) -> NodeFree | None:
        nf = self._own.get(node_id)
        return nf if nf is not None else self._base.get(node_id)

    def __getitem__(self, node_id: str) -> NodeFree:
        nf = self._own.get(node_id)
        return nf if nf is not None else self._base[node_id]

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._base

    def __len__(self) -> int:
        return len(self._base)

    def __bool__(self) -> bool:
        return bool(self._base)

    def __iter__(self) -> Iterator[str]:
        return iter(self._base)

    def values(self) -> Iterator[NodeFree]:
        own = self._own
        if not own:
            return iter(self._base.values())
        return (own.get(node_id, nf) for node_id, nf in self._base.items())


class FreeCapacity:
    def __init__(self, nodes: Iterable[Node], index: RunningIndex) -> None:
        base = index.free_nodes(nodes if isinstance(nodes, tuple) else tuple(nodes))
        self._base: FreeNodes = base
        #: copies of the nodes this cycle changed, by node id
        self._own: dict[str, NodeFree] = {}
        #: gpu type -> free count -> this cycle's copy of that bucket (None: the index's
        #: bucket, unchanged: none of its nodes was changed, none moved in)
        self._buckets: dict[str, list[dict[str, NodeFree] | None]] = {}
        self.by_id = _Nodes(base.by_id, self._own)
        self.free_gpus = base.free_gpus
        self.gpu_types = base.gpu_types  # types with a schedulable node

    @property
    def base(self) -> FreeNodes:
        """The index's free capacity this view starts from (read only)."""
        return self._base

    def candidates(self, gpu_type: str, at_least: int) -> Iterator[NodeFree]:
        """Nodes of ``gpu_type`` with at least ``at_least`` free devices, tightest first.

        A live view: take nothing until the iteration is over.
        """
        base = self._base.buckets.get(gpu_type)
        if base is None:
            return
        own = self._buckets.get(gpu_type)
        by_rank = self._base.by_rank
        for count in range(at_least, len(base)):
            copied = own[count] if own is not None else None
            if copied is None:
                for rank in base[count]:
                    yield by_rank[rank]
            else:
                yield from copied.values()

    def count_at_least(self, gpu_type: str, at_least: int) -> int:
        base = self._base.buckets.get(gpu_type, [])
        own = self._buckets.get(gpu_type)
        if own is None:
            return sum(len(b) for b in base[at_least:])
        return sum(
            len(b if (c := own[count]) is None else c)
            for count, b in enumerate(base)
            if count >= at_least
        )

    def all_nodes(self) -> Iterator[NodeFree]:
        return self.by_id.values()

    def take(self, nf: NodeFree, devices: list[int], cpus: int, memory_mb: int) -> Allocation:
        """Take ``devices`` (free on ``nf``) and resources; returns the allocation."""
        node_id = nf.node.id
        own = self._own.get(node_id)
        current = own if own is not None else self._base.by_id[node_id]  # ``nf`` may be stale
        taken = set(devices)
        if len(taken) != len(devices) or not taken <= set(current.devices):
            raise ValueError(f"devices {devices} are not all free on {nf.node.name}")
        nf = own if own is not None else self._copy(current)
        self._place(nf, [d for d in nf.devices if d not in taken])
        nf.cpus -= cpus
        nf.memory_mb -= memory_mb
        self.free_gpus -= len(devices)
        return Allocation(node_id, tuple(devices), cpus, memory_mb)

    def take_exact(self, alloc: Allocation) -> None:
        nf = self.by_id.get(alloc.node_id)
        if nf is not None:
            self.take(nf, list(alloc.devices), alloc.cpus, alloc.memory_mb)

    def release(self, alloc: Allocation) -> None:
        nf = self.by_id.get(alloc.node_id)
        if nf is None:  # the node is drained or down: nothing to give back
            return
        nf = self._own.get(alloc.node_id) or self._copy(nf)
        self._place(nf, sorted({*nf.devices, *alloc.devices}))
        nf.cpus += alloc.cpus
        nf.memory_mb += alloc.memory_mb
        self.free_gpus += len(alloc.devices)

    def _copy(self, nf: NodeFree) -> NodeFree:
        """This cycle's own copy of an index node, in its place in its bucket."""
        own = NodeFree(nf.node, list(nf.devices), nf.cpus, nf.memory_mb)
        self._own[nf.node.id] = own
        self._bucket(nf.node.gpu_type, len(nf.devices))[nf.node.id] = own
        return own

    def _bucket(self, gpu_type: str, count: int) -> dict[str, NodeFree]:
        """This cycle's copy of a bucket, made before its first change. (Until then no
        node in it was changed: changing a node changes the bucket it is in.)"""
        buckets = self._buckets.get(gpu_type)
        if buckets is None:
            size = len(self._base.buckets[gpu_type])
            buckets = self._buckets[gpu_type] = [None] * size
        bucket = buckets[count]
        if bucket is None:
            by_rank = self._base.by_rank
            bucket = buckets[count] = {
                (nf := by_rank[rank]).node.id: nf for rank in self._base.buckets[gpu_type][count]
            }
        return bucket

    def _place(self, own: NodeFree, devices: list[int]) -> None:
        """Give a changed node its new devices: it moves to the end of its new bucket
        (even if that is the bucket it was in), as in an index rebuilt each cycle."""
        gpu_type, node_id = own.node.gpu_type, own.node.id
        del self._bucket(gpu_type, len(own.devices))[node_id]
        own.devices = devices
        self._bucket(gpu_type, len(devices))[node_id] = own
