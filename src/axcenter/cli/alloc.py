"""``axc alloc``: allocation requests, their review, and the balances of grants.

Organization admins file requests (``request``) and resubmit or withdraw them; program
managers assign reviewers and decide (``approve``, ``reject``, ``return``); assigned
reviewers score (``review``). ``balance`` shows what each grant has left, with its
warning: yellow at 80% used, red when exhausted. The server checks every rule.

The table helpers here (``won``, ``warning_text``, ``table``, ``say``) are shared by the
other allocation-side commands (programs, projects, prices, users).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from axcenter.cli import render
from axcenter.cli.common import connect, new_app, print_json, shifted, when
from axcenter.cli.policy import parse_when

__all__ = [
    "WARNING_STYLES",
    "allocations_table",
    "app",
    "balance_lines",
    "parse_hours",
    "request_view",
    "requests_table",
    "say",
    "table",
    "text",
    "utc",
    "warning_text",
    "won",
]

app = new_app(
    help="Allocation requests, review and grant balances.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
HoursOption = Annotated[
    list[str] | None,
    typer.Option(
        "--gpu-hours", "-g", metavar="TYPE=HOURS", help="GPU-hours of a type (repeatable)."
    ),
]

WARNING_STYLES: Mapping[str, str] = {"80%": "bold yellow", "100%": "bold red"}
_HOURS = re.compile(r"^(?P<type>[A-Za-z0-9][A-Za-z0-9._-]*)=(?P<n>\d+)$")


# -- shared helpers -------------------------------------------------------------------------


def text(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def won(value: object) -> str:
    """Integer won with thousands separators: ``2,800``."""
    return f"{value:,}" if isinstance(value, int) else text(value)


def utc(value: object) -> str:
    """A time from the API in the center's zone, named (``common.when``)."""
    return when(render.parse_time(value))


def table() -> Table:
    return Table(box=None, header_style="bold", pad_edge=False)


def say(message: str) -> None:
    render.out_console().print(message, soft_wrap=True, highlight=False)


def warning_text(level: object) -> Text:
    """``80%`` in yellow, ``100%`` (exhausted) in red, nothing below 80%."""
    value = str(level or "none")
    if value == "none":
        return Text("")
    label = "100% exhausted" if value == "100%" else value
    return Text(label, style=WARNING_STYLES.get(value, ""))


def parse_hours(values: Sequence[str] | None, option: str = "--gpu-hours") -> dict[str, int]:
    """``["A100=2000", "H100=500"]`` as ``{"A100": 2000, "H100": 500}``."""
    items: dict[str, int] = {}
    for value in values or ():
        match = _HOURS.fullmatch(value.strip())
        if not match or int(match["n"]) < 1:
            raise typer.BadParameter(
                f"{value!r}: use TYPE=HOURS, e.g. A100=2000", param_hint=f"'{option}'"
            )
        if match["type"] in items:
            raise typer.BadParameter(f"{match['type']} given twice", param_hint=f"'{option}'")
        items[match["type"]] = int(match["n"])
    return items


def _items(items: object) -> str:
    if not isinstance(items, Mapping) or not items:
        return "-"
    return ", ".join(f"{t} {h:,} h" for t, h in sorted(items.items()))


# -- renderings -----------------------------------------------------------------------------


def requests_table(requests: Sequence[Mapping[str, Any]]) -> Table:
    t = table()
    for column in ("ID", "PROJECT", "KIND", "GPU-HOURS", "STATUS", "SCORE", "UPDATED"):
        t.add_column(column, overflow="fold")
    for r in requests:
        score = r.get("mean_score")
        total = r.get("total")
        t.add_row(
            text(r.get("id")),
            text(r.get("project")),
            text(r.get("kind")),
            _items(r.get("items")),
            text(r.get("status")),
            f"{score:.2f}/5" if score is not None else f"{total:.2f}/100" if total else "-",
            utc(r.get("updated_at")),
        )
    return t


