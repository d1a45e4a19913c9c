"""Philly (Chronus MIX1 sample): a real multi-tenant label, used as is.

Rules, all stated in the workload's notes:

- tenant = ``user``, one of 11 Philly virtual clusters (which is what a Philly "user"
  column holds); the user is the same label.
- ``best_effort`` 1 -> priority -1 (the low class); strict jobs priority 0.
- ``num_gpu`` 0 jobs are dropped and counted: they take no GPU, and the simulator
  schedules GPUs.
- Jobs above 8 GPUs span 8-GPU nodes: ``ceil(g/8)`` nodes of 8 when that is even
  (16 -> 2x8, 32 -> 4x8); the few uneven sizes take the fewest nodes that share them
  evenly (12 -> 2x6, 20 -> 4x5), which keeps the GPU count.
- submit = ``submit_time`` rebased to 0; duration as recorded; no GPU type; status
  unknown. Model names, iterations and deadlines are synthetic and ignored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from axcenter.sim.traces.native import TraceError, split_gpus, workload_from_frame
from axcenter.sim.workload import Workload

__all__ = ["PHILLY_COLUMNS", "read_philly"]

PHILLY_COLUMNS = ("job_id", "user", "num_gpu", "submit_time", "duration", "best_effort")


def read_philly(path: Path, *, limit: int | None = None) -> Workload:
    """The GPU jobs of a Chronus-format Philly trace (``trace_job_Philly_*.csv``)."""
    try:
        raw = pl.read_csv(path, columns=list(PHILLY_COLUMNS))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise TraceError(f"{path}: not a Philly (Chronus) trace: {exc}") from exc
    notes = [f"Philly (Chronus {path.stem}): {raw.height} jobs"]
    frame = raw.filter(pl.col("num_gpu") > 0)
    if frame.height < raw.height:
        notes.append(f"{raw.height - frame.height} jobs with num_gpu 0 dropped")
    gpus_per_node, nodes, uneven = split_gpus(frame["num_gpu"].to_numpy())
    best_effort = int(frame["best_effort"].sum() or 0)
    notes.append(
        f"tenant = user (Philly virtual cluster); {best_effort} best-effort jobs priority -1"
    )
    notes.append(
        f"{int(np.count_nonzero(nodes > 1))} jobs above 8 GPUs span 8-GPU nodes; "
        f"{uneven} uneven sizes (12, 20) split into the fewest equal parts (2x6, 4x5)"
    )
    notes.append("no GPU types (any type), status unknown, submit rebased to 0")
    origin = frame["submit_time"].min() if frame.height else 0
    out = frame.select(
        pl.col("job_id").cast(pl.String).alias("id"),
        (pl.col("submit_time") - pl.lit(origin)).cast(pl.Float64).alias("submit"),
        pl.col("duration").cast(pl.Float64),
        pl.Series("gpus_per_node", gpus_per_node),
        pl.Series("nodes", nodes),
        pl.col("user").cast(pl.String),
        pl.col("user").cast(pl.String).alias("tenant"),
        pl.when(pl.col("best_effort") == 1).then(-1).otherwise(0).cast(pl.Int64).alias("priority"),
    )
    return workload_from_frame(
        out, f"philly-{path.stem.removeprefix('trace_job_Philly_')}", notes, limit=limit
    )
