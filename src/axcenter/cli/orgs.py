"""``axc org``: organizations (companies applying under programs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from axcenter.cli import render
from axcenter.cli.alloc import say, table, text
from axcenter.cli.common import connect, new_app, print_json

__all__ = ["app", "orgs_table"]

app = new_app(help="Organizations: companies and institutes.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def orgs_table(orgs: Sequence[Mapping[str, Any]]) -> Table:
    t = table()
    for column in ("ORGANIZATION", "ID", "REG. NO", "SIZE", "REGION", "YOUTH STARTUP"):
        t.add_column(column, overflow="fold")
    for o in orgs:
        t.add_row(
            text(o.get("name")),
            text(o.get("id")),
            text(o.get("registration_no")),
            text(o.get("size_class")),
            text(o.get("region")),
            "yes" if o.get("youth_startup") else "",
        )
    return t


@app.command("list")
def list_orgs(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Organizations you may see (your own, or all for operators and program managers)."""
    with connect(ctx) as client:
        items = client.list_organizations()
    if as_json:
        print_json(items)
    elif not items:
        say("no organizations")
    else:
        render.out_console().print(orgs_table(items))


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Organization name.")],
    registration_no: Annotated[
        str | None, typer.Option("--reg-no", help="Business registration number.")
    ] = None,
    size: Annotated[str | None, typer.Option("--size", help="SME, mid or large.")] = None,
    region: Annotated[str | None, typer.Option("--region")] = None,
    youth_startup: Annotated[
        bool, typer.Option("--youth-startup", help="Programs' youth-startup terms apply.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Register an organization (operators, program managers)."""
    if size is not None and size not in ("SME", "mid", "large"):
        raise typer.BadParameter("SME, mid or large", param_hint="'--size'")
    with connect(ctx) as client:
        out = client.create_organization(
            name=name,
            registration_no=registration_no,
            size_class=size,
            region=region,
            youth_startup=youth_startup or None,
        )
    if as_json:
        print_json(out)
        return
    say(f"created organization [bold]{escape(text(out.get('name')))}[/] ({text(out.get('id'))})")


@app.command("show")
def show(
    ctx: typer.Context,
    organization: Annotated[str, typer.Argument(help="Organization name or org_ id.")],
    as_json: JsonOption = False,
) -> None:
    with connect(ctx) as client:
        out = client.get_organization(organization)
    if as_json:
        print_json(out)
    else:
        render.out_console().print(orgs_table([out]))
