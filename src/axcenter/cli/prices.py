"""``axc price``: the price book (won per GPU-hour by GPU type, with effective dates)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from axcenter.cli import render
from axcenter.cli.alloc import say, table, text, utc, won
from axcenter.cli.common import connect, new_app, print_json
from axcenter.cli.policy import parse_when

__all__ = ["app", "prices_table"]

app = new_app(help="The price book: won per GPU-hour.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def prices_table(prices: Sequence[Mapping[str, Any]]) -> Table:
    t = table()
    t.add_column("ID", no_wrap=True)
    t.add_column("TYPE")
    t.add_column("WON/GPU-HOUR", justify="right")
    t.add_column("FROM")
    t.add_column("")
    for p in prices:
        t.add_row(
            text(p.get("id")),
            text(p.get("gpu_type")),
            won(p.get("won_per_gpu_hour")),
            utc(p.get("effective_from")),
            Text("in force", style="green") if p.get("in_force") else "",
        )
    return t


@app.command("list")
def list_prices(
    ctx: typer.Context,
    gpu_type: Annotated[str | None, typer.Option("--type", "-t", help="One GPU type.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every price, oldest first per type; the one charged now is marked."""
    with connect(ctx) as client:
        items = client.list_prices(gpu_type)
    if as_json:
        print_json(items)
    elif not items:
        say("no prices")
    else:
        render.out_console().print(prices_table(items))


@app.command("set")
def set_price(
    ctx: typer.Context,
    gpu_type: Annotated[str, typer.Argument(metavar="TYPE", help="GPU type, e.g. H100.")],
    won_per_gpu_hour: Annotated[int, typer.Argument(metavar="WON", min=0, help="Won/GPU-hour.")],
    effective_from: Annotated[
        str, typer.Option("--from", metavar="ISO|now", help="When it takes effect.")
    ] = "now",
    as_json: JsonOption = False,
) -> None:
    """Add a price from now or a later moment (operators; never retroactive)."""
    start = parse_when(effective_from, "--from")
    with connect(ctx) as client:
        out = client.set_price(gpu_type, won_per_gpu_hour, start.isoformat() if start else None)
    if as_json:
        print_json(out)
        return
    say(
        f"{escape(text(out.get('gpu_type')))}: {won(out.get('won_per_gpu_hour'))} won per "
        f"GPU-hour from {utc(out.get('effective_from'))}"
    )


@app.command("rm")
def remove_price(
    ctx: typer.Context,
    price_id: Annotated[str, typer.Argument(metavar="PRICE", help="prc_ id (axc price list).")],
    as_json: JsonOption = False,
) -> None:
    """Remove a price that has not taken effect yet (operators); to change one in force,
    set a new price from now."""
    with connect(ctx) as client:
        out = client.remove_price(price_id)
    if as_json:
        print_json(out)
        return
    say(
        f"removed {escape(text(out.get('id')))}: {escape(text(out.get('gpu_type')))} at "
        f"{won(out.get('won_per_gpu_hour'))} won per GPU-hour from "
        f"{utc(out.get('effective_from'))}"
    )
