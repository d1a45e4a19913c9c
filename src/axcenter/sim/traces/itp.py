"""Microsoft ITP 2021 (ElasticFlow traces): one CSV of jobs per GPU cluster.

Rules, all stated in the workload's notes:

- Several cluster files (a folder, or a list) are merged with one tenant per cluster
  file (``cluster01`` ...): each cluster served its own groups of users.
- One file alone has no tenant information, so jobs are assigned to ``tenants`` tenants
  (``t0`` ...) by a seeded draw with weights 1, 1/2, 1/3 ... (a few large tenants and a
  tail of small ones, as in shared centers; equal weights would make every tenant a
  copy of the others and fairness trivial).
- Jobs above 8 GPUs span 8-GPU nodes: ``ceil(g/8)`` nodes of 8 (all ITP sizes are powers
  of two; an uneven size would get the fewest nodes that share it evenly).
- No GPU type (jobs accept any), no status (``unknown``), no user: the user is the
  tenant. Submit times are rebased so the first job is at 0 (every file counts from
  the same trace start, so merged clusters stay aligned).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from axcenter.sim.traces.native import TraceError, split_gpus, workload_from_frame
from axcenter.sim.workload import Workload

__all__ = ["DEFAULT_TENANTS", "ITP_COLUMNS", "cluster_files", "read_itp"]

ITP_COLUMNS = ("job_id", "submission_time", "duration", "num_gpu")
DEFAULT_TENANTS = 8
GPUS_PER_NODE = 8


def cluster_files(folder: Path) -> list[Path]:
    """The per-cluster CSVs of an ITP folder, in name order."""
    return sorted(p for p in folder.glob("cluster*.csv") if p.is_file())


def _read_one(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_csv(path, columns=list(ITP_COLUMNS))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise TraceError(f"{path}: not an ITP cluster file: {exc}") from exc
    return frame.with_columns(pl.lit(path.stem).alias("cluster"))


def read_itp(
    paths: Path | Sequence[Path],
    *,
    seed: int = 0,
    tenants: int | None = None,
    limit: int | None = None,
) -> Workload:
    """Jobs of one ITP cluster file, or of several merged (a folder means all of them)."""
    if isinstance(paths, Path):
        files = cluster_files(paths) if paths.is_dir() else [paths]
    else:
        files = list(paths)
    if not files:
        raise TraceError(f"{paths}: no ITP cluster*.csv files")
    frame = pl.concat([_read_one(p) for p in files], how="vertical_relaxed")
    names = ", ".join(p.stem for p in files)
    notes = [f"Microsoft ITP 2021 {names}: {frame.height} jobs"]
    if len(files) > 1 and tenants is None:
        tenant = pl.col("cluster")
        notes.append("tenant = cluster file (one tenant per ITP cluster)")
    else:
        count = max(1, tenants or DEFAULT_TENANTS)
        weights = 1.0 / np.arange(1, count + 1)
        rng = np.random.default_rng(seed)
        drawn = rng.choice(count, size=frame.height, p=weights / weights.sum())
        frame = frame.with_columns(pl.Series("drawn", [f"t{i}" for i in range(count)])[drawn])
        tenant = pl.col("drawn")
        notes.append(
            f"no tenants in the trace: jobs assigned to {count} tenants t0..t{count - 1} "
            f"by a seeded draw (seed {seed}) with weights 1, 1/2, ..., 1/{count}"
        )
    gpus_per_node, nodes, uneven = split_gpus(frame["num_gpu"].to_numpy())
    multi = int(np.count_nonzero(nodes > 1))
    notes.append(
        f"{multi} jobs above {GPUS_PER_NODE} GPUs span {GPUS_PER_NODE}-GPU nodes "
        f"(ceil(g/{GPUS_PER_NODE}) nodes); {uneven} uneven sizes split into the fewest "
        "equal parts"
    )
    notes.append("no GPU types (any type), status unknown, user = tenant, submit rebased to 0")
    origin = frame["submission_time"].min() if frame.height else 0
    out = frame.select(
        pl.col("job_id").cast(pl.String).alias("id"),
        (pl.col("submission_time") - pl.lit(origin)).cast(pl.Float64).alias("submit"),
        pl.col("duration").cast(pl.Float64),
        pl.Series("gpus_per_node", gpus_per_node),
        pl.Series("nodes", nodes),
        tenant.alias("user"),
        tenant.alias("tenant"),
    )
    name = f"itp-{files[0].stem}" if len(files) == 1 else f"itp-{len(files)}-clusters"
    return workload_from_frame(out, name, notes, limit=limit)
