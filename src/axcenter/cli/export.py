"""``axc export``: data out of the center, e.g. its job history as a replayable trace.

``axc export history -o history.csv`` writes the finished jobs you may see in the
simulator's native format; ``axc sim run history.csv --cluster center.yaml`` replays
them. The file is written to a temporary name and renamed at the end, so an interrupted
export never leaves a truncated trace behind.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from axcenter.cli import render
from axcenter.cli.common import connect, new_app
from axcenter.cli.policy import parse_when

__all__ = ["app", "history"]

app = new_app(help="Export data from the center.", no_args_is_help=True)


def _when(text: str | None, option: str) -> str | None:
    """ISO-8601 in UTC for the API; ``now`` is the current time."""
    if text is None:
        return None
    moment = parse_when(text, option) or datetime.now(UTC)
    return moment.isoformat()


@app.command("history")
def history(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--output", "-o", help="CSV file to write ('-': stdout).")],
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Jobs submitted at or after this time (ISO-8601; no zone means UTC).",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Jobs submitted before this time.", show_default=False),
    ] = None,
) -> None:
    """Write the finished jobs you may see as a native trace CSV (for `axc sim`)."""
    start, end = _when(since, "--since"), _when(until, "--until")
    with connect(ctx) as client:
        chunks = client.export_history(since=start, until=end)
        if str(out) == "-":
            for chunk in chunks:
                typer.echo(chunk.decode("utf-8"), nl=False)
            return
        partial = out.with_name(out.name + ".partial")
        rows = 0
        try:
            with partial.open("wb") as f:
                for chunk in chunks:
                    rows += chunk.count(b"\n")
                    f.write(chunk)
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
    render.err_console().print(
        f"wrote {max(rows - 1, 0):,} jobs to {out}", soft_wrap=True, markup=False
    )
