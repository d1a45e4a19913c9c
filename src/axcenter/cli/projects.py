"""``axc project``: projects, their members and allocations (and ``limits``, from policy).

This extends the ``project`` command group of ``axcenter.cli.policy`` (which holds
``axc project limits``), so that ``axc project`` stays one group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from axcenter.cli import render
from axcenter.cli.alloc import WARNING_STYLES, allocations_table, say, table, text
from axcenter.cli.common import connect, print_json
from axcenter.cli.policy import project_app as app

__all__ = ["app", "projects_table"]

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def projects_table(projects: Sequence[Mapping[str, Any]]) -> Table:
    t = table()
    for column in ("PROJECT", "ORGANIZATION", "PROGRAM", "SECTOR", "PI"):
        t.add_column(column, overflow="fold")
    for p in projects:
        t.add_row(
            text(p.get("name")),
            text(p.get("organization")),
            text(p.get("program")),
            text(p.get("sector")),
            text(p.get("pi")),
        )
    return t


@app.command("list")
def list_projects(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Projects you may see."""
    with connect(ctx) as client:
        items = client.projects()
    if as_json:
        print_json(items)
    elif not items:
        say("no projects")
    else:
        render.out_console().print(projects_table(items))


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Project name (no spaces).")],
    sector: Annotated[str, typer.Option("--sector", help="Industry sector.")],
    org: Annotated[str | None, typer.Option("--org", help="Organization (default: yours).")] = None,
    program: Annotated[str | None, typer.Option("--program", help="Funding program.")] = None,
    objective: Annotated[str, typer.Option("--objective")] = "",
    pi: Annotated[str | None, typer.Option("--pi", help="Principal investigator.")] = None,
    member: Annotated[
        list[str] | None, typer.Option("--member", help="A member (repeatable).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a project (org admins: in their organization; operators: anywhere)."""
    with connect(ctx) as client:
        out = client.create_project(
            name=name,
            organization=org,
            program=program,
            sector=sector,
            objective=objective,
            pi=pi,
            members=list(member or []),
        )
    if as_json:
        print_json(out)
        return
    say(
        f"created project [bold]{escape(text(out.get('name')))}[/] ({text(out.get('id'))}) "
        f"of {escape(text(out.get('organization')))} under {escape(text(out.get('program')))}"
    )


@app.command("show")
def show(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project name or prj_ id.")],
    as_json: JsonOption = False,
) -> None:
    """A project: members, allocations with what is left, and warnings."""
    with connect(ctx) as client:
        out = client.get_project(project)
    if as_json:
        print_json(out)
        return
    parts: list[Any] = [projects_table([out])]
    if out.get("objective"):
        parts.append(Text(f"objective: {out['objective']}"))
    members = out.get("members") or []
    if members:
        parts.append(Text("members: " + ", ".join(f"{m['name']} ({m['role']})" for m in members)))
    funding = gpu_funding(out)
    if funding:
        parts.append(Text(f"GPU jobs: {funding}"))
    allocations = out.get("allocations") or []
    if allocations:
        parts += [Text(""), allocations_table(allocations)]
    for line in out.get("warnings") or []:
        style = WARNING_STYLES["100%"] if "exhausted" in line else WARNING_STYLES["80%"]
        parts.append(Text(f"warning: {line}", style=style))
    render.out_console().print(Group(*parts))


def gpu_funding(project: dict[str, Any]) -> str | None:
    """How the project's GPU jobs are paid for now, as the center's policy says (None
    from a server that does not say)."""
    if "allocated" not in project:
        return None
    if project["allocated"]:
        return "charged to its active allocation"
    policy = project.get("unallocated_gpu_jobs", "free")
    if policy == "refuse":
        return (
            "refused: no active allocation (the center's policy, unallocated_gpu_jobs=refuse); "
            "ask for GPU-hours with `axc alloc request`"
        )
    return (
        "run free of charge: no active allocation (the center's policy, "
        "unallocated_gpu_jobs=free); preemptible beyond any quota an operator set"
    )


@app.command("add-member")
def add_member(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project name or prj_ id.")],
    user: Annotated[str, typer.Argument(help="User name.")],
) -> None:
    """Add a member (org admins of the project's organization, operators)."""
    with connect(ctx) as client:
        client.add_member(project, user)
    say(f"{escape(user)} is now a member of {escape(project)}")


@app.command("rm-member")
def rm_member(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project name or prj_ id.")],
    user: Annotated[str, typer.Argument(help="User name.")],
) -> None:
    """Remove a member: their running jobs go on, they may submit no more."""
    with connect(ctx) as client:
        client.remove_member(project, user)
    say(f"{escape(user)} is no longer a member of {escape(project)}")