def request_view(r: Mapping[str, Any]) -> RenderableType:
    """``axc alloc show REQ``: the request, then every step of its review."""
    head = table()
    head.add_column(style="bold")
    head.add_column(overflow="fold")
    for label, value in (
        ("request", r.get("id")),
        ("project", r.get("project")),
        ("program", r.get("program")),
        ("kind", r.get("kind")),
        ("allocation", r.get("allocation_id")),
        ("GPU-hours", _items(r.get("items"))),
        ("window", f"{utc(r.get('starts_at'))} to {utc(r.get('ends_at'))}"),
        ("status", r.get("status")),
        ("reviewers", ", ".join(r.get("reviewers") or []) or "-"),
        ("rubric", rubric_line(r.get("rubric") or [])),
        ("total", total_line(r)),
        ("justification", r.get("justification")),
        (
            "attachments",
            "; ".join(
                f"{a['id']} {a['filename']} ({a['size_bytes']:,} bytes)"
                for a in r.get("attachments") or []
            )
            or "-",
        ),
    ):
        head.add_row(label, text(value))
    events = table()
    for column in ("WHEN", "WHO", "ACTION", "SCORE", "GPU-HOURS", "COMMENT"):
        events.add_column(column, overflow="fold")
    for e in r.get("events") or []:
        scores = e.get("scores")
        events.add_row(
            utc(e.get("at")),
            text(e.get("actor")),
            text(e.get("action")),
            (
                f"{e.get('total')} ({', '.join(f'{k} {v}' for k, v in scores.items())})"
                if scores
                else text(e.get("score"))
            ),
            _items(e.get("items")),
            text(e.get("comment")),
        )
    return Group(head, Text(""), events)


def rubric_line(rubric: Sequence[Mapping[str, Any]]) -> str:
    """``merit (weight 40, 1..5); impact (...)``, or the single score of no rubric."""
    if not rubric:
        return "one score 1..5"
    return "; ".join(
        f"{c['key']}: {c['label']} (weight {c['weight']}, 1..{c['scale']})" for c in rubric
    )


def total_line(r: Mapping[str, Any]) -> str:
    """The weighted total with the preference points shown apart: ``72.5 + 5 (region
    Gwangju +5) = 77.5``."""
    if r.get("mean_score") is not None:
        return f"mean score {r['mean_score']:.2f} / 5"
    points = int(r.get("preference_points") or 0)
    bonus = f" + {points} ({', '.join(r.get('preferences') or [])})" if points else ""
    if r.get("weighted_total") is None:
        return "-" + (f" (preference{bonus})" if bonus else "")
    return f"{r['weighted_total']:.2f} / 100{bonus} = {r['total']:.2f}"


def allocations_table(allocations: Sequence[Mapping[str, Any]]) -> Table:
    """One row per allocation and GPU type: GPU-hours and won left, the warning in colour."""
    t = table()
    for column in ("ALLOCATION", "PROJECT", "TYPE", "GPU-H LEFT", "WON LEFT", "USED", "ENDS"):
        t.add_column(column, overflow="fold", justify="right" if "LEFT" in column else "left")
    t.add_column("", no_wrap=True)
    for a in allocations:
        b = a.get("balance") or {}
        items = b.get("items") or [{}]
        for index, item in enumerate(items):
            first = index == 0
            t.add_row(
                text(a.get("id")) if first else "",
                text(a.get("project")) if first else "",
                text(item.get("gpu_type")),
                f"{text(item.get('left_gpu_hours'))} / {text(item.get('granted_gpu_hours'))}",
                f"{won(b.get('left_won'))} / {won(b.get('granted_won'))}" if first else "",
                f"{float(b.get('used_fraction') or 0):.0%}" if first else "",
                (utc(a.get("ends_at")) + ("" if a.get("status") == "active" else " (ended)"))
                if first
                else "",
                warning_text(b.get("warning")) if first else Text(""),
            )
    return t


def balance_lines(allocations: Sequence[Mapping[str, Any]]) -> list[Text]:
    """The warnings of allocations at or above 80%, one coloured line each."""
    lines = []
    for a in allocations:
        level = str((a.get("balance") or {}).get("warning"))
        if level in WARNING_STYLES:
            what = "exhausted" if level == "100%" else "80% used"
            lines.append(
                Text(
                    f"warning: allocation {a.get('id')} of {a.get('project')} is {what} "
                    f"(on exhaustion: {a.get('on_exhaustion')})",
                    style=WARNING_STYLES[level],
                )
            )
    return lines


# -- commands -------------------------------------------------------------------------------


def _window_end(end: str | None, days: int | None, start: datetime | None) -> datetime | None:
    if end is not None and days is not None:
        raise typer.BadParameter("give --end or --days, not both", param_hint="'--end'")
    if days is not None:
        return shifted(start or datetime.now(UTC), days * 86400, "--days")
    return parse_when(end, "--end") if end is not None else None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@app.command("request")
