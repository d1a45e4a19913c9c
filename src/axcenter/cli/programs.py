"""``axc program``: funding programs (calls) with their budgets and co-funding rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from axcenter.cli import render
from axcenter.cli.alloc import say, table, text, utc, won
from axcenter.cli.common import connect, new_app, print_json
from axcenter.cli.policy import parse_when

__all__ = ["app", "programs_table", "share"]

app = new_app(
    help="Funding programs: budgets, periods, co-funding.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def share(public_share_bp: object) -> str:
    """Co-funding as ``80/20`` (public / company), from basis points."""
    if not isinstance(public_share_bp, int):
        return "-"
    public = public_share_bp / 100
    return f"{public:g}/{100 - public:g}"


def _period(p: Mapping[str, Any]) -> str:
    if not p.get("starts_at") and not p.get("ends_at"):
        return "open"
    return f"{utc(p.get('starts_at'))} to {utc(p.get('ends_at'))}"


def programs_table(programs: Sequence[Mapping[str, Any]]) -> Table:
    t = table()
    t.add_column("PROGRAM", overflow="fold")
    t.add_column("BUDGET (WON)", justify="right")
    t.add_column("GRANTED (WON)", justify="right")
    t.add_column("PUBLIC/COMPANY", justify="right")
    t.add_column("PERIOD", overflow="fold")
    for p in programs:
        t.add_row(
            text(p.get("name")),
            won(p.get("budget_won")),
            won(p.get("allocated_won")),
            share(p.get("public_share_bp")),
            _period(p),
        )
    return t


@app.command("list")
def list_programs(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every funding program, with what it has granted."""
    with connect(ctx) as client:
        items = client.list_programs()
    if as_json:
        print_json(items)
    elif not items:
        say("no programs")
    else:
        render.out_console().print(programs_table(items))


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Program name.")],
    budget: Annotated[int, typer.Option("--budget", min=0, help="Budget in won.")],
    public_share: Annotated[
        float,
        typer.Option(
            "--public-share", min=0, max=100, help="Percent of each charge the program pays."
        ),
    ] = 100.0,
    start: Annotated[str | None, typer.Option("--start", metavar="ISO")] = None,
    end: Annotated[str | None, typer.Option("--end", metavar="ISO")] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    as_json: JsonOption = False,
) -> None:
    """Create a program (operators, program managers); --public-share 80 means the
    program pays 80% of every charge and the company 20%."""
    starts_at = parse_when(start, "--start") if start else None
    ends_at = parse_when(end, "--end") if end else None
    with connect(ctx) as client:
        out = client.create_program(
            name=name,
            budget_won=budget,
            public_share_bp=round(public_share * 100),
            starts_at=starts_at.isoformat() if starts_at else None,
            ends_at=ends_at.isoformat() if ends_at else None,
            description=description,
        )
    if as_json:
        print_json(out)
        return
    say(
        f"created program [bold]{escape(text(out.get('name')))}[/] ({text(out.get('id'))}): "
        f"{won(out.get('budget_won'))} won, public/company {share(out.get('public_share_bp'))}"
    )


@app.command("show")
def show(
    ctx: typer.Context,
    program: Annotated[str, typer.Argument(help="Program name or prg_ id.")],
    as_json: JsonOption = False,
) -> None:
    """A program's budget, what it granted, its period and co-funding rule."""
    with connect(ctx) as client:
        out = client.get_program(program)
    if as_json:
        print_json(out)
        return
    render.out_console().print(programs_table([out]))
    if out.get("description"):
        say(escape(str(out["description"])))
