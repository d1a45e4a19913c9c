"""Scheduling policy commands: ``quota``, ``cohort``, ``project limits``, ``reservation``.

Operators change policy; every user may list it (quotas of the projects they see,
cohorts and reservations with other tenants' projects hidden). The server checks the
rules; these commands only parse, send and render.

Times are ISO-8601 (``2025-03-01T09:00``, ``2025-03-01T09:00+09:00``); a time without a
zone is UTC, and times are printed in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from axcenter.cli import render
from axcenter.cli.common import connect, new_app, print_json, shifted
from axcenter.cli.durations import parse_duration

__all__ = [
    "cohort_app",
    "cohorts_table",
    "parse_node",
    "parse_quota",
    "parse_when",
    "project_app",
    "quota_app",
    "quotas_table",
    "reservation_app",
    "reservations_table",
]

quota_app = new_app(
    help="GPU quotas of projects: guaranteed (nominal), borrowing and lending limits.",
    no_args_is_help=True,
)
cohort_app = new_app(
    help="Cohorts: groups of projects that lend idle quota to each other.",
    no_args_is_help=True,
)
project_app = new_app(help="Projects: members, allocations, limits.", no_args_is_help=True)
reservation_app = new_app(
    help="Reservations: devices held for one project during a time window.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]

_QUOTA = re.compile(r"^(?P<type>[A-Za-z0-9][A-Za-z0-9._-]*)=(?P<n>\d+)$")
_NODE = re.compile(r"^(?P<node>.+?)(?::(?P<devices>\d+(?:,\d+)*))?$")


# -- parsers --------------------------------------------------------------------------------


def parse_quota(text: str) -> tuple[str, int]:
    """``H100=4`` as ``("H100", 4)``."""
    match = _QUOTA.fullmatch(text.strip())
    if not match:
        raise typer.BadParameter(f"{text!r}: use TYPE=N, e.g. H100=4", param_hint="'TYPE=N'")
    return match["type"], int(match["n"])


def parse_node(text: str) -> dict[str, Any]:
    """``gpu-1`` (every device) or ``gpu-1:0,1`` (those devices) as an API node entry."""
    match = _NODE.fullmatch(text.strip())
    if not match or not match["node"]:
        raise typer.BadParameter(f"{text!r}: use NODE or NODE:0,1", param_hint="'--node'")
    devices = match["devices"]
    return {
        "node": match["node"],
        "devices": sorted({int(d) for d in devices.split(",")}) if devices else None,
    }


def parse_when(text: str, option: str) -> datetime | None:
    """An ISO-8601 time as aware UTC (no zone: UTC); ``now`` is ``None``."""
    value = text.strip()
    if value.lower() == "now":
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: use ISO-8601, e.g. 2025-03-01T09:00 (UTC) or 2025-03-01T09:00+09:00",
            param_hint=f"'{option}'",
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# -- rendering ------------------------------------------------------------------------------


def _text(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def _limit(value: object) -> str:
    return "none" if value is None else str(value)


def _table() -> Table:
    return Table(box=None, header_style="bold", pad_edge=False)


def _utc(value: object) -> str:
    moment = render.parse_time(value)
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def quotas_table(quotas: Sequence[Mapping[str, Any]]) -> Table:
    """``axc quota list``: one row per project and GPU type, set by an operator or derived
    from the project's grant (FROM); borrowers marked."""
    table = _table()
    table.add_column("PROJECT", overflow="fold")
    table.add_column("TYPE", no_wrap=True)
    table.add_column("NOMINAL", justify="right", no_wrap=True)
    table.add_column("BORROW LIMIT", justify="right", no_wrap=True)
    table.add_column("LEND LIMIT", justify="right", no_wrap=True)
    table.add_column("IN USE", justify="right", no_wrap=True)
    table.add_column("FROM", no_wrap=True)
    table.add_column("", no_wrap=True)
    for q in quotas:
        table.add_row(
            _text(q.get("project")),
            _text(q.get("gpu_type")),
            _text(q.get("nominal")),
            _limit(q.get("borrowing_limit")),
            _limit(q.get("lending_limit")),
            _text(q.get("in_use")),
            _text(q.get("source", "set")),
            Text("borrowing", style="yellow") if q.get("borrowing") else "",
        )
    return table


