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

from collections.abc import Mapping
from dataclasses import dataclass, field

from axcenter.model.quota import ROOT_COHORT, Quota, QuotaNode

__all__ = ["QuotaTree"]


@dataclass(slots=True)
class _Node:
    id: str
    parent: _Node | None
    quotas: Mapping[str, Quota]
    children: list[_Node] = field(default_factory=list)
    subtree: dict[str, int] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)

    def guaranteed(self, gpu_type: str) -> int:
        lending = self.quotas.get(gpu_type, _ZERO).lending_limit
        if lending is None:
            return 0
        return max(0, self.subtree.get(gpu_type, 0) - lending)


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
        #: available() answers, valid until the next usage change
        self._cache: dict[tuple[str, str], int] = {}
        root_spec = cohorts.get(ROOT_COHORT, QuotaNode(ROOT_COHORT, parent=None))
        self._root = _Node(ROOT_COHORT, None, {})
        self._nodes[ROOT_COHORT] = self._root
        self._projects: dict[str, _Node] = {}
        for spec in sorted(cohorts.values(), key=lambda c: c.id):
            if spec.id != ROOT_COHORT:
                self._cohort(spec.id, cohorts)
        for spec in sorted(projects.values(), key=lambda p: p.id):
            self.project(spec.id, projects, cohorts)
        # the root owns what nobody was granted (and any nominal quota given to it)
        granted: dict[str, int] = {}
        for node in self._nodes.values():
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
        for (project_id, gpu_type), gpus in sorted((usage or {}).items()):
            if gpu_type and gpus:
                self.add(project_id, gpu_type, gpus)

    # -- building ---------------------------------------------------------------------

    def _cohort(self, cohort_id: str, cohorts: Mapping[str, QuotaNode]) -> _Node:
        node = self._nodes.get(cohort_id)
        if node is not None:
            return node
        spec = cohorts.get(cohort_id, QuotaNode(cohort_id))
        parent = self._cohort(spec.parent or ROOT_COHORT, cohorts)
        node = _Node(cohort_id, parent, spec.quotas)
        parent.children.append(node)
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
        spec = (projects or {}).get(project_id, QuotaNode(project_id))
        parent = self._cohort(spec.parent or ROOT_COHORT, cohorts or {})
        node = _Node(project_id, parent, spec.quotas)
        parent.children.append(node)
        self._projects[project_id] = node
        for gpu_type in getattr(self, "_types", ()):
            node.subtree[gpu_type] = node.quotas.get(gpu_type, _ZERO).nominal
        return node

    def _compute_subtree(self, node: _Node, gpu_type: str) -> int:
        total = node.quotas.get(gpu_type, _ZERO).nominal
        node.subtree[gpu_type] = total  # guaranteed() below reads the final value
        for child in node.children:
            child_total = self._compute_subtree(child, gpu_type)
            total += child_total - child.guaranteed(gpu_type)
        node.subtree[gpu_type] = total
        return total

    # -- reading ----------------------------------------------------------------------

    def nominal(self, project_id: str, gpu_type: str) -> int:
        return self.project(project_id).quotas.get(gpu_type, _ZERO).nominal

    def usage(self, project_id: str, gpu_type: str) -> int:
        return self.project(project_id).usage.get(gpu_type, 0)

    def within_nominal(self, project_id: str, gpu_type: str, gpus: int) -> bool:
        return self.usage(project_id, gpu_type) + gpus <= self.nominal(project_id, gpu_type)

    def room(self, project_id: str) -> int:
        """The most GPUs of one type this project may still take within its nominal quota."""
        node = self.project(project_id)
        return max((q.nominal - node.usage.get(t, 0) for t, q in node.quotas.items()), default=0)

    def borrowing(self, project_id: str, gpu_type: str) -> bool:
        return self.usage(project_id, gpu_type) > self.nominal(project_id, gpu_type)

    def available(self, project_id: str, gpu_type: str) -> int:
        key = (project_id, gpu_type)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self._available(self.project(project_id), gpu_type)
        return cached

    def _available(self, node: _Node, gpu_type: str) -> int:
        subtree = node.subtree.get(gpu_type, 0)
        usage = node.usage.get(gpu_type, 0)
        if node.parent is None:
            return subtree - usage
        guaranteed = node.guaranteed(gpu_type)
        local = max(0, guaranteed - usage)
        from_parent = self._available(node.parent, gpu_type)
        limit = node.quotas.get(gpu_type, _ZERO).borrowing_limit
        if limit is not None:
            stored_in_parent = subtree - guaranteed
            used_in_parent = max(0, usage - guaranteed)
            from_parent = min(from_parent, stored_in_parent - used_in_parent + limit)
        return local + max(0, from_parent)

    # -- changing ---------------------------------------------------------------------

    def add(self, project_id: str, gpu_type: str, gpus: int) -> None:
        self._update(self.project(project_id), gpu_type, gpus)

    def remove(self, project_id: str, gpu_type: str, gpus: int) -> None:
        self._update(self.project(project_id), gpu_type, -gpus)

    def _update(self, node: _Node, gpu_type: str, delta: int) -> None:
        self._cache.clear()
        old = node.usage.get(gpu_type, 0)
        new = old + delta
        node.usage[gpu_type] = new
        if node.parent is not None:
            guaranteed = node.guaranteed(gpu_type)
            parent_delta = max(0, new - guaranteed) - max(0, old - guaranteed)
            if parent_delta:
                self._update(node.parent, gpu_type, parent_delta)
