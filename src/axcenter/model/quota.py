"""Quotas and cohorts: what each project is guaranteed, may borrow and lends.

The model is Kueue's (ClusterQueues in a tree of cohorts), with projects as the leaves:

- ``nominal``: the quota a project is guaranteed per GPU type (from its grants).
- ``lending_limit``: how much of its unused nominal quota others may borrow; the rest
  is kept for the project alone. None lends all of it.
- ``borrowing_limit``: how far beyond its nominal quota the project may go by borrowing
  idle capacity from its cohort. None: as far as the cohort has idle capacity.

Cohorts nest (the center at the root, optionally a funding program below it). Capacity
that no project is granted belongs to the root cohort: every project may borrow it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ROOT_COHORT", "Quota", "QuotaNode"]

ROOT_COHORT = "center"


@dataclass(frozen=True, slots=True)
class Quota:
    nominal: int = 0
    borrowing_limit: int | None = None
    lending_limit: int | None = None


@dataclass(frozen=True, slots=True)
class QuotaNode:
    """A project (leaf) or a cohort, with its quotas by GPU type."""

    id: str
    parent: str | None = ROOT_COHORT  # None only for the root cohort
    quotas: Mapping[str, Quota] = field(default_factory=dict)
    weight: float = 1.0  # fair-share weight (projects)

    def quota(self, gpu_type: str) -> Quota:
        return self.quotas.get(gpu_type, _NO_QUOTA)


_NO_QUOTA = Quota()
