"""Decayed usage per project, the history behind fair share.

Each cycle the usage decays by the time elapsed and grows by the GPU-seconds the
project's running jobs held meanwhile. At start it is rebuilt from finished jobs in the
store, so a restart does not reset anyone's history.
"""

from __future__ import annotations

from collections.abc import Mapping

from axcenter.sched.fairshare import decay

__all__ = ["UsageTracker"]


class UsageTracker:
    def __init__(self, half_life_s: float, now: float, initial: Mapping[str, float] | None = None):
        self.half_life_s = half_life_s
        self.at = now
        self.usage: dict[str, float] = dict(initial or {})

    def advance(self, now: float, held_gpus: Mapping[str, int]) -> None:
        """Decay to ``now`` and add what ``held_gpus`` used since the last call."""
        elapsed = now - self.at
        if elapsed <= 0:
            return
        factor = decay(1.0, elapsed, self.half_life_s)
        for project in list(self.usage):
            self.usage[project] *= factor
        # GPU-seconds held over the interval, decayed to its midpoint: close enough for
        # ordering, and exact in the limit of short cycles
        mid = decay(1.0, elapsed / 2, self.half_life_s)
        for project, gpus in held_gpus.items():
            if gpus:
                self.usage[project] = self.usage.get(project, 0.0) + gpus * elapsed * mid
        self.at = now