def request(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project name or prj_ id.")],
    justification: Annotated[
        str, typer.Option("--justification", "-j", help="Why the project needs it.")
    ],
    gpu_hours: HoursOption = None,
    kind: Annotated[
        str, typer.Option("--kind", help="new, topup, extension or termination.")
    ] = "new",
    allocation: Annotated[
        str | None, typer.Option("--allocation", "-a", help="The allocation a change is for.")
    ] = None,
    program: Annotated[
        str | None, typer.Option("--program", help="Program (default: the project's).")
    ] = None,
    start: Annotated[str | None, typer.Option("--start", metavar="ISO")] = None,
    end: Annotated[str | None, typer.Option("--end", metavar="ISO")] = None,
    days: Annotated[int | None, typer.Option("--days", min=1, help="Window length.")] = None,
    as_json: JsonOption = False,
) -> None:
    """File an allocation request (or a top-up, extension or termination)."""
    if kind not in ("new", "topup", "extension", "termination"):
        raise typer.BadParameter(f"{kind!r}: new, topup, extension or termination")
    starts_at = parse_when(start, "--start") if start is not None else None
    with connect(ctx) as client:
        out = client.create_request(
            project=project,
            kind=kind,
            program=program,
            allocation=allocation,
            items=parse_hours(gpu_hours),
            starts_at=_iso(starts_at),
            ends_at=_iso(_window_end(end, days, starts_at)),
            justification=justification,
        )
    if as_json:
        print_json(out)
        return
    say(
        f"filed request [bold]{escape(text(out.get('id')))}[/] ({escape(text(out.get('kind')))}, "
        f"{escape(_items(out.get('items')))}) for {escape(text(out.get('project')))}: submitted"
    )


@app.command("list")
def list_requests(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    status: Annotated[str | None, typer.Option("--status", "-s")] = None,
    program: Annotated[str | None, typer.Option("--program")] = None,
    as_json: JsonOption = False,
) -> None:
    """Requests you may read (reviewers: those assigned to you), newest first."""
    with connect(ctx) as client:
        items = client.list_requests(project=project, program=program, status=status)
    if as_json:
        print_json(items)
    elif not items:
        say("no requests")
    else:
        render.out_console().print(requests_table(items))


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="A request (req_...) or allocation (alc_...).")],
    as_json: JsonOption = False,
) -> None:
    """A request with its review history, or an allocation with its balance."""
    with connect(ctx) as client:
        out = client.get_allocation(ref) if ref.startswith("alc_") else client.get_request(ref)
    if as_json:
        print_json(out)
    elif ref.startswith("alc_"):
        render.out_console().print(Group(allocations_table([out]), *balance_lines([out])))
    else:
        render.out_console().print(request_view(out))