def cohorts_table(cohorts: Sequence[Mapping[str, Any]]) -> Table:
    table = _table()
    table.add_column("COHORT", overflow="fold")
    table.add_column("PARENT", overflow="fold")
    table.add_column("COHORTS", overflow="fold")
    table.add_column("PROJECTS", overflow="fold")
    for c in cohorts:
        table.add_row(
            _text(c.get("name")),
            _text(c.get("parent")) if c.get("parent") else "(root)",
            ", ".join(c.get("children") or []) or "-",
            ", ".join(c.get("projects") or []) or "-",
        )
    return table


def _nodes(reservation: Mapping[str, Any]) -> str:
    parts = []
    for n in reservation.get("nodes") or []:
        devices = ",".join(str(d) for d in n.get("devices") or [])
        parts.append(f"{n.get('node', '?')}[{devices}]")
    return " ".join(parts) or "-"


def _window_state(reservation: Mapping[str, Any], now: datetime) -> Text:
    if reservation.get("active"):
        return Text("active", style="bold blue")
    ends = render.parse_time(reservation.get("ends_at"))
    if ends is not None and ends <= now:
        return Text("ended", style="bright_black")
    return Text("upcoming", style="cyan")


def reservations_table(
    reservations: Sequence[Mapping[str, Any]], now: datetime | None = None
) -> Table:
    now = now or datetime.now(UTC)
    table = _table()
    table.add_column("NAME", overflow="fold")
    table.add_column("PROJECT", overflow="fold")
    table.add_column("STATE", no_wrap=True)
    table.add_column("START", no_wrap=True)
    table.add_column("END", no_wrap=True)
    table.add_column("DEVICES", overflow="fold")
    for r in reservations:
        table.add_row(
            _text(r.get("name")),
            _text(r.get("project")),
            _window_state(r, now),
            _utc(r.get("starts_at")),
            _utc(r.get("ends_at")),
            _nodes(r),
        )
    return table


def _say(message: str) -> None:
    render.out_console().print(message, soft_wrap=True, highlight=False)


def _project_line(p: Mapping[str, Any]) -> str:
    return (
        f"[bold]{escape(_text(p.get('name')))}[/]: cohort {escape(_text(p.get('cohort')))}, "
        f"weight {escape(_text(p.get('fair_share_weight')))}, "
        f"max running jobs {escape(_limit(p.get('max_running_jobs')))}, "
        f"max GPUs {escape(_limit(p.get('max_gpus')))}"
    )


# -- quota ----------------------------------------------------------------------------------


