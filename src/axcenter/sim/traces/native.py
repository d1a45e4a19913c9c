"""The native trace format, and the column table every reader builds on.

One row per job, CSV or Parquet, with these columns (the first four are required)::

    id,submit,duration,gpus_per_node,nodes,gpu_types,user,tenant,status,time_limit,priority

``submit`` and ``duration`` are seconds (``submit`` from any origin: it is kept as
written), ``gpu_types`` is the accepted GPU types joined by ``|`` (empty: any),
``time_limit`` is seconds or empty, ``priority`` an integer (negative: a low class).
Two optional columns, ``cpus_per_node`` and ``memory_mb_per_node``, are written too and
read when present. ``axc export history`` writes this format, so a center's own history
replays like any trace.

Every reader (OpenB, ITP, Philly, native) first builds a polars frame with these columns
and then calls ``workload_from_frame``, so sorting, ``limit`` and the (bulk, hence
garbage-collector-free) creation of ``TraceJob`` objects live in one place.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from axcenter.sim.workload import TraceJob, Workload

__all__ = [
    "COLUMNS",
    "OPTIONAL_COLUMNS",
    "SCHEMA",
    "TraceError",
    "frame_from_jobs",
    "jobs_from_frame",
    "read_native",
    "split_gpus",
    "workload_from_frame",
    "write_native",
]

#: The native columns, in file order.
COLUMNS = (
    "id",
    "submit",
    "duration",
    "gpus_per_node",
    "nodes",
    "gpu_types",
    "user",
    "tenant",
    "status",
    "time_limit",
    "priority",
)
OPTIONAL_COLUMNS = ("cpus_per_node", "memory_mb_per_node")
REQUIRED = ("id", "submit", "duration", "gpus_per_node")

SCHEMA: dict[str, type[pl.DataType]] = {
    "id": pl.String,
    "submit": pl.Float64,
    "duration": pl.Float64,
    "gpus_per_node": pl.Int64,
    "nodes": pl.Int64,
    "gpu_types": pl.String,
    "user": pl.String,
    "tenant": pl.String,
    "status": pl.String,
    "time_limit": pl.Float64,
    "priority": pl.Int64,
    "cpus_per_node": pl.Int64,
    "memory_mb_per_node": pl.Int64,
}

#: What an absent optional column means.
DEFAULTS: dict[str, object] = {
    "nodes": 1,
    "gpu_types": "",
    "user": "",
    "tenant": "default",
    "status": "unknown",
    "time_limit": None,
    "priority": 0,
    "cpus_per_node": 1,
    "memory_mb_per_node": 1024,
}


class TraceError(ValueError):
    """A trace cannot be read: the message names the file and what is wrong."""


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while creating millions of small objects.

    None of them can form a cycle, yet each generation-0 collection would scan the
    growing list: disabling it halves the time to build a 1M-job workload.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _types(text: str | None, cache: dict[str | None, tuple[str, ...]]) -> tuple[str, ...]:
    found = cache.get(text)
    if found is None:
        found = tuple(sorted({t.strip() for t in (text or "").split("|") if t.strip()}))
        cache[text] = found
    return found


def _complete(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with every native column, defaults filled in, in the native dtypes."""
    exprs = []
    for name in (*COLUMNS, *OPTIONAL_COLUMNS):
        dtype = SCHEMA[name]
        if name in frame.columns:
            col = pl.col(name).cast(dtype)
            default = DEFAULTS.get(name)
            if default is not None:
                col = col.fill_null(pl.lit(default, dtype=dtype))
            exprs.append(col.alias(name))
        else:
            exprs.append(pl.lit(DEFAULTS[name], dtype=dtype).alias(name))
    return frame.select(exprs)


def jobs_from_frame(frame: pl.DataFrame) -> list[TraceJob]:
    """``TraceJob`` objects from a frame in the native columns, in its row order."""
    frame = _complete(frame)
    cache: dict[str | None, tuple[str, ...]] = {}
    types = [_types(t, cache) for t in frame["gpu_types"].to_list()]
    columns = [frame[name].to_list() for name in COLUMNS]
    columns[COLUMNS.index("gpu_types")] = types
    extra = [frame[name].to_list() for name in OPTIONAL_COLUMNS]
    with _no_gc():
        return list(map(TraceJob, *columns, *extra))