@app.command("attach")
def attach(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Files: PDF, HWP/HWPX, Word, Excel, CSV, text, PNG or JPEG.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Attach files (a proposal, a budget sheet) to a request while it is submitted or
    returned for changes; those who may read the request may read them."""
    done = []
    with connect(ctx) as client:
        for path in files:
            done.append(client.attach_file(request_id, path.name, path.read_bytes()))
    if as_json:
        print_json({"items": done})
        return
    for a in done:
        say(f"attached {escape(text(a.get('filename')))} as {escape(text(a.get('id')))}")


@app.command("attachment")
def attachment(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    attachment_id: Annotated[str, typer.Argument(help="Attachment id (att_...).")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write it here (default: its own name, here)."),
    ] = None,
) -> None:
    """Download an attachment of a request."""
    with connect(ctx) as client:
        listed = client.get_request(request_id).get("attachments") or []
        found = [a for a in listed if a.get("id") == attachment_id]
        if not found:
            raise typer.BadParameter(
                f"request {request_id} has no attachment {attachment_id!r}",
                param_hint="ATTACHMENT_ID",
            )
        content = client.attachment(request_id, attachment_id)
    target = output or Path(Path(text(found[0].get("filename"))).name)
    target.write_bytes(content)
    say(f"wrote {escape(str(target))} ({len(content):,} bytes)")


@app.command("detach")
def detach(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    attachment_id: Annotated[str, typer.Argument(help="Attachment id (att_...).")],
) -> None:
    """Remove an attachment while the request is submitted or returned for changes."""
    with connect(ctx) as client:
        client.detach_file(request_id, attachment_id)
    say(f"removed {escape(attachment_id)} from {escape(request_id)}")


def _step(out: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(out)
        return
    extra = f", allocation {out['allocation_id']}" if out.get("allocation_id") else ""
    say(
        f"request [bold]{escape(text(out.get('id')))}[/]: {escape(text(out.get('status')))}"
        f"{escape(extra)}"
    )
    if unreviewed_grant(out):
        typer.secho(
            "warning: granted without a review: no reviewer scored this request",
            fg="yellow",
            err=True,
        )


def unreviewed_grant(out: Mapping[str, Any]) -> bool:
    """An approval that grants GPU-hours (new, top-up) with no review in its history:
    the API allows it (a program manager decides); the CLI says so."""
    events = out.get("events")
    return (
        out.get("status") == "approved"
        and out.get("kind") in ("new", "topup")
        and isinstance(events, list)
        and not any(e.get("action") == "reviewed" for e in events)
    )


@app.command("assign")
def assign(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    reviewers: Annotated[list[str], typer.Argument(help="Reviewer user names.")],
    as_json: JsonOption = False,
) -> None:
    """Assign reviewers (program managers); the request goes in review."""
    with connect(ctx) as client:
        _step(client.assign_reviewers(request_id, reviewers), as_json)


def parse_scores(specs: Sequence[str]) -> dict[str, int]:
    """``merit=4`` per criterion of the program's rubric."""
    scores: dict[str, int] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not key or not value.strip().isdigit():
            raise typer.BadParameter(
                f"{spec!r}: use CRITERION=SCORE, e.g. merit=4", param_hint="'--criterion'"
            )
        scores[key.strip()] = int(value)
    return scores


@app.command("review")
def review(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    score: Annotated[
        int | None, typer.Option("--score", min=1, max=5, help="1 (poor) to 5 (no rubric).")
    ] = None,
    criterion: Annotated[
        list[str] | None,
        typer.Option(
            "--criterion",
            "-c",
            metavar="KEY=SCORE",
            help="A score per criterion of the program's rubric (repeat for each).",
        ),
    ] = None,
    comment: Annotated[str, typer.Option("--comment", "-m")] = "",
    as_json: JsonOption = False,
) -> None:
    """Score and comment a request assigned to you: one --score, or, where its program
    has a rubric (axc alloc show lists it), a --criterion KEY=SCORE for each criterion."""
    scores = parse_scores(criterion or [])
    if score is None and not scores:
        raise typer.BadParameter("give --score, or --criterion KEY=SCORE for each criterion")
    with connect(ctx) as client:
        _step(client.review_request(request_id, score, comment, scores or None), as_json)


@app.command("approve")
def approve(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    gpu_hours: HoursOption = None,
    start: Annotated[str | None, typer.Option("--start", metavar="ISO")] = None,
    end: Annotated[str | None, typer.Option("--end", metavar="ISO")] = None,
    on_exhaustion: Annotated[
        str, typer.Option("--on-exhaustion", help="stop, or preemptible: jobs run unfunded.")
    ] = "stop",
    comment: Annotated[str, typer.Option("--comment", "-m")] = "",
    as_json: JsonOption = False,
) -> None:
    """Approve, optionally granting less (--gpu-hours) or another window."""
    if on_exhaustion not in ("stop", "preemptible"):
        raise typer.BadParameter("stop or preemptible", param_hint="'--on-exhaustion'")
    items = parse_hours(gpu_hours) or None
    with connect(ctx) as client:
        out = client.approve_request(
            request_id,
            items=items,
            starts_at=_iso(parse_when(start, "--start")) if start else None,
            ends_at=_iso(parse_when(end, "--end")) if end else None,
            on_exhaustion=on_exhaustion,
            comment=comment,
        )
    _step(out, as_json)


CommentRequired = Annotated[str, typer.Option("--comment", "-m", help="Why (required).")]


@app.command("reject")
def reject(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    comment: CommentRequired,
    as_json: JsonOption = False,
) -> None:
    """Reject a request, saying why."""
    with connect(ctx) as client:
        _step(client.reject_request(request_id, comment), as_json)


@app.command("return")
def return_request(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    comment: CommentRequired,
    as_json: JsonOption = False,
) -> None:
    """Return a request for changes, saying which."""
    with connect(ctx) as client:
        _step(client.return_request(request_id, comment), as_json)


@app.command("resubmit")
def resubmit(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    gpu_hours: HoursOption = None,
    end: Annotated[str | None, typer.Option("--end", metavar="ISO")] = None,
    justification: Annotated[str | None, typer.Option("--justification", "-j")] = None,
    comment: Annotated[str, typer.Option("--comment", "-m")] = "",
    as_json: JsonOption = False,
) -> None:
    """Resubmit a returned request, with the changes given."""
    with connect(ctx) as client:
        out = client.resubmit_request(
            request_id,
            items=parse_hours(gpu_hours) or None,
            ends_at=_iso(parse_when(end, "--end")) if end else None,
            justification=justification,
            comment=comment,
        )
    _step(out, as_json)


@app.command("withdraw")
def withdraw(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    comment: Annotated[str, typer.Option("--comment", "-m")] = "",
    as_json: JsonOption = False,
) -> None:
    """Withdraw a request that is not decided yet."""
    with connect(ctx) as client:
        _step(client.withdraw_request(request_id, comment), as_json)


@app.command("balance")
def balance(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include ended ones.")] = False,
    as_json: JsonOption = False,
) -> None:
    """What each allocation has left (GPU-hours per type and won), with warnings."""
    with connect(ctx) as client:
        items = client.list_allocations(project=project, status=None if all_ else "active")
    if as_json:
        print_json(items)
    elif not items:
        say("no allocations")
    else:
        render.out_console().print(Group(allocations_table(items), *balance_lines(items)))
