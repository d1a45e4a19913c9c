"""Fair share between projects: who goes first when they compete for shared capacity.

Each project's key is its *share of what was used* divided by its *share of the
entitlement* (its weight among the projects that have work waiting), as Slurm's classic
fair-share factor compares normalized usage U with normalized shares S. Usage has two
parts, each normalized to [0, 1]:

- history: GPU-seconds decayed with a half-life (``decay``), as Slurm's
  PriorityDecayHalfLife; the caller keeps it and passes it in the snapshot;
- now: the GPUs the project holds, updated as the cycle admits its jobs, so one cycle
  interleaves projects instead of serving one until it is sated.

A lower key goes first. A head job's wait lowers its project's key (``age_weight`` at
``max_age_s``), so a heavy user's work still starts eventually.

**GPU types are not alike.** A GPU-second of each type is weighed (``held_weighted``) by the
snapshot's ``usage_weights``: by default its price in the price book relative to the
cheapest type (so usage is counted in won), or a throughput weight the center configures
(``AXC_SCHED_USAGE_WEIGHTS``). Both parts of usage, and the capacity "now" is measured
against, are weighted alike, so a project cannot look light by running on the dearest
type: an hour of 8 H100s at 2.5 times the A100 price weighs what 20 A100-hours weigh
(docs/scheduling.md, "Fair share across GPU types").
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from axcenter.model.quota import QuotaNode
from axcenter.model.snapshot import SchedulerConfig

__all__ = ["FairShare", "accrue_usage", "decay", "held_weighted", "usage_weights", "weight_of"]


def decay(usage: float, elapsed_s: float, half_life_s: float) -> float:
    """``usage`` after ``elapsed_s`` seconds of exponential decay."""
    if elapsed_s <= 0:
        return usage
    return usage * math.pow(2.0, -elapsed_s / half_life_s)


def usage_weights(config: SchedulerConfig, prices: Mapping[str, int]) -> dict[str, float]:
    """What a GPU-second of each type weighs: the configured weights
    (``SchedulerConfig.usage_weights``), else each type's price (won per GPU-hour)
    relative to the cheapest priced type, so usage is counted in won. A type without a
    price weighs 1 (as the cheapest)."""
    if config.usage_weights:
        return dict(config.usage_weights)
    priced = {t: won for t, won in prices.items() if won > 0}
    if not priced:
        return {}
    cheapest = min(priced.values())
    return {t: won / cheapest for t, won in priced.items()}


def weight_of(weights: Mapping[str, float], gpu_type: str) -> float:
    """What a GPU-second of ``gpu_type`` weighs (1 for a type not named)."""
    return weights.get(gpu_type, 1.0)


def held_weighted(
    usage: Mapping[tuple[str, str], int], weights: Mapping[str, float]
) -> dict[str, float]:
    """Weighted GPUs held per project, from GPUs held by (project, GPU type)."""
    held: dict[str, float] = {}
    for (project_id, gpu_type), gpus in usage.items():
        if gpus:
            held[project_id] = held.get(project_id, 0.0) + gpus * weights.get(gpu_type, 1.0)
    return held


def accrue_usage(
    usage: dict[str, float], held: Mapping[str, float], elapsed_s: float, half_life_s: float
) -> None:
    """``usage`` (by project) decayed over ``elapsed_s``, plus the weighted GPUs ``held``
    over that interval, in place: the one step the live loop, the simulator and the
    forecast each take between cycles. The GPU-seconds held are decayed to the interval's
    midpoint: close enough for ordering, and exact in the limit of short cycles."""
    if elapsed_s <= 0:
        return
    factor = decay(1.0, elapsed_s, half_life_s)
    for project in usage:
        usage[project] *= factor
    mid = decay(1.0, elapsed_s / 2, half_life_s)
    for project, gpus in held.items():
        if gpus:
            usage[project] = usage.get(project, 0.0) + gpus * elapsed_s * mid


class FairShare:
    def __init__(
        self,
        usage: Mapping[str, float],
        projects: Mapping[str, QuotaNode],
        competing: list[str],
        capacity_gpus: float,
        config: SchedulerConfig,
    ) -> None:
        self._usage = usage
        self._total_usage = sum(usage.values()) or 1.0
        weights = {p: max(projects[p].weight if p in projects else 1.0, 1e-9) for p in competing}
        total_weight = sum(weights.values()) or 1.0
        self._share = {p: w / total_weight for p, w in weights.items()}
        self._capacity = max(capacity_gpus, 1)
        self._aging = bool(config.age_weight and config.max_age_s > 0)
        self._age_weight = config.age_weight
        self._max_age_s = config.max_age_s

    def key(self, project_id: str, held_gpus: float, head_wait_s: float) -> float:
        """``held_gpus`` and the capacity are weighted by GPU type (``held_weighted``)."""
        used = self._usage.get(project_id, 0.0) / self._total_usage + held_gpus / self._capacity
        share = self._share.get(project_id, 1.0)
        age = 0.0
        if self._aging:
            age = self._age_weight * min(1.0, max(0.0, head_wait_s) / self._max_age_s)
        return used / share - age
