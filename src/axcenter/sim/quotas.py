"""Quotas for traces that have none, from what each tenant actually used.

A replay of quota-based policies needs guaranteed quotas, and public traces do not
publish them. The rule here mirrors how a center sizes allocations from demand:

    nominal[tenant][T] = floor(share of type T's GPU-seconds used by tenant
                               x fraction x GPUs of type T in the cluster)

A job's GPU-seconds (GPUs x duration) are counted on the types it accepts that the
cluster has, split over them in proportion to their GPU counts (a job that accepts any
type is spread over the whole cluster by capacity). Jobs that accept no type the cluster
has count nowhere. With the default ``fraction`` 0.8, 80% of each type is guaranteed and
the remaining 20% (plus what flooring leaves over) is a shared pool that anyone borrows.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

import numpy as np
import numpy.typing as npt

from axcenter.sim.cluster import ClusterSpec
from axcenter.sim.workload import Workload

__all__ = ["QUOTA_RULE", "quotas_from_usage", "with_usage_quotas"]

QUOTA_RULE = (
    "quotas from usage: nominal quota of type T = floor(tenant's share of T's GPU-seconds "
    "x {pct:g}% x the cluster's GPUs of T); jobs accepting several types (or any) spread "
    "over them by capacity; the remaining {rest:g}% is a shared pool"
)


def _usage(
    workload: Workload, types: list[str], capacity: npt.NDArray[np.float64]
) -> dict[str, npt.NDArray[np.float64]]:
    """GPU-seconds per tenant and type (columns in ``types`` order)."""
    # Sum first by (tenant, accepted types): a handful of keys, so the spreading below
    # runs once per key instead of once per job.
    grouped: dict[tuple[str, tuple[str, ...]], float] = defaultdict(float)
    for job in workload.jobs:
        grouped[(job.tenant, job.gpu_types)] += job.gpus * job.duration
    index = {t: i for i, t in enumerate(types)}
    usage: dict[str, npt.NDArray[np.float64]] = {}
    for (tenant, accepted), seconds in grouped.items():
        mask = np.zeros(len(types), dtype=bool)
        if accepted:
            for t in accepted:
                if t in index:
                    mask[index[t]] = True
        else:
            mask[:] = True
        weights = np.where(mask, capacity, 0.0)
        if weights.sum() <= 0:
            continue
        row = usage.setdefault(tenant, np.zeros(len(types)))
        row += seconds * weights / weights.sum()
    return usage


def quotas_from_usage(
    workload: Workload, cluster: ClusterSpec, fraction: float = 0.8
) -> dict[str, dict[str, int]]:
    """Nominal quotas per tenant and GPU type by the module's rule (zeros left out)."""
    if not 0 <= fraction <= 1:
        raise ValueError("fraction must be between 0 and 1")
    by_type = cluster.gpus_by_type()
    types = sorted(t for t, n in by_type.items() if n > 0)
    capacity = np.array([by_type[t] for t in types], dtype=np.float64)
    usage = _usage(workload, types, capacity)
    totals = np.zeros(len(types))
    for row in usage.values():
        totals += row
    quotas: dict[str, dict[str, int]] = {}
    for tenant in sorted(usage):
        row = usage[tenant]
        entry: dict[str, int] = {}
        for i, t in enumerate(types):
            if totals[i] > 0:
                # a tiny epsilon so that exact shares (1/4 x 80) do not floor one below
                share = row[i] / totals[i] * fraction * capacity[i]
                nominal = math.floor(share + 1e-9)
                if nominal > 0:
                    entry[t] = nominal
        if entry:
            quotas[tenant] = entry
    return quotas


def with_usage_quotas(workload: Workload, cluster: ClusterSpec, fraction: float = 0.8) -> Workload:
    """The workload with quotas by the usage rule, unless it already has quotas."""
    if workload.quotas:
        return workload
    quotas = quotas_from_usage(workload, cluster, fraction)
    note = QUOTA_RULE.format(pct=fraction * 100, rest=(1 - fraction) * 100)
    return dataclasses.replace(workload, quotas=quotas, notes=(*workload.notes, note))
