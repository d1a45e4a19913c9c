"""Rich renderings of API answers: a job's detail panel, an array's, the cluster view.
(Lists of jobs print without Rich: ``axcenter.cli.listing``.)

Functions take the plain dicts of ``axcenter.client`` and tolerate missing keys, so a
slightly older or newer server still renders instead of crashing the CLI.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from axcenter.cli.common import print_error, when
from axcenter.cli.durations import format_duration
from axcenter.cli.listing import (
    PIPE_WIDTH,
    STATE_COLORS,
    format_age,
    gpus_label,
    job_ref,
    parse_time,
    runtime_s,
)
from axcenter.cli.listing import text as _text

__all__ = [
    "PIPE_WIDTH",
    "STATE_STYLES",
    "cluster_view",
    "err_console",
    "format_age",
    "format_memory",
    "gpus_label",
    "job_panel",
    "job_ref",
    "out_console",
    "parse_time",
    "print_error",
    "runtime_s",
    "state_text",
]

Job = Mapping[str, Any]

STATE_STYLES: Mapping[str, str] = {
    state: f"bold {color}" if bold else color for state, (color, bold) in STATE_COLORS.items()
}

_NODE_STATE_STYLES: Mapping[str, str] = {"up": "green", "drain": "yellow", "down": "red"}


def out_console() -> Console:
    """A console on the current stdout (created per call so test runners can swap it)."""
    console = Console()
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(width=PIPE_WIDTH)
    return console


def err_console() -> Console:
    """A console on the current stderr, for messages that must not pollute stdout."""
    return Console(stderr=True)


def state_text(state: str | None) -> Text:
    """The job state in its colour."""
    value = state or "?"
    return Text(value, style=STATE_STYLES.get(value, ""))


def format_memory(mb: object) -> str:
    """Mebibytes as ``512M``, ``16G`` or ``1.5T``."""
    if not isinstance(mb, int | float):
        return "-"
    if mb >= 1024 * 1024:
        return f"{mb / (1024 * 1024):.3g}T"
    if mb >= 1024:
        return f"{mb / 1024:.3g}G"
    return f"{int(mb)}M"


def _table(title: str | None = None) -> Table:
    """A borderless table whose first column starts at the margin (easy to grep/cut)."""
    return Table(title=title, title_justify="left", box=None, header_style="bold", pad_edge=False)


def _placement(job: Job) -> str:
    parts = []
    for place in job.get("placement") or []:
        devices = ",".join(str(d) for d in place.get("devices", []))
        parts.append(f"{place.get('node', '?')}[{devices}]")
    return " ".join(parts) or "-"


def _time_line(job: Job, key: str, now: datetime) -> str:
    moment = parse_time(job.get(key))
    if moment is None:
        return "-"
    return f"{when(moment, seconds=True)} ({format_age(moment, now)})"


def job_panel(job: Job, now: datetime | None = None) -> RenderableType:
    """``axc show``: the job's spec, state and timing in a panel, then its events."""
    now = now or datetime.now(UTC)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")

    state = state_text(job.get("state"))
    if job.get("reason"):
        state.append(f"  ({job['reason']})", style="")
    limit = job.get("time_limit_s")
    run = runtime_s(job, now)
    env = job.get("env") or {}
    rows: list[tuple[str, str | Text]] = [
        ("state", state),
        ("project", _text(job.get("project"))),
        ("user", _text(job.get("user"))),
        ("command", shlex.join(str(a) for a in job.get("command") or [])),
        ("workdir", _text(job.get("workdir"))),
        ("env", " ".join(f"{k}={v}" for k, v in sorted(env.items())) or "-"),
        ("gpus", gpus_label(job)),
        ("cpus/node", _text(job.get("cpus_per_node"))),
        ("memory/node", format_memory(job.get("memory_mb_per_node"))),
        ("time limit", "-" if limit is None else format_duration(limit)),
        ("priority", _text(job.get("priority"))),
        ("placement", _placement(job)),
        ("submitted", _time_line(job, "submitted_at", now)),
        ("started", _time_line(job, "started_at", now)),
        ("ended", _time_line(job, "ended_at", now)),
        ("runtime", "-" if run is None else format_duration(run)),
        ("exit code", _text(job.get("exit_code"))),
        ("attempts", _text(job.get("attempts"))),
    ]
    if job.get("borrowed"):
        rows.append(("capacity", Text("borrowed (preemptible)", style="yellow")))
    if job.get("queue_position"):
        place = f"#{job['queue_position']} of {job.get('queue_length', '?')} waiting jobs"
        rows.append(("queue", place))
    if job.get("dependency"):
        rows.append(("dependency", str(job["dependency"])))
    if job.get("held"):
        rows.append(("held", Text("until released (axc release)", style="yellow")))
    if job.get("estimated_start"):
        rows.append(("estimated start", _time_line(job, "estimated_start", now)))
    if job.get("last_checkpoint_at"):
        rows.append(("last checkpoint", _time_line(job, "last_checkpoint_at", now)))
    for u in job.get("gpu_usage") or []:
        idle = int(u.get("idle_bp") or 0)
        line = (
            f"run {u.get('attempt')}: mean {u.get('util_mean_pct')}%, peak "
            f"{u.get('util_max_pct')}%, memory peak {int(u.get('memory_max_mib') or 0):,} MiB, "
            f"idle {idle / 100:g}% of {int(u.get('samples') or 0):,} samples"
        )
        rows.append(("GPU use", Text(line, style="yellow" if idle >= 9000 else "")))
    if job.get("idempotency_key"):
        rows.append(("idempotency key", str(job["idempotency_key"])))
    if job.get("output") == "discard":
        rows.append(("output", Text("discarded (no log)", style="dim")))
    for key, label in (("output_path", "output"), ("error_path", "error")):
        if job.get(key):
            rows.append((label, str(job[key])))
    if job.get("array_id") is not None:
        rows.insert(1, ("array task", f"{job_ref(job)} (index {job.get('array_index')})"))
    for key, value in rows:
        grid.add_row(key, value)

    name = job.get("name")
    title = f"[bold]{escape(str(job.get('id', '?')))}[/]" + (f"  {escape(name)}" if name else "")
    parts: list[RenderableType] = [Panel(grid, title=title, title_align="left", expand=False)]

    events = job.get("events") or []
    if events:
        table = _table("events")
        table.add_column("AT", no_wrap=True)
        table.add_column("FROM", no_wrap=True)
        table.add_column("TO", no_wrap=True)
        table.add_column("REASON", overflow="fold")
        for event in events:
            moment = parse_time(event.get("at"))
            table.add_row(
                when(moment, seconds=True),
                state_text(event.get("from_state")) if event.get("from_state") else Text("-"),
                state_text(event.get("to_state")),
                _text(event.get("reason")),
            )
        parts.append(table)
    steps = job.get("steps") or []
    if steps:
        parts.append(_steps_table(steps, now))
    return Group(*parts)


