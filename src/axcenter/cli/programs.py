"""``axc program``: funding programs (calls) with their budgets and co-funding rules, their
effective-dated rules (discounts, self-paid share, caps, tranches), outcome-survey forms,
and what each grant owes (``obligations``, ``remind``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from axcenter.cli import render
from axcenter.cli.alloc import say, table, text, utc, won
from axcenter.cli.common import connect, new_app, print_json
from axcenter.cli.policy import parse_when

__all__ = ["app", "parse_discount", "programs_table", "share"]

app = new_app(
    help="Funding programs: budgets, rules, surveys, obligations.",
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


# -- rules, surveys, obligations ------------------------------------------------------------


def _percent_bp(value: str, option: str) -> int:
    try:
        number = float(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a percentage", param_hint=option) from None
    if not 0 < number <= 100:
        raise typer.BadParameter(f"{value}% is not within 0..100", param_hint=option)
    return round(number * 100)


def parse_discount(spec: str) -> dict[str, Any]:
    """``region=Gwangju:50``, ``size=SME:20`` or ``startup:30`` as a modifier."""
    head, sep, pct = spec.rpartition(":")
    if not sep or not head:
        raise typer.BadParameter(
            f"{spec!r}: use region=NAME:PERCENT, size=SME|mid|large:PERCENT or startup:PERCENT",
            param_hint="'--discount'",
        )
    kind, _, match = head.partition("=")
    if kind not in ("region", "size", "startup"):
        raise typer.BadParameter(
            f"{kind!r}: a discount is for a region, a size or startups", param_hint="'--discount'"
        )
    return {
        "kind": kind,
        "match": match or None,
        "discount_bp": _percent_bp(pct, "'--discount'"),
    }


def parse_criterion(spec: str) -> dict[str, Any]:
    """``merit:40:5=Technical merit`` (KEY:WEIGHT[:SCALE]=LABEL) as a rubric criterion."""
    head, _, label = spec.partition("=")
    parts = head.split(":")
    if len(parts) not in (2, 3) or not all(p.strip().isdigit() for p in parts[1:]):
        raise typer.BadParameter(
            f"{spec!r}: use KEY:WEIGHT[:SCALE]=LABEL, e.g. merit:40:5=Technical merit",
            param_hint="'--criterion'",
        )
    key = parts[0].strip()
    return {
        "key": key,
        "label": label.strip() or key,
        "weight": int(parts[1]),
        "scale": int(parts[2]) if len(parts) == 3 else 5,
    }


def parse_preference(spec: str) -> dict[str, Any]:
    """``region=Gwangju:5``, ``size=SME:3`` or ``startup:2`` (bonus points in review)."""
    head, sep, points = spec.rpartition(":")
    kind, _, match = head.partition("=")
    if not sep or kind not in ("region", "size", "startup") or not points.strip().isdigit():
        raise typer.BadParameter(
            f"{spec!r}: use region=NAME:POINTS, size=SME|mid|large:POINTS or startup:POINTS",
            param_hint="'--prefer'",
        )
    return {"kind": kind, "match": match or None, "points": int(points)}


def _rules_line(r: Mapping[str, Any]) -> str:
    parts = []
    if r.get("self_paid_bp") is not None:
        parts.append(f"self-paid {r['self_paid_bp'] / 100:g}%")
    for m in r.get("modifiers") or []:
        what = "youth startup" if m["kind"] == "startup" else f"{m['kind']} {m['match']}"
        parts.append(f"{what} -{m['discount_bp'] / 100:g}%")
    caps = r.get("caps") or {}
    if caps.get("org_gpu_hours"):
        parts.append(f"cap {caps['org_gpu_hours']:,} GPU-hours per organization")
    if caps.get("org_won"):
        parts.append(f"cap {caps['org_won']:,} won per organization")
    tranches = r.get("tranches_bp") or [10_000]
    if len(tranches) > 1:
        parts.append("tranches " + "/".join(f"{b / 100:g}" for b in tranches))
    if r.get("accrual_period"):
        parts.append(f"accrual {r['accrual_period']}")
    if r.get("rubric"):
        parts.append(
            "rubric "
            + ", ".join(f"{c['key']} {c['weight']} (1..{c['scale']})" for c in r["rubric"])
        )
    for p in r.get("preferences") or []:
        what = "youth startup" if p["kind"] == "startup" else f"{p['kind']} {p['match']}"
        parts.append(f"review preference {what} +{p['points']}")
    return "; ".join(parts) or "no rules"


@app.command("rules")
def rules(
    ctx: typer.Context,
    program: Annotated[str, typer.Argument(help="Program name or prg_ id.")],
    as_json: JsonOption = False,
) -> None:
    """Every rule set of a program, oldest first, and which is in force."""
    with connect(ctx) as client:
        items = client.list_program_rules(program)
    if as_json:
        print_json(items)
        return
    if not items:
        say(f"{escape(program)} has no rules: its co-funding rule alone applies")
        return
    t = table()
    t.add_column("ID")
    t.add_column("FROM")
    t.add_column("IN FORCE")
    t.add_column("RULES", overflow="fold")
    for r in items:
        t.add_row(
            escape(text(r.get("id"))),
            utc(r.get("effective_from")),
            "yes" if r.get("in_force") else "",
            _rules_line(r),
        )
    render.out_console().print(t)


@app.command("set-rules")
def set_rules(
    ctx: typer.Context,
    program: Annotated[str, typer.Argument(help="Program name or prg_ id.")],
    self_paid: Annotated[
        float | None,
        typer.Option("--self-paid", min=0, max=100, help="Company's share of each charge (%)."),
    ] = None,
    discount: Annotated[
        list[str] | None,
        typer.Option(
            "--discount",
            metavar="KIND[=MATCH]:PERCENT",
            help="region=Gwangju:50, size=SME:20 or startup:30 (repeatable; the largest "
            "that applies counts).",
        ),
    ] = None,
    cap_gpu_hours: Annotated[
        int | None,
        typer.Option("--cap-gpu-hours", min=1, help="GPU-hours per organization, all programs."),
    ] = None,
    cap_won: Annotated[
        int | None, typer.Option("--cap-won", min=1, help="Won per organization, this program.")
    ] = None,
    tranches: Annotated[
        str | None,
        typer.Option("--tranches", metavar="P,P,...", help="Tranche shares in %, e.g. 50,50."),
    ] = None,
    accrual: Annotated[
        str | None,
        typer.Option(
            "--accrual",
            metavar="hour|day|off",
            help="How often its running jobs are charged as they run (default: the center's).",
        ),
    ] = None,
    criterion: Annotated[
        list[str] | None,
        typer.Option(
            "--criterion",
            metavar="KEY:WEIGHT[:SCALE]=LABEL",
            help="A criterion of the review rubric, e.g. merit:40:5=Technical merit "
            "(repeatable; none: reviews give one score 1..5).",
        ),
    ] = None,
    prefer: Annotated[
        list[str] | None,
        typer.Option(
            "--prefer",
            metavar="KIND[=MATCH]:POINTS",
            help="Bonus points in review: region=Gwangju:5, size=SME:3 or startup:2 "
            "(repeatable; they add up).",
        ),
    ] = None,
    start: Annotated[str | None, typer.Option("--from", metavar="ISO")] = None,
    as_json: JsonOption = False,
) -> None:
    """Set a program's rules from now (or --from) on: they replace the rules in force then,
    for charges of runs that start and grants approved from that moment."""
    shares = (
        [_percent_bp(p.strip(), "'--tranches'") for p in tranches.split(",")] if tranches else None
    )
    effective = parse_when(start, "--from") if start else None
    with connect(ctx) as client:
        out = client.set_program_rules(
            program,
            self_paid_bp=round(self_paid * 100) if self_paid is not None else None,
            modifiers=[parse_discount(d) for d in discount or []],
            caps={"org_gpu_hours": cap_gpu_hours, "org_won": cap_won},
            tranches_bp=shares,
            accrual_period=accrual,
            rubric=[parse_criterion(c) for c in criterion or []],
            preferences=[parse_preference(p) for p in prefer or []],
            effective_from=effective.isoformat() if effective else None,
        )
    if as_json:
        print_json(out)
        return
    name = escape(text(out.get("program")))
    say(f"{name} from {utc(out.get('effective_from'))}: {_rules_line(out)}")


@app.command("remove-rules")
def remove_rules(
    ctx: typer.Context,
    program: Annotated[str, typer.Argument(help="Program name or prg_ id.")],
    rules_id: Annotated[str, typer.Argument(metavar="RULES", help="rul_ id (axc program rules).")],
    as_json: JsonOption = False,
) -> None:
    """Withdraw rules that have not taken effect yet; rules in force stay (set new rules
    from now on to change them)."""
    with connect(ctx) as client:
        out = client.remove_program_rules(program, rules_id)
    if as_json:
        print_json(out)
        return
    say(
        f"withdrew {escape(text(out.get('id')))} of {escape(text(out.get('program')))} "
        f"(from {utc(out.get('effective_from'))}): {_rules_line(out)}"
    )


STATE_STYLES: Mapping[str, str] = {
    "overdue": "bold red",
    "due": "yellow",
    "submitted": "cyan",
    "done": "green",
}


def _state(value: object) -> str:
    state = text(value)
    style = STATE_STYLES.get(state)
    return f"[{style}]{state}[/]" if style else state


@app.command("obligations")
def obligations(
    ctx: typer.Context,
    program: Annotated[str, typer.Argument(help="Program name or prg_ id.")],
    as_json: JsonOption = False,
) -> None:
    """What each grant of the program owes: tranches, the next progress report and the
    outcome surveys, overdue first."""
    with connect(ctx) as client:
        out = client.obligations(program)
    if as_json:
        print_json(out)
        return
    items = out.get("items") or []
    if not items:
        say(f"{escape(program)} has no grants you may see")
        return
    t = table()
    t.add_column("ALLOCATION")
    t.add_column("PROJECT", overflow="fold")
    t.add_column("ORGANIZATION", overflow="fold")
    t.add_column("TRANCHES", justify="right")
    t.add_column("REPORT")
    t.add_column("REPORT DUE")
    t.add_column("SURVEYS", overflow="fold")
    t.add_column("OVERDUE", justify="right")
    for o in items:
        surveys = ", ".join(
            f"{escape(s['form'])} {s['round']}: {_state(s['state'])}"
            for s in o.get("surveys") or []
        )
        t.add_row(
            text(o.get("allocation_id")),
            escape(text(o.get("project"))),
            escape(text(o.get("organization"))),
            f"{o.get('tranches_released')}/{o.get('tranches_total')}",
            _state(o.get("report_state")),
            utc(o.get("report_due_at")),
            surveys or "-",
            str(o.get("overdue", 0)),
        )
    render.out_console().print(t)
    say(f"{out.get('overdue_grants', 0)} of {len(items)} grants have something overdue")


@app.command("remind")
def remind(
    ctx: typer.Context,
    program: Annotated[str, typer.Argument(help="Program name or prg_ id.")],
    as_json: JsonOption = False,
) -> None:
    """Send a reminder for each overdue report and survey (at most one a week each)."""
    with connect(ctx) as client:
        sent = client.send_reminders(program)
    if as_json:
        print_json(sent)
        return
    for n in sent:
        project, reason = escape(text(n.get("project"))), escape(text(n.get("reason")))
        say(f"{text(n.get('allocation_id'))} ({project}): {reason}")
    say(f"{len(sent)} reminders sent")


@app.command("surveys")
def surveys(
    ctx: typer.Context,
    program: Annotated[str, typer.Argument(help="Program name or prg_ id.")],
    as_json: JsonOption = False,
) -> None:
    """The program's outcome-survey forms."""
    with connect(ctx) as client:
        items = client.list_survey_forms(program)
    if as_json:
        print_json(items)
        return
    t = table()
    t.add_column("FORM")
    t.add_column("NAME", overflow="fold")
    t.add_column("FIELDS", overflow="fold")
    t.add_column("DUE", overflow="fold")
    for f in items:
        due = [str(d) for d in f.get("due_dates") or []] + (["final"] if f.get("at_end") else [])
        t.add_row(
            text(f.get("id")),
            escape(text(f.get("name"))),
            ", ".join(f"{x['key']} ({x['kind']})" for x in f.get("fields") or []),
            ", ".join(due),
        )
    render.out_console().print(t)


@app.command("add-survey")
def add_survey(
    ctx: typer.Context,
    program: Annotated[str, typer.Argument(help="Program name or prg_ id.")],
    path: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="The form as YAML or JSON: name, fields (key, label_en, label_ko, kind: "
            "count|won|yes_no|text, required), due_dates, at_end.",
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Define an outcome-survey form for the program's funded projects."""
    import yaml  # noqa: PLC0415

    try:
        form = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise typer.BadParameter(f"{path}: not YAML or JSON ({exc})") from None
    if not isinstance(form, dict):
        raise typer.BadParameter(f"{path}: a form is a mapping (name, fields, ...)")
    for key in ("due_dates",):
        if key in form:
            form[key] = [str(d) for d in form[key]]
    with connect(ctx) as client:
        out = client.create_survey_form(program, form)
    if as_json:
        print_json(out)
        return
    say(f"created survey form [bold]{escape(text(out.get('name')))}[/] ({text(out.get('id'))})")
