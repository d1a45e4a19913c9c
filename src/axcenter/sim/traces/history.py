"""A center's own history, as ``axc export history`` writes it: the native format.

The export holds finished jobs that ran: ``submit`` is seconds since the first exported
job, ``duration`` the last attempt's run time (ended - started), ``tenant`` the project,
``user`` the user name and ``status`` the final state (succeeded, failed, cancelled,
timed_out). Replaying it asks "what if this history had met another policy or more
hardware", with the real projects as tenants.
"""

from __future__ import annotations

from pathlib import Path

from axcenter.sim.traces.native import read_frame, workload_from_frame
from axcenter.sim.workload import Workload

__all__ = ["read_history"]


def read_history(path: Path, *, limit: int | None = None) -> Workload:
    """The exported jobs of ``path`` (CSV or Parquet) as a workload."""
    frame = read_frame(path)
    notes = [
        f"axcenter history {path.name}: {frame.height} finished jobs; tenant = project, "
        "user = submitter, duration = last attempt's run time, status = final state"
    ]
    return workload_from_frame(frame, f"history-{path.stem}", notes, limit=limit)