def _steps_table(steps: list[Mapping[str, Any]], now: datetime) -> RenderableType:
    """The steps run in the job's allocation (``axc srun``), as sacct lists them."""
    table = _table("steps")
    for column in ("STEP", "STATE", "EXIT", "ELAPSED", "STARTED", "USER"):
        table.add_column(column, no_wrap=True)
    table.add_column("COMMAND", overflow="fold")
    for step in steps:
        started, ended = parse_time(step.get("started_at")), parse_time(step.get("ended_at"))
        elapsed = None if started is None else ((ended or now) - started).total_seconds()
        table.add_row(
            str(step.get("id")),
            state_text(step.get("state")),
            _text(step.get("exit_code")),
            "-" if elapsed is None else format_duration(max(0, round(elapsed))),
            "-" if started is None else f"{started:%Y-%m-%d %H:%M:%S}",
            _text(step.get("user")),
            shlex.join(str(a) for a in step.get("command") or []),
        )
    return table


def _busy(device: Mapping[str, Any]) -> bool:
    """Whether a device is held: the server's ``busy`` flag, else whether it names a job."""
    busy = device.get("busy")
    return bool(device.get("job_id")) if busy is None else bool(busy)


def cluster_view(cluster: Mapping[str, Any]) -> RenderableType:
    """``axc cluster``: nodes, then who holds each device, then a summary line."""
    nodes = cluster.get("nodes") or []
    node_table = _table("nodes")
    node_table.add_column("NODE", overflow="fold")
    node_table.add_column("TYPE", no_wrap=True)
    node_table.add_column("KIND", no_wrap=True)
    node_table.add_column("STATE", no_wrap=True)
    node_table.add_column("GPUS USED", justify="right", no_wrap=True)
    node_table.add_column("CPUS", justify="right", no_wrap=True)
    node_table.add_column("MEMORY", justify="right", no_wrap=True)

    device_table = _table("devices")
    device_table.add_column("NODE", overflow="fold")
    device_table.add_column("GPU", justify="right", no_wrap=True)
    device_table.add_column("JOB", overflow="fold")
    device_table.add_column("USER", overflow="fold")
    device_table.add_column("PROJECT", overflow="fold")

    for node in nodes:
        name = _text(node.get("name") or node.get("id"))
        devices = node.get("devices") or []
        used = sum(1 for d in devices if _busy(d))
        total = node.get("gpu_count", len(devices))
        state = str(node.get("state", "?"))
        node_table.add_row(
            name,
            _text(node.get("gpu_type")),
            "logical" if node.get("logical") else "physical",
            Text(state, style=_NODE_STATE_STYLES.get(state, "")),
            f"{used}/{total}",
            _text(node.get("cpus")),
            format_memory(node.get("memory_mb")),
        )
        for device in devices:
            busy = _busy(device)
            # A device held by another tenant's job is busy with no job id shown.
            job: str | Text = _text(device.get("job_id")) if device.get("job_id") else "busy"
            device_table.add_row(
                name,
                _text(device.get("index")),
                job if busy else Text("free", style="green"),
                _text(device.get("user")) if busy else "",
                _text(device.get("project")) if busy else "",
            )

    summary = cluster.get("summary") or {}
    line = Text.assemble(
        ("GPUs ", "bold"),
        f"{summary.get('gpus_used', '?')}/{summary.get('gpus', '?')} used",
        "   ",
        ("running ", "bold"),
        str(summary.get("running_jobs", "?")),
        "   ",
        ("pending ", "bold"),
        str(summary.get("pending_jobs", "?")),
    )
    if summary.get("single_user"):
        line.append_text(
            Text.assemble(
                "   ",
                ("single-user mode", "bold yellow"),
                f": every job runs as the service's account, only {summary['single_user']}'s",
            )
        )
    if not nodes:
        return Group(Text("no nodes registered"), line)
    return Group(node_table, Text(""), device_table, Text(""), line)


def array_panel(view: Job) -> RenderableType:
    """``axc show arr_…``: an array's tasks per state."""
    table = Table(box=None, show_header=True)
    table.add_column("state")
    table.add_column("tasks", justify="right")
    for state, count in sorted(view.get("states", {}).items()):
        table.add_row(state_text(state), str(count))
    title = (
        f"[bold]{escape(str(view.get('array_id')))}[/]  {view.get('tasks')} tasks, "
        f"indices {view.get('first_index')}-{view.get('last_index')}"
    )
    return Panel(table, title=title, title_align="left")
