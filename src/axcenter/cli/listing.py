"""Lists of jobs in plain columns (``axc jobs``, ``axc jobs --start``, one line per job
acted on), with the standard library alone.

``axc jobs`` is the command people run most, in loops and pipes: Rich's import and layout
cost it more than all the rest of the command for a page of 50 jobs
(``benchmarks/cli_start.py``), so it prints as ``squeue`` does: columns padded to their
widest cell, the free-text ones (NAME, REASON) cut with ``…`` so that each job stays on
one line within the terminal's width (``PIPE_WIDTH`` into a pipe or a file unless
``COLUMNS`` says otherwise). States are coloured on a terminal only (Click strips the
colours elsewhere). The helpers that describe a job here are shared with ``render``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import typer

from axcenter.cli.common import when
from axcenter.cli.durations import format_duration

__all__ = [
    "PIPE_WIDTH",
    "STATE_COLORS",
    "Column",
    "age",
    "format_age",
    "gpus_label",
    "job_ref",
    "jobs_table",
    "parse_time",
    "queue_table",
    "runtime_s",
    "state_line",
    "styled_state",
    "table",
    "terminal_width",
    "text",
]

Job = Mapping[str, Any]

#: Width used when stdout is not a terminal and COLUMNS is unset, so that piping a table
#: into grep or a file does not cut it at 80 columns.
PIPE_WIDTH = 200

#: (colour, bold) of each job state on a terminal
STATE_COLORS: Mapping[str, tuple[str, bool]] = {
    "pending": ("yellow", False),
    "admitted": ("cyan", False),
    "running": ("blue", True),
    "preempted": ("magenta", False),
    "succeeded": ("green", False),
    "failed": ("red", True),
    "cancelled": ("bright_black", False),
    "timed_out": ("red", False),
}


def terminal_width() -> int:
    """Columns available on stdout: ``COLUMNS``, else the terminal's, else ``PIPE_WIDTH``."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if sys.stdout.isatty():
            return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError):
        pass
    return PIPE_WIDTH


def styled_state(state: str | None) -> str:
    value = state or "?"
    color, bold = STATE_COLORS.get(value, ("", False))
    return typer.style(value, fg=color or None, bold=bold or None)


