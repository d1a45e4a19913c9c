"""Synthetic traces drawn from a real one, and bigger centers to run them on.

``synthesize`` answers "what if this center had N times the jobs": it draws each job as
a whole from the base trace (size, duration, GPU types, tenant, user and priority
together, so that e.g. big jobs keep their own durations and tenants their own mix) and
draws the gaps between arrivals from the base's inter-arrival times, divided by
``rate_scale``. Everything comes from one seeded NumPy generator, so a base, a job count
and a seed always give the same trace; the work is vectorized and one million jobs take
a few seconds, most of it creating the ``TraceJob`` objects at the end.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from axcenter.sim.cluster import ClusterSpec
from axcenter.sim.workload import TraceJob, Workload

__all__ = ["scale_cluster", "synthesize", "zipf_weights"]


def zipf_weights(count: int) -> npt.NDArray[np.float64]:
    """Weights 1, 1/2, ..., 1/count, normalised: a few big tenants and a long tail."""
    weights: npt.NDArray[np.float64] = 1.0 / np.arange(1, count + 1, dtype=np.float64)
    normalised: npt.NDArray[np.float64] = weights / weights.sum()
    return normalised


def _column(values: list[Any], dtype: Any = object) -> npt.NDArray[Any]:
    array = np.empty(len(values), dtype=dtype)
    array[:] = values
    return array


def _retype(
    types: tuple[str, ...], mapping: Mapping[str, str], cache: dict[tuple[str, ...], Any]
) -> tuple[str, ...]:
    if types not in cache:
        renamed = {mapping.get(t, t) for t in types}
        cache[types] = tuple(sorted(t for t in renamed if t))
    found: tuple[str, ...] = cache[types]
    return found


def synthesize(
    base: Workload,
    jobs: int,
    seed: int,
    *,
    rate_scale: float = 1.0,
    tenants: int | None = None,
    gpu_types: Mapping[str, str] | None = None,
) -> Workload:
    """``jobs`` jobs with the base trace's distributions; see the module doc.

    ``tenants``: replace the base tenants by this many (``t0`` ...), drawn with weights
    1, 1/2, 1/3 ... (the user is then the tenant). ``gpu_types``: rename accepted GPU
    types (e.g. ``{"V100M32": "A100"}`` to replay OpenB's demand on another fleet); a
    type renamed to ``""`` is dropped, and a job left with none accepts any type.
    """
    if jobs <= 0:
        raise ValueError("jobs must be positive")
    if rate_scale <= 0:
        raise ValueError("rate_scale must be positive")
    source = list(base.jobs)
    if not source:
        raise ValueError(f"the base trace {base.name!r} has no jobs to draw from")
    rng = np.random.default_rng(seed)
    submit = np.fromiter((j.submit for j in source), dtype=np.float64, count=len(source))
    gaps = np.diff(np.sort(submit))
    if gaps.size == 0:
        gaps = np.ones(1)
    arrivals = np.empty(jobs, dtype=np.float64)
    arrivals[0] = 0.0
    np.cumsum(rng.choice(gaps, size=jobs - 1) / rate_scale, out=arrivals[1:])
    rows = rng.integers(0, len(source), size=jobs)

    def pick(values: list[Any], dtype: Any = object) -> list[Any]:
        picked: list[Any] = _column(values, dtype)[rows].tolist()
        return picked

    types = [j.gpu_types for j in source]
    if gpu_types:
        cache: dict[tuple[str, ...], Any] = {}
        types = [_retype(t, gpu_types, cache) for t in types]
    if tenants:
        names = _column([f"t{i}" for i in range(tenants)])
        drawn = names[rng.choice(tenants, size=jobs, p=zipf_weights(tenants))].tolist()
        tenant_col, user_col = drawn, drawn
    else:
        tenant_col = pick([j.tenant for j in source])
        user_col = pick([j.user for j in source])
    width = len(str(jobs - 1))
    columns = (
        list(map(f"s%0{width}d".__mod__, range(jobs))),
        arrivals.tolist(),
        pick([j.duration for j in source], np.float64),
        pick([j.gpus_per_node for j in source], np.int64),
        pick([j.nodes for j in source], np.int64),
        pick(types),
        user_col,
        tenant_col,
        pick([j.status for j in source]),
        pick([j.time_limit for j in source]),
        pick([j.priority for j in source], np.int64),
        pick([j.cpus_per_node for j in source], np.int64),
        pick([j.memory_mb_per_node for j in source], np.int64),
    )
    enabled = gc.isenabled()
    gc.disable()  # millions of acyclic objects: see traces.native._no_gc
    try:
        made = list(map(TraceJob, *columns))
    finally:
        if enabled:
            gc.enable()
    notes = [
        *base.notes,
        f"synthetic: {jobs} jobs drawn (seed {seed}) from {base.name} ({len(source)} jobs): "
        "each job's size, duration, types, tenant and priority taken together from one "
        f"base job; inter-arrival gaps drawn from the base's, divided by {rate_scale:g}",
    ]
    if tenants:
        notes.append(f"tenants replaced by {tenants} (t0..) drawn with weights 1, 1/2, ...")
    if gpu_types:
        notes.append(f"GPU types renamed: {dict(gpu_types)}")
    return Workload(name=f"synth-{base.name}-{jobs}", jobs=made, notes=tuple(notes))


def scale_cluster(cluster: ClusterSpec, factor: float) -> ClusterSpec:
    """The same center with every node group's count multiplied by ``factor``.

    Counts are rounded, and a group that had nodes keeps at least one, so every GPU type
    (and every job that needs one) is still there.
    """
    if factor <= 0:
        raise ValueError("factor must be positive")
    groups = [
        g.model_copy(update={"count": max(1, round(g.count * factor)) if g.count else 0})
        for g in cluster.node_groups
    ]
    return cluster.model_copy(update={"name": f"{cluster.name}-x{factor:g}", "node_groups": groups})
