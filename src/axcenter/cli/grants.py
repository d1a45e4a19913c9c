"""``axc grant``: a grant's tranches and progress reports, its use, and the notices and
actions about it.

Organization admins file a progress report (``report``) to earn the next tranche;
program managers ``accept`` it (the tranche is released) or ``return`` it (say why).
``use PROGRAM`` lists the grants used far below even use or idle, with the evidence;
program managers ``warn``, ``suspend``/``resume`` or ``reclaim`` part of a grant.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from axcenter.cli import render
from axcenter.cli.alloc import parse_hours, say, table, text, utc, won
from axcenter.cli.common import connect, new_app, print_json

__all__ = ["app"]

app = new_app(help="Grants: tranches, progress reports, use, take-back.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Allocation = Annotated[str, typer.Argument(help="The allocation (alc_ id).")]
Report = Annotated[str, typer.Argument(help="The progress report (rpt_ id).")]


@app.command("tranches")
def tranches(ctx: typer.Context, allocation: Allocation, as_json: JsonOption = False) -> None:
    """A grant's tranches and its progress reports, with where each stands."""
    with connect(ctx) as client:
        out = client.grant_tranches(allocation)
    if as_json:
        print_json(out)
        return
    t = table()
    t.add_column("TRANCHE", justify="right")
    t.add_column("GPU-HOURS", overflow="fold")
    t.add_column("WON", justify="right")
    t.add_column("STATUS")
    t.add_column("REPORT DUE")
    t.add_column("RELEASED")
    for x in out.get("tranches") or []:
        hours = ", ".join(f"{k} {v:,.3f}" for k, v in (x.get("gpu_hours") or {}).items())
        t.add_row(
            str(x.get("seq")),
            hours,
            won(x.get("won")),
            text(x.get("status")),
            utc(x.get("report_due_at")),
            utc(x.get("released_at")),
        )
    if not out.get("tranches"):
        say(f"{escape(text(out.get('project')))}: granted whole (no tranches)")
    else:
        render.out_console().print(t)
    for r in out.get("reports") or []:
        decided = (
            f", {r['status']} by {escape(text(r.get('decided_by')))} {utc(r.get('decided_at'))}"
            if r.get("decided_at")
            else ""
        )
        comment = f": {escape(r['decision_comment'])}" if r.get("decision_comment") else ""
        say(
            f"report {r['id']} for tranche {r['tranche_seq']}, {r['status']}; "
            f"filed by {escape(text(r.get('submitted_by')))} {utc(r.get('submitted_at'))}"
            f"{decided}{comment}"
        )


@app.command("report")
def report(
    ctx: typer.Context,
    allocation: Allocation,
    summary: Annotated[str, typer.Option("--summary", "-m", help="What the project achieved.")],
    as_json: JsonOption = False,
) -> None:
    """File the progress report for the grant's next tranche (organization admins)."""
    with connect(ctx) as client:
        out = client.submit_progress_report(allocation, summary)
    if as_json:
        print_json(out)
        return
    say(f"filed report {out.get('id')} for tranche {out.get('tranche_seq')} of {allocation}")


def _decide(ctx: typer.Context, report_id: str, action: str, comment: str, as_json: bool) -> None:
    with connect(ctx) as client:
        out = client.decide_progress_report(report_id, action, comment)
    if as_json:
        print_json(out)
        return
    say(f"report {report_id} {out.get('status')} (tranche {out.get('tranche_seq')})")


@app.command("accept")
def accept(
    ctx: typer.Context,
    report_id: Report,
    comment: Annotated[str, typer.Option("--comment", "-m")] = "",
    as_json: JsonOption = False,
) -> None:
    """Accept a progress report: its tranche is released (program managers)."""
    _decide(ctx, report_id, "accept", comment, as_json)


@app.command("return")
def return_report(
    ctx: typer.Context,
    report_id: Report,
    comment: Annotated[str, typer.Option("--comment", "-m", help="Why (required).")],
    as_json: JsonOption = False,
) -> None:
    """Send a progress report back; the project files another (program managers)."""
    _decide(ctx, report_id, "return", comment, as_json)


@app.command("notices")
def notices(ctx: typer.Context, allocation: Allocation, as_json: JsonOption = False) -> None:
    """Reminders, warnings, suspensions and take-backs sent about a grant."""
    with connect(ctx) as client:
        items = client.grant_notices(allocation)
    if as_json:
        print_json(items)
        return
    if not items:
        say(f"no notices about {allocation}")
        return
    t = table()
    t.add_column("AT")
    t.add_column("KIND")
    t.add_column("REASON", overflow="fold")
    t.add_column("WON", justify="right")
    t.add_column("BY")
    for n in items:
        t.add_row(
            utc(n.get("at")),
            text(n.get("kind")),
            escape(text(n.get("reason"))),
            won(n.get("won")) if n.get("won") else "",
            escape(text(n.get("actor"))),
        )
    render.out_console().print(t)


