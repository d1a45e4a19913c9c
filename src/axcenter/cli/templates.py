"""``axc template``: a project's job templates (a command or a script with its
resources, kept under a name), and submitting one's job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from axcenter.cli import render
from axcenter.cli.alloc import JsonOption, say, table, text
from axcenter.cli.common import connect, new_app, print_json
from axcenter.cli.durations import format_duration, parse_time_limit

app = new_app(help="Job templates of a project: keep, list, show, use, delete.")

ProjectArg = Annotated[str, typer.Argument(help="Project name or prj_ id.")]
NameArg = Annotated[str, typer.Argument(help="The template's name.")]


def _time(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_time_limit(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--time'") from None


def _command_text(job: dict[str, Any]) -> str:
    command = job.get("command") or []
    if len(command) >= 2 and command[-2] == "-c" and command[0] == "bash":
        return str(command[-1]).rstrip("\n")  # a script
    return " ".join(command)


@app.command("create")
def create(
    ctx: typer.Context,
    project: ProjectArg,
    name: NameArg,
    command: Annotated[
        list[str] | None, typer.Argument(help="The command (after --), unless --script.")
    ] = None,
    script: Annotated[
        Path | None,
        typer.Option(
            "--script",
            help="A script file: its lines run by bash, stopping at the first that fails.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    gpus: Annotated[int, typer.Option("--gpus", min=0, max=64, help="GPUs per node.")] = 1,
    nodes: Annotated[int, typer.Option("--nodes", "-N", min=1)] = 1,
    gpu_type: Annotated[
        list[str] | None, typer.Option("--gpu-type", help="Accepted GPU types (repeatable).")
    ] = None,
    time_limit: Annotated[
        str | None, typer.Option("--time", "-t", help="Time limit, e.g. 2h or 1-00:00:00.")
    ] = None,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    as_json: JsonOption = False,
) -> None:
    """Keep a job under a name in the project: `axc template create P train -- python
    train.py`, or --script train.sh."""
    if (script is None) == (not command):
        raise typer.BadParameter("give a command (after --) or --script FILE, not both")
    argv = ["bash", "-euo", "pipefail", "-c", script.read_text()] if script else list(command or [])
    job: dict[str, Any] = {"command": argv, "gpus_per_node": gpus, "nodes": nodes}
    if gpu_type:
        job["gpu_types"] = gpu_type
    if (seconds := _time(time_limit)) is not None:
        job["time_limit_s"] = seconds
    with connect(ctx) as client:
        out = client.create_template(project, name, job, description)
    if as_json:
        print_json(out)
        return
    say(f"template {escape(text(out.get('name')))} kept in {escape(text(out.get('project')))}")


@app.command("list")
def list_(ctx: typer.Context, project: ProjectArg, as_json: JsonOption = False) -> None:
    """The project's templates."""
    with connect(ctx) as client:
        items = client.list_templates(project)
    if as_json:
        print_json({"items": items})
        return
    if not items:
        say(f"{escape(project)} has no job template")
        return
    t = table()
    for column in ("NAME", "GPUS", "NODES", "TIME", "COMMAND", "BY"):
        t.add_column(column, overflow="fold")
    for tpl in items:
        job = tpl.get("job") or {}
        limit = job.get("time_limit_s")
        t.add_row(
            text(tpl.get("name")),
            text(job.get("gpus_per_node", 1)),
            text(job.get("nodes", 1)),
            format_duration(limit) if limit else "default",
            _command_text(job).splitlines()[0] if _command_text(job) else "",
            text(tpl.get("created_by")),
        )
    render.out_console().print(t)


@app.command("show")
def show(
    ctx: typer.Context, project: ProjectArg, name: NameArg, as_json: JsonOption = False
) -> None:
    """A template with its whole command or script."""
    with connect(ctx) as client:
        out = client.get_template(project, name)
    if as_json:
        print_json(out)
        return
    job = out.get("job") or {}
    typer.echo(
        f"{out.get('project')}/{out.get('name')}: {out.get('description') or ''}".rstrip(": ")
    )
    typer.echo(
        f"gpus per node {job.get('gpus_per_node', 1)}, nodes {job.get('nodes', 1)}, "
        f"types {', '.join(job.get('gpu_types') or []) or 'any'}"
    )
    typer.echo(_command_text(job))


@app.command("use")
def use(
    ctx: typer.Context,
    project: ProjectArg,
    name: NameArg,
    job_name: Annotated[str | None, typer.Option("--job-name", "-J")] = None,
    time_limit: Annotated[str | None, typer.Option("--time", "-t")] = None,
    hold: Annotated[bool, typer.Option("--hold")] = False,
    as_json: JsonOption = False,
) -> None:
    """Submit the template's job and print its id."""
    with connect(ctx) as client:
        out = client.use_template(
            project, name, job_name=job_name, time_limit_s=_time(time_limit), held=hold or None
        )
    if as_json:
        print_json(out)
        return
    typer.echo(text(out.get("id")))


@app.command("delete")
def delete(ctx: typer.Context, project: ProjectArg, name: NameArg) -> None:
    with connect(ctx) as client:
        client.delete_template(project, name)
    say(f"template {escape(name)} deleted from {escape(project)}")
