"""Quota accounting over the cohort tree: guaranteed, borrowed and lendable capacity.

Kueue's hierarchical model, per GPU type:

- ``subtree``: a project's nominal quota; for a cohort, its own nominal quota plus what
  its children put in its pool (their subtree less what they keep for themselves).
- ``guaranteed``: the part of a node's subtree that it does not lend
  (``subtree - lending_limit``; 0 when it lends everything).
- ``usage``: for a project, the GPUs its jobs hold; for a cohort, what its children use
  beyond their guaranteed parts, i.e. what they draw from its pool.
- ``available``: how many more GPUs a node may use: its free guaranteed part plus what its
  parent can still give, capped by its borrowing limit. At the root it is the pool.

Capacity that no project or cohort is granted is the root cohort's own quota: anyone may
borrow it. A project absent from the snapshot has no quota and sits under the root.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from axcenter.model.quota import ROOT_COHORT, Quota, QuotaNode

__all__ = ["QuotaTree"]


class _Node:
    __slots__ = ("cohort", "id", "parent", "quotas", "subtree", "usage")

    def __init__(
        self, node_id: str, parent: _Node | None, quotas: Mapping[str, Quota], *, cohort: bool
    ) -> None:
        self.id = node_id
        self.cohort = cohort
        self.parent = parent
        self.quotas = quotas
        self.subtree: dict[str, int] = {}
        self.usage: dict[str, int] = {}

    def guaranteed(self, gpu_type: str) -> int:
        q = self.quotas.get(gpu_type)
        if q is None or q.lending_limit is None:
            return 0
        return max(0, self.subtree.get(gpu_type, 0) - q.lending_limit)


_ZERO = Quota()


class QuotaTree:
    def __init__(
        self,
        projects: Mapping[str, QuotaNode],
        cohorts: Mapping[str, QuotaNode],
        capacity: Mapping[str, int],
        usage: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        """``usage``: GPUs held by running jobs, by (project id, GPU type)."""
        self._nodes: dict[str, _Node] = {}
        #: available() answers by GPU type and node (cohorts too), valid until the next
        #: usage change of that type
        self._cache: dict[str, dict[_Node, int]] = {}
        #: room() answers by project, valid until that project's usage changes
        self._rooms: dict[str, int] = {}
        root_spec = cohorts.get(ROOT_COHORT, QuotaNode(ROOT_COHORT, parent=None))
        self._root = _Node(ROOT_COHORT, None, {}, cohort=True)
        self._nodes[ROOT_COHORT] = self._root
        #: the children of each cohort (nodes point to their parent only: no cycles)
        self._children: dict[_Node, list[_Node]] = {self._root: []}
        self._projects: dict[str, _Node] = {}
        for spec in sorted(cohorts.values(), key=lambda c: c.id):
            if spec.id != ROOT_COHORT:
                self._cohort(spec.id, cohorts)
        for spec in sorted(projects.values(), key=lambda p: p.id):
            self.project(spec.id, projects, cohorts)
        # the root owns what nobody was granted (and any nominal quota given to it)
        granted: dict[str, int] = {}
        for nodes in (self._nodes, self._projects):  # cohorts, then projects
            for node in nodes.values():
                if node is not self._root:
                    for gpu_type, q in node.quotas.items():
                        granted[gpu_type] = granted.get(gpu_type, 0) + q.nominal
        self._root.quotas = {
            t: Quota(
                nominal=max(0, capacity.get(t, 0) - granted.get(t, 0)) + root_spec.quota(t).nominal
            )
            for t in set(capacity) | set(root_spec.quotas)
        }
        self._types = sorted(set(capacity) | set(granted))
        for gpu_type in self._types:
            self._compute_subtree(self._root, gpu_type)
        # what runs now, set at once: each cohort uses what its children use beyond
        # their guaranteed parts (as ``add`` job by job would leave it)
        for (project_id, gpu_type), gpus in (usage or {}).items():
            if gpu_type and gpus:
                held = self._project(project_id).usage
                held[gpu_type] = held.get(gpu_type, 0) + gpus
        self._sum_usage(self._root)

    # -- building ---------------------------------------------------------------------

    def _cohort(self, cohort_id: str, cohorts: Mapping[str, QuotaNode]) -> _Node:
        node = self._nodes.get(cohort_id)
        if node is not None:
            return node
        spec = cohorts.get(cohort_id)
        if spec is None:
            spec = QuotaNode(cohort_id)
        parent = self._cohort(spec.parent or ROOT_COHORT, cohorts)
        node = _Node(cohort_id, parent, spec.quotas, cohort=True)
        self._children[parent].append(node)
        self._children[node] = []
        self._nodes[cohort_id] = node
        return node

    def project(
        self,
        project_id: str,
        projects: Mapping[str, QuotaNode] | None = None,
        cohorts: Mapping[str, QuotaNode] | None = None,
    ) -> _Node:
        node = self._projects.get(project_id)
        if node is not None:
            return node
        spec = projects.get(project_id) if projects else None
        if spec is None:
            spec = QuotaNode(project_id)
        parent = self._cohort(spec.parent or ROOT_COHORT, cohorts or {})
        node = _Node(project_id, parent, spec.quotas, cohort=False)
        self._children[parent].append(node)
        self._projects[project_id] = node
        for gpu_type in getattr(self, "_types", ()):
            node.subtree[gpu_type] = node.quotas.get(gpu_type, _ZERO).nominal
        return node

    def _compute_subtree(self, node: _Node, gpu_type: str) -> int:
        total = node.quotas.get(gpu_type, _ZERO).nominal
        node.subtree[gpu_type] = total  # guaranteed() below reads the final value
        for child in self._children.get(node, ()):
            child_total = self._compute_subtree(child, gpu_type)
            total += child_total - child.guaranteed(gpu_type)
        node.subtree[gpu_type] = total
        return total

    def _sum_usage(self, cohort: _Node) -> None:
        total: dict[str, int] = {}
        for child in self._children[cohort]:
            if child.cohort:
                self._sum_usage(child)
            for gpu_type, used in child.usage.items():
                over = used - child.guaranteed(gpu_type)
                if over > 0:
                    total[gpu_type] = total.get(gpu_type, 0) + over
        cohort.usage = total

    # -- reading ----------------------------------------------------------------------

    def _project(self, project_id: str) -> _Node:
        node = self._projects.get(project_id)
        return node if node is not None else self.project(project_id)

    def nominal(self, project_id: str, gpu_type: str) -> int:
        q = self._project(project_id).quotas.get(gpu_type)
        return 0 if q is None else q.nominal

    def usage(self, project_id: str, gpu_type: str) -> int:
        return self._project(project_id).usage.get(gpu_type, 0)

    def within_nominal(self, project_id: str, gpu_type: str, gpus: int) -> bool:
        node = self._project(project_id)
        q = node.quotas.get(gpu_type)
        return node.usage.get(gpu_type, 0) + gpus <= (0 if q is None else q.nominal)

    def within_nominal_on_any(self, project_id: str, gpu_types: Sequence[str], gpus: int) -> bool:
        """``within_nominal`` on some of ``gpu_types``."""
        if gpus > 0 and gpus > self.room(project_id):
            return False  # no type has that much nominal quota left
        node = self._project(project_id)
        usage, quotas = node.usage, node.quotas
        for gpu_type in gpu_types:
            q = quotas.get(gpu_type)
            if usage.get(gpu_type, 0) + gpus <= (0 if q is None else q.nominal):
                return True
        return False

    def room(self, project_id: str) -> int:
        """The most GPUs of one type this project may still take within its nominal quota."""
        room = self._rooms.get(project_id)
        if room is None:
            node = self._project(project_id)
            usage = node.usage
            room = self._rooms[project_id] = max(
                (q.nominal - usage.get(t, 0) for t, q in node.quotas.items()), default=0
            )
        return room

    def borrowing(self, project_id: str, gpu_type: str) -> bool:
        node = self._project(project_id)
        q = node.quotas.get(gpu_type)
        return node.usage.get(gpu_type, 0) > (0 if q is None else q.nominal)

    def available(self, project_id: str, gpu_type: str) -> int:
        cache = self._cache.get(gpu_type)
        if cache is None:
            cache = self._cache[gpu_type] = {}
        node = self._project(project_id)
        found = cache.get(node)
        return found if found is not None else self._available(node, gpu_type, cache)

    def _available(self, node: _Node, gpu_type: str, cache: dict[_Node, int]) -> int:
        found = cache.get(node)
        if found is not None:
            return found
        subtree = node.subtree.get(gpu_type, 0)
        usage = node.usage.get(gpu_type, 0)
        if node.parent is None:
            found = cache[node] = subtree - usage
            return found
        guaranteed = node.guaranteed(gpu_type)
        local = max(0, guaranteed - usage)
        from_parent = self._available(node.parent, gpu_type, cache)
        limit = node.quotas.get(gpu_type, _ZERO).borrowing_limit
        if limit is not None:
            stored_in_parent = subtree - guaranteed
            used_in_parent = max(0, usage - guaranteed)
            from_parent = min(from_parent, stored_in_parent - used_in_parent + limit)
        found = cache[node] = local + max(0, from_parent)
        return found

    # -- changing ---------------------------------------------------------------------

    def add(self, project_id: str, gpu_type: str, gpus: int) -> None:
        self._update(self._project(project_id), gpu_type, gpus)

    def remove(self, project_id: str, gpu_type: str, gpus: int) -> None:
        self._update(self._project(project_id), gpu_type, -gpus)

    def _update(self, node: _Node, gpu_type: str, delta: int) -> None:
        self._cache.pop(gpu_type, None)  # availability of other types is unchanged
        if not node.cohort:
            self._rooms.pop(node.id, None)
        while True:
            old = node.usage.get(gpu_type, 0)
            new = old + delta
            node.usage[gpu_type] = new
            parent = node.parent
            if parent is None:
                return
            guaranteed = node.guaranteed(gpu_type)
            delta = max(0, new - guaranteed) - max(0, old - guaranteed)
            if not delta:
                return
            node = parent