@quota_app.command("set")
def quota_set(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project name or prj_ id.")],
    quota: Annotated[str, typer.Argument(metavar="TYPE=N", help="GPU type and nominal GPUs.")],
    borrow_limit: Annotated[
        int | None,
        typer.Option("--borrow-limit", min=0, help="At most this many GPUs beyond nominal."),
    ] = None,
    lend_limit: Annotated[
        int | None,
        typer.Option("--lend-limit", min=0, help="Lend at most this many idle nominal GPUs."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Set a project's quota of one GPU type (replaces it; operators only)."""
    gpu_type, nominal = parse_quota(quota)
    with connect(ctx) as client:
        out = client.set_quota(project, gpu_type, nominal, borrow_limit, lend_limit)
    if as_json:
        print_json(out)
        return
    _say(
        f"[bold]{escape(_text(out.get('project')))}[/] {escape(_text(out.get('gpu_type')))}: "
        f"nominal {escape(_text(out.get('nominal')))}, "
        f"borrow limit {escape(_limit(out.get('borrowing_limit')))}, "
        f"lend limit {escape(_limit(out.get('lending_limit')))}"
    )


@quota_app.command("list")
def quota_list(
    ctx: typer.Context,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Only this project.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Quotas of the projects you can see, with the GPUs each holds now."""
    with connect(ctx) as client:
        quotas = client.list_quotas(project)
    if as_json:
        print_json(quotas)
    elif not quotas:
        _say("no quotas")
    else:
        render.out_console().print(quotas_table(quotas))


@quota_app.command("rm")
def quota_rm(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project name or prj_ id.")],
    gpu_type: Annotated[str, typer.Argument(metavar="TYPE", help="GPU type.")],
) -> None:
    """Remove a project's quota of one GPU type (its jobs of that type then borrow)."""
    with connect(ctx) as client:
        client.delete_quota(project, gpu_type)
    _say(f"removed the {escape(gpu_type)} quota of {escape(project)}")


# -- cohort ---------------------------------------------------------------------------------


@cohort_app.command("create")
def cohort_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Cohort name.")],
    parent: Annotated[
        str | None, typer.Option("--parent", help="Parent cohort (default: the root).")
    ] = None,
) -> None:
    """Create a cohort (operators only)."""
    with connect(ctx) as client:
        out = client.create_cohort(name, parent)
    where = f" in {escape(str(out['parent']))}" if out.get("parent") else ""
    _say(f"created cohort [bold]{escape(_text(out.get('name')))}[/]{where}")


@cohort_app.command("list")
def cohort_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Cohorts, their parents, and the projects in them that you can see."""
    with connect(ctx) as client:
        cohorts = client.list_cohorts()
    if as_json:
        print_json(cohorts)
    elif not cohorts:
        _say("no cohorts: every project sits under the center's root")
    else:
        render.out_console().print(cohorts_table(cohorts))


@cohort_app.command("rm")
def cohort_rm(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Cohort name.")]
) -> None:
    """Delete an empty cohort (operators only)."""
    with connect(ctx) as client:
        client.delete_cohort(name)
    _say(f"deleted cohort {escape(name)}")


@cohort_app.command("assign")
def cohort_assign(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project name or prj_ id.")],
    cohort: Annotated[str | None, typer.Argument(help="Cohort name.")] = None,
    none: Annotated[
        bool, typer.Option("--none", help="Take the project out of its cohort.")
    ] = False,
) -> None:
    """Put a project in a cohort, or with --none out of any (operators only)."""
    if (cohort is None) == (not none):
        raise typer.BadParameter("give a COHORT or --none, not both", param_hint="COHORT")
    with connect(ctx) as client:
        out = client.set_project_cohort(project, cohort)
    _say(_project_line(out))


@cohort_app.command("move")
def cohort_move(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Cohort name.")],
    parent: Annotated[str | None, typer.Option("--parent", help="New parent cohort.")] = None,
    root: Annotated[bool, typer.Option("--root", help="Move it under the root.")] = False,
) -> None:
    """Move a cohort under another one, or with --root to the top (operators only)."""
    if (parent is None) == (not root):
        raise typer.BadParameter("give --parent or --root, not both", param_hint="'--parent'")
    with connect(ctx) as client:
        out = client.move_cohort(name, parent)
    where = escape(str(out["parent"])) if out.get("parent") else "the root"
    _say(f"cohort [bold]{escape(_text(out.get('name')))}[/] is now in {where}")


# -- project --------------------------------------------------------------------------------


@project_app.command("limits")
def project_limits(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project name or prj_ id.")],
    weight: Annotated[
        float | None,
        typer.Option("--weight", help="Fair-share weight, more than 0 (default 1)."),
    ] = None,
    max_jobs: Annotated[
        int | None, typer.Option("--max-jobs", min=1, help="Cap on jobs running at once.")
    ] = None,
    max_gpus: Annotated[
        int | None, typer.Option("--max-gpus", min=1, help="Cap on GPUs held at once.")
    ] = None,
    clear_max_jobs: Annotated[
        bool, typer.Option("--clear-max-jobs", help="Remove the running-jobs cap.")
    ] = False,
    clear_max_gpus: Annotated[
        bool, typer.Option("--clear-max-gpus", help="Remove the GPU cap.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Show a project's scheduling settings, or change them (operators only).

    Settings not given keep their value; caps are removed only with --clear-*.
    """
    if max_jobs is not None and clear_max_jobs:
        raise typer.BadParameter(
            "--max-jobs and --clear-max-jobs together", param_hint="'--max-jobs'"
        )
    if max_gpus is not None and clear_max_gpus:
        raise typer.BadParameter(
            "--max-gpus and --clear-max-gpus together", param_hint="'--max-gpus'"
        )
    clear = [
        name
        for name, flag in (("max_running_jobs", clear_max_jobs), ("max_gpus", clear_max_gpus))
        if flag
    ]
    change = weight is not None or max_jobs is not None or max_gpus is not None or clear
    with connect(ctx) as client:
        if change:
            out = client.set_project_limits(project, weight, max_jobs, max_gpus, clear)
        else:
            out = client.get_project_limits(project)
    if as_json:
        print_json(out)
    else:
        _say(_project_line(out))


# -- reservation ----------------------------------------------------------------------------


@reservation_app.command("create")
def reservation_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Reservation name.")],
    project: Annotated[str, typer.Option("--project", "-p", help="Project it is for.")],
    node: Annotated[
        list[str],
        typer.Option(
            "--node",
            metavar="NODE[:DEVICES]",
            help="Node to reserve (repeatable); NODE:0,1 reserves only those devices.",
        ),
    ],
    start: Annotated[
        str, typer.Option("--start", metavar="ISO|now", help="Start (ISO-8601; no zone: UTC).")
    ] = "now",
    end: Annotated[
        str | None, typer.Option("--end", metavar="ISO", help="End (ISO-8601; no zone: UTC).")
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option("--duration", metavar="DURATION", help="Length instead of --end: 8h, 2d..."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Hold nodes (all their devices, or some) for a project (operators only)."""
    if (end is None) == (duration is None):
        raise typer.BadParameter("give --end or --duration (one of them)", param_hint="'--end'")
    starts_at = parse_when(start, "--start")
    if duration is not None:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="'--duration'") from None
        if seconds <= 0:
            raise typer.BadParameter("must be more than zero", param_hint="'--duration'")
        ends_at = shifted(starts_at or datetime.now(UTC), seconds, "--duration")
    else:
        parsed_end = parse_when(end or "", "--end")
        if parsed_end is None:
            raise typer.BadParameter("the end cannot be now", param_hint="'--end'")
        ends_at = parsed_end
    nodes = [parse_node(n) for n in node]
    with connect(ctx) as client:
        out = client.create_reservation(
            name,
            project,
            nodes,
            ends_at=ends_at.isoformat(),
            starts_at=None if starts_at is None else starts_at.isoformat(),
        )
    if as_json:
        print_json(out)
        return
    _say(
        f"reserved {escape(_nodes(out))} for [bold]{escape(_text(out.get('project')))}[/] "
        f"from {_utc(out.get('starts_at'))} to {_utc(out.get('ends_at'))} "
        f"({escape(_text(out.get('name')))})"
    )


@reservation_app.command("list")
def reservation_list(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include ended ones.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Reservations not yet ended (with --all, every one), earliest first."""
    with connect(ctx) as client:
        items = client.list_reservations(include_ended=all_)
    if as_json:
        print_json(items)
    elif not items:
        _say("no reservations")
    else:
        render.out_console().print(reservations_table(items))


@reservation_app.command("rm")
def reservation_rm(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Reservation name.")]
) -> None:
    """Delete a reservation; its devices are free at once (operators only)."""
    with connect(ctx) as client:
        client.delete_reservation(name)
    _say(f"deleted reservation {escape(name)}")