def workload_from_frame(
    frame: pl.DataFrame,
    name: str,
    notes: Sequence[str],
    *,
    limit: int | None = None,
) -> Workload:
    """Sort by submit time (ties by file order), keep the first ``limit``, build jobs.

    Rows with a null or non-positive duration, or a null submit time, are dropped and
    counted in the notes: a replay needs both.
    """
    notes = list(notes)
    before = frame.height
    frame = frame.filter(
        pl.col("submit").is_not_null()
        & pl.col("duration").is_not_null()
        & (pl.col("duration") > 0)
        & pl.col("gpus_per_node").is_not_null()
        & (pl.col("gpus_per_node") >= 0)
    )
    if frame.height < before:
        notes.append(
            f"{before - frame.height} rows without a submit time or a positive duration dropped"
        )
    frame = frame.sort("submit", maintain_order=True)
    if limit is not None and frame.height > limit:
        notes.append(f"limited to the first {limit} of {frame.height} jobs by submit time")
        frame = frame.head(limit)
    return Workload(name=name, jobs=jobs_from_frame(frame), notes=tuple(notes))


def frame_from_jobs(jobs: Sequence[TraceJob]) -> pl.DataFrame:
    """The native table of ``jobs`` (for writing, or for vectorized statistics)."""
    data: dict[str, list[object]] = {
        "id": [j.id for j in jobs],
        "submit": [j.submit for j in jobs],
        "duration": [j.duration for j in jobs],
        "gpus_per_node": [j.gpus_per_node for j in jobs],
        "nodes": [j.nodes for j in jobs],
        "gpu_types": ["|".join(j.gpu_types) for j in jobs],
        "user": [j.user for j in jobs],
        "tenant": [j.tenant for j in jobs],
        "status": [j.status for j in jobs],
        "time_limit": [j.time_limit for j in jobs],
        "priority": [j.priority for j in jobs],
        "cpus_per_node": [j.cpus_per_node for j in jobs],
        "memory_mb_per_node": [j.memory_mb_per_node for j in jobs],
    }
    return pl.DataFrame(data, schema=SCHEMA)


def write_native(workload: Workload | Sequence[TraceJob], path: Path) -> Path:
    """Write jobs as Parquet (``.parquet``) or CSV (anything else); returns ``path``."""
    jobs = workload.jobs if isinstance(workload, Workload) else workload
    frame = frame_from_jobs(jobs)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.write_parquet(path)
    else:
        frame.write_csv(path)
    return path


def read_frame(path: Path) -> pl.DataFrame:
    """The raw native table of a CSV or Parquet file; refuses missing required columns."""
    if not path.is_file():
        raise TraceError(f"{path}: no such file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pl.read_parquet(path)
        else:
            present = pl.read_csv(path, n_rows=0).columns
            frame = pl.read_csv(
                path, schema_overrides={k: v for k, v in SCHEMA.items() if k in present}
            )
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise TraceError(f"{path}: not a readable native trace: {exc}") from exc
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise TraceError(
            f"{path}: missing column(s) {', '.join(missing)} (native format: {','.join(COLUMNS)})"
        )
    return frame


def read_native(path: Path, *, limit: int | None = None, name: str | None = None) -> Workload:
    """A workload from a native CSV or Parquet file (``submit`` kept as written)."""
    frame = read_frame(path)
    notes = [f"native trace {path.name}: {frame.height} rows, tenants and types as recorded"]
    return workload_from_frame(frame, name or path.stem, notes, limit=limit)


def split_gpus(
    num_gpu: npt.NDArray[np.int64], per_node: int = 8
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int]:
    """Shape ``num_gpu`` GPUs into ``(gpus_per_node, nodes)``; also count uneven splits.

    Up to ``per_node`` GPUs: one node. Above: ``ceil(g / per_node)`` full nodes when that
    divides ``g`` evenly (16 -> 2x8); otherwise the fewest nodes, at least that many,
    that share ``g`` evenly (12 -> 2x6, 20 -> 4x5), so the job keeps its GPU count and
    stays a gang of equal parts, as the scheduler requires.
    """
    gpus = np.asarray(num_gpu, dtype=np.int64)
    values, inverse = np.unique(gpus, return_inverse=True)
    per = np.empty_like(values)
    count = np.empty_like(values)
    for i, g in enumerate(values.tolist()):
        if g <= per_node:
            per[i], count[i] = g, 1
            continue
        n = -(-g // per_node)
        while g % n:
            n += 1
        per[i], count[i] = g // n, n
    uneven = int(np.count_nonzero((gpus > per_node) & (gpus % per_node != 0)))
    return per[inverse].reshape(gpus.shape), count[inverse].reshape(gpus.shape), uneven