def parse_time(value: object) -> datetime | None:
    """An ISO-8601 timestamp from the API as an aware UTC datetime (naive means UTC)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def age(moment: datetime | None, now: datetime) -> str:
    return "-" if moment is None else format_duration((now - moment).total_seconds())


def format_age(moment: datetime | None, now: datetime) -> str:
    """How long ago ``moment`` was, compactly: ``42s ago``, ``3h05m ago``."""
    if moment is None:
        return "-"
    return f"{format_duration((now - moment).total_seconds())} ago"


def runtime_s(job: Job, now: datetime) -> float | None:
    """Seconds the job has run (until now if still running); ``None`` if it never started."""
    started = parse_time(job.get("started_at"))
    if started is None:
        return None
    ended = parse_time(job.get("ended_at")) or now
    return max(0.0, (ended - started).total_seconds())


def _gpu_type(job: Job) -> str:
    assigned = job.get("gpu_type")
    if assigned:
        return str(assigned)
    accepted = job.get("gpu_types") or []
    return "|".join(str(t) for t in accepted) if accepted else "any"


def gpus_label(job: Job, *, compact: bool = False) -> str:
    """GPUs per node and type (assigned, else accepted): ``2xH100``, ``1xany x2 nodes``
    (``1xany x2n`` when compact)."""
    per_node = int(job.get("gpus_per_node") or 0)
    nodes = int(job.get("nodes") or 1)
    label = f"{per_node}x{_gpu_type(job)}" if per_node else "cpu"
    if nodes <= 1:
        return label
    return f"{label} x{nodes}n" if compact else f"{label} x{nodes} nodes"


def text(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def job_ref(job: Job) -> str:
    """How a job is named in tables: its id, or ``ARRAY_INDEX`` for an array's task (as
    ``squeue`` writes ``JOBID_IDX``; every command takes both)."""
    if job.get("array_id") is not None and job.get("array_index") is not None:
        return f"{job['array_id']}_{job['array_index']}"
    return text(job.get("id"))


def state_line(job: Job, fallback_id: str, *, reason: bool = False) -> str:
    """``job_…: state``, or ``job_…: state (reason)``: what a command did to one job."""
    line = f"{job.get('id', fallback_id)}: {styled_state(job.get('state'))}"
    return f"{line} ({job['reason']})" if reason and job.get("reason") else line


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    right: bool = False  # aligned right (numbers, durations)
    max_width: int | None = None  # cut beyond this, whatever the room
    min_width: int = 0  # when a line is too wide, cut down to this...
    shrink: int = 0  # ...the columns of highest ``shrink`` first (0: never)
    state: bool = False  # a job state: coloured on a terminal


def _styled(padded: str, cell: str, style: Callable[[str], str]) -> str:
    """``padded`` with ``style`` applied to ``cell`` only, not to its padding."""
    at = padded.index(cell)
    return padded[:at] + style(cell) + padded[at + len(cell) :]


def _bold(cell: str) -> str:
    return typer.style(cell, bold=True)


def table(columns: Sequence[Column], rows: Iterable[Sequence[str]], width: int) -> str:
    """Rows under their headers, each column as wide as its widest cell; in a line wider
    than ``width`` the shrinkable columns are cut (``Column.shrink``)."""
    body = [list(row) for row in rows]
    widths = [
        min(max([len(c.header), *(len(r[i]) for r in body)]), c.max_width or 1 << 30)
        for i, c in enumerate(columns)
    ]
    gap = 2 if width >= 120 else 1
    excess = sum(widths) + gap * (len(columns) - 1) - width
    for i in sorted(
        (i for i, c in enumerate(columns) if c.shrink), key=lambda i: -columns[i].shrink
    ):
        cut = max(0, min(excess, widths[i] - max(columns[i].min_width, 1)))
        widths[i] -= cut
        excess -= cut
    lines = []
    for n, row in enumerate([[c.header for c in columns], *body]):
        cells = []
        for i, (column, whole) in enumerate(zip(columns, row, strict=True)):
            cell = whole if len(whole) <= widths[i] else whole[: widths[i] - 1] + "…"
            padded = cell.rjust(widths[i]) if column.right else cell.ljust(widths[i])
            if cell and n == 0:
                padded = _styled(padded, cell, _bold)
            elif cell and column.state:
                padded = _styled(padded, cell, styled_state)
            cells.append(padded)
        lines.append((" " * gap).join(cells).rstrip())
    return "\n".join(lines)


_JOB_COLUMNS = (
    Column("ID"),
    Column("NAME", max_width=24, min_width=4, shrink=3),
    Column("PROJECT", min_width=4, shrink=2),
    Column("USER", min_width=4, shrink=1),
    Column("STATE", state=True),
    Column("GPUS"),
    Column("REASON", max_width=40, min_width=6, shrink=4),
    Column("AGE", right=True),
    Column("RUNTIME", right=True),
)


def jobs_table(jobs: Iterable[Job], width: int, now: datetime | None = None) -> str:
    """The ``axc jobs`` table, newest first as the server sorts them."""
    now = now or datetime.now(UTC)
    rows = []
    for job in jobs:
        run = runtime_s(job, now)
        rows.append(
            (
                job_ref(job),
                text(job.get("name")),
                text(job.get("project")),
                text(job.get("user")),
                text(job.get("state")),
                gpus_label(job, compact=True),
                text(job.get("reason")),
                age(parse_time(job.get("submitted_at")), now),
                "-" if run is None else format_duration(run),
            )
        )
    return table(_JOB_COLUMNS, rows, width)


_QUEUE_COLUMNS = (
    Column("POS", right=True),
    Column("ID"),
    Column("NAME", max_width=24, min_width=4, shrink=3),
    Column("PROJECT", min_width=4, shrink=2),
    Column("USER", min_width=4, shrink=1),
    Column("GPUS"),
    Column("PRIO", right=True),
    Column("REASON", max_width=40, min_width=6, shrink=4),
    Column("START"),
)


def queue_table(items: Iterable[Job], width: int, now: datetime | None = None) -> str:
    """``axc jobs --start``: pending jobs in scheduling order, each with why it waits and,
    when it should start (``squeue --start``: the scheduler run forward over the queue
    with the time limits), in the center's zone."""
    now = now or datetime.now(UTC)
    rows = []
    for item in items:
        start = parse_time(item.get("estimated_start"))
        rows.append(
            (
                text(item.get("position")),
                text(item.get("id")),
                text(item.get("name")),
                text(item.get("project")),
                text(item.get("user")),
                gpus_label(item, compact=True),
                text(item.get("priority")),
                text(item.get("reason")),
                "-" if start is None else f"{when(start)} (in {age(now, start)})",
            )
        )
    return table(_QUEUE_COLUMNS, rows, width)