# -- use monitoring and take-back -----------------------------------------------------------

Reason = Annotated[str, typer.Option("--reason", "-m", help="Why (the company is told).")]


@app.command("use")
def use(
    ctx: typer.Context,
    program: Annotated[str, typer.Argument(help="Program name or prg_ id.")],
    all_grants: Annotated[bool, typer.Option("--all", help="Also grants not flagged.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Grants of a program used far below even use, or idle, with the evidence."""
    with connect(ctx) as client:
        out = client.grant_use(program, all_grants)
    if as_json:
        print_json(out)
        return
    items = out.get("items") or []
    if not items:
        say("no grant is under-used or idle")
        return
    t = table()
    for header in ("ALLOCATION", "PROJECT", "ORGANIZATION", "STATUS", "ELAPSED", "USED/EVEN",
                   "IDLE DAYS", "RUNNING", "GPU MEAN/IDLE", "FLAGS",
                   "TAKE BACK (GPU-H)"):  # fmt: skip
        t.add_column(header, overflow="fold")
    for g in items:
        use_bp = g.get("use_bp")
        t.add_row(
            text(g.get("allocation_id")),
            escape(text(g.get("project"))),
            escape(text(g.get("organization"))),
            text(g.get("status")),
            f"{g.get('elapsed_bp', 0) / 100:.0f}%",
            "-" if use_bp is None else f"{use_bp / 100:.0f}%",
            str(g.get("idle_days")),
            str(g.get("running_jobs")),
            "-"
            if g.get("gpu_util_mean_pct") is None
            else f"{g['gpu_util_mean_pct']}%/{int(g.get('gpu_idle_bp') or 0) / 100:g}%",
            ", ".join(g.get("flags") or []) or "-",
            ", ".join(f"{k} {v:,}" for k, v in (g.get("suggested_reclaim_gpu_hours") or {}).items())
            or "-",
        )
    render.out_console().print(t)
    for g in items:  # the evidence of off-purpose use, one line per run
        for o in g.get("off_purpose") or []:
            say(
                f"{text(g.get('allocation_id'))}: off-purpose {text(o.get('job_id'))} "
                f"({o.get('gpu_hours')} GPU-hours from {utc(o.get('started_at'))}): "
                f"{escape(text(o.get('why')))}"
            )


def _act(ctx: typer.Context, allocation: str, action: str, as_json: bool, **body: object) -> None:
    with connect(ctx) as client:
        out = client.act_on_grant(allocation, action, **body)
    if as_json:
        print_json(out)
        return
    taken = f": {won(out.get('won'))} won taken back" if out.get("won") else ""
    say(f"{allocation}: {text(out.get('kind'))} sent to {escape(text(out.get('project')))}{taken}")


@app.command("warn")
def warn(
    ctx: typer.Context, allocation: Allocation, reason: Reason, as_json: JsonOption = False
) -> None:
    """Warn the grant's organization (program managers)."""
    _act(ctx, allocation, "warn", as_json, reason=reason)


@app.command("suspend")
def suspend(
    ctx: typer.Context, allocation: Allocation, reason: Reason, as_json: JsonOption = False
) -> None:
    """The grant pays for no new run until resumed; running jobs finish."""
    _act(ctx, allocation, "suspend", as_json, reason=reason)


@app.command("resume")
def resume(
    ctx: typer.Context, allocation: Allocation, reason: Reason, as_json: JsonOption = False
) -> None:
    """Lift a suspension."""
    _act(ctx, allocation, "resume", as_json, reason=reason)


@app.command("reclaim")
def reclaim(
    ctx: typer.Context,
    allocation: Allocation,
    reason: Reason,
    hours: Annotated[
        list[str] | None,
        typer.Option("--gpu-hours", "-g", metavar="TYPE=HOURS", help="Take back (repeatable)."),
    ] = None,
    pending: Annotated[
        bool, typer.Option("--pending", help="Also withdraw the tranches not yet released.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Take back part of a grant: it returns to the program's budget."""
    _act(
        ctx,
        allocation,
        "reclaim",
        as_json,
        reason=reason,
        gpu_hours=parse_hours(hours or []),
        withdraw_pending=pending,
    )
