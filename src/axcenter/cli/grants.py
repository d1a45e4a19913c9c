"""``axc grant``: a grant's tranches and progress reports, and the notices sent about it.

Organization admins file a progress report (``report``) to earn the next tranche;
program managers ``accept`` it (the tranche is released) or ``return`` it (say why).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from axcenter.cli import render
from axcenter.cli.alloc import say, table, text, utc, won
from axcenter.cli.common import connect, new_app, print_json

__all__ = ["app"]

app = new_app(help="Grants: tranches, progress reports, notices.", no_args_is_help=True)

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
