"""``axc survey``: answer a program's outcome survey for a project, and read the answers
with their history (the forms are the program's: ``axc program surveys``)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape

from axcenter.cli import render
from axcenter.cli.alloc import say, table, text, utc
from axcenter.cli.common import connect, new_app, print_json

__all__ = ["app", "parse_answer"]

app = new_app(help="Outcome surveys: answers of funded projects.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Form = Annotated[str, typer.Argument(help="The survey form (srv_ id).")]


def parse_answer(spec: str) -> tuple[str, Any]:
    """``papers=3``, ``launched=true``, ``notes="a pilot"``: a number, true/false, or text."""
    key, sep, raw = spec.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"{spec!r}: use KEY=VALUE", param_hint="'ANSWERS'")
    lowered = raw.strip().lower()
    if lowered in ("true", "yes"):
        return key, True
    if lowered in ("false", "no"):
        return key, False
    try:
        return key, int(raw.replace(",", ""))
    except ValueError:
        pass
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value if isinstance(value, str) else raw


@app.command("answer")
def answer(
    ctx: typer.Context,
    form: Form,
    answers: Annotated[list[str], typer.Argument(metavar="KEY=VALUE...", help="The answers.")],
    project: Annotated[str, typer.Option("--project", "-p")],
    round_: Annotated[
        str, typer.Option("--round", "-r", help="A due date (YYYY-MM-DD), or final.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Answer a round of a form for a project (organization admins); answering again
    corrects it, and both answers stay in the history."""
    with connect(ctx) as client:
        out = client.answer_survey(form, project, round_, dict(map(parse_answer, answers)))
    if as_json:
        print_json(out)
        return
    say(f"recorded {escape(text(out.get('project')))}'s answers for round {out.get('round')}")


@app.command("answers")
def answers(
    ctx: typer.Context,
    form: Form,
    project: Annotated[str, typer.Argument(help="Project name or prj_ id.")],
    as_json: JsonOption = False,
) -> None:
    """Every answer of a project to a form, oldest first; * marks the one that counts."""
    with connect(ctx) as client:
        items = client.survey_answers(form, project)
    if as_json:
        print_json(items)
        return
    t = table()
    t.add_column("ROUND")
    t.add_column("")
    t.add_column("ANSWERS", overflow="fold")
    t.add_column("BY")
    t.add_column("AT")
    for a in items:
        values = ", ".join(f"{k}={v}" for k, v in (a.get("answers") or {}).items())
        t.add_row(
            text(a.get("round")),
            "*" if a.get("current") else "",
            escape(values),
            escape(text(a.get("submitted_by"))),
            utc(a.get("submitted_at")),
        )
    render.out_console().print(t)
