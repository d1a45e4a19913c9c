"""Decayed usage per project, the history behind fair share.

Each cycle the usage decays by the time elapsed and grows by the GPU-seconds the
project's running jobs held meanwhile, each GPU type weighed by ``weights``
(``sched.fairshare``: its price relative to the cheapest, or a configured weight). At
start it is rebuilt from finished jobs in the store, so a restart does not reset
anyone's history.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from axcenter.accounting.prices import prices_at
from axcenter.model.snapshot import SchedulerConfig
from axcenter.sched.fairshare import accrue_usage, held_weighted
from axcenter.sched.fairshare import usage_weights as weights_from

__all__ = ["UsageTracker", "usage_weights"]


def usage_weights(session: Session, at: datetime, config: SchedulerConfig) -> dict[str, float]:
    """What a GPU-second of each type weighs in fair share: the configured weights
    (``AXC_SCHED_USAGE_WEIGHTS``), else each type's price in force at ``at`` relative to
    the cheapest priced type (usage in won; an unpriced type weighs 1)."""
    if config.usage_weights:  # the price book is not read
        return dict(config.usage_weights)
    return weights_from(config, prices_at(session, at))


class UsageTracker:
    def __init__(
        self,
        half_life_s: float,
        now: float,
        initial: Mapping[str, float] | None = None,
        weights: Mapping[str, float] | None = None,
    ):
        self.half_life_s = half_life_s
        self.at = now
        self.usage: dict[str, float] = dict(initial or {})
        #: what a GPU-second weighs, by GPU type (1 for a type not named)
        self.weights: dict[str, float] = dict(weights or {})

    def advance(self, now: float, held: Mapping[tuple[str, str], int]) -> None:
        """Decay to ``now`` and add what the GPUs ``held`` by (project, GPU type) used
        since the last call, weighted by type."""
        elapsed = now - self.at
        if elapsed <= 0:
            return
        accrue_usage(self.usage, held_weighted(held, self.weights), elapsed, self.half_life_s)
        self.at = now
