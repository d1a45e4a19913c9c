"""``axc report``: usage by any grouping, and a program's burn-down with its forecast.

``axc report usage --by program --by month --since 2025-01 --until 2025-04`` prints a
table whose last row is the total (the sum of the rows, as the server computes it);
``--csv FILE`` saves the server's CSV ('-': stdout) and ``--json`` prints its JSON, so
the figures a ministry receives are the server's, never re-rounded here.
``axc report burndown PROGRAM`` prints the days with charges and one line of forecast.
``axc report settlement PROGRAM`` and ``axc report statement ORG YYYY-MM`` print a
program's settlement and an organization's monthly statement; ``--out FILE.csv|.xlsx``
saves the server's file in the documented layout.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from axcenter.cli import render
from axcenter.cli.common import connect, count, new_app, print_json, shifted, when
from axcenter.cli.durations import format_duration, parse_duration
from axcenter.cli.policy import parse_when

__all__ = ["acct", "acct_csv", "acct_table", "app", "burndown", "commands", "usage"]

app = new_app(help="Usage reports, burn-downs, settlements and statements.", no_args_is_help=True)

_MONTH = re.compile(r"^\d{4}-\d{2}$")
_FIGURES = (
    ("GRANTED GPU-H", "granted_gpu_hours"),
    ("USED GPU-H", "used_gpu_hours"),
    ("UTIL", "utilization"),
    ("CHARGED WON", "charged_won"),
    ("PUBLIC WON", "public_won"),
    ("CO-PAY WON", "copay_won"),
    ("RUNS", "runs"),
    ("JOBS", "jobs"),
    ("WAIT MEAN", "wait_mean_s"),
    ("WAIT P95", "wait_p95_s"),
)


def _when(text: str | None, option: str) -> str | None:
    """ISO-8601 for the API; ``YYYY-MM`` is the first instant of that month (UTC)."""
    if text is None:
        return None
    if _MONTH.match(text.strip()):
        text = f"{text.strip()}-01T00:00:00"
    return (parse_when(text, option) or datetime.now(UTC)).isoformat()


def _decimal(value: object) -> Decimal | None:
    try:
        return None if value is None else Decimal(str(value))
    except InvalidOperation:
        return None


def _cell(key: str, value: object) -> str:
    """A figure as a person reads it: won and counts with separators, ratios as percent."""
    if value is None:
        return "-"
    if key.endswith("_won") or key in ("runs", "jobs"):
        return f"{int(str(value)):,}"
    number = _decimal(value)
    if number is None:
        return str(value)
    if key == "utilization":
        return f"{number * 100:.2f}%"
    if key.startswith("wait"):
        return format_duration(float(number))
    return f"{number:,}"


def usage_table(report: Mapping[str, Any]) -> Table:
    """Rows as the server sent them, a rule, then the TOTAL row in bold."""
    dims = [str(d) for d in report.get("group_by") or []]
    since, until = (render.parse_time(report.get(k)) for k in ("since", "until"))
    period = f"{when(since) if since else 'the beginning'} to {when(until) if until else 'now'}"
    table = Table(
        title=f"usage by {', '.join(dims) or 'nothing'}, {period}",
        title_justify="left",
        box=None,
        header_style="bold",
        pad_edge=False,
    )
    for dim in dims:
        table.add_column(dim.upper().replace("_", " "), overflow="fold")
    for header, _ in _FIGURES:
        table.add_column(header, justify="right", no_wrap=True)
    for row in report.get("rows") or []:
        keys = row.get("keys") or {}
        table.add_row(
            *(escape(str(keys.get(d) or "-")) for d in dims),
            *(_cell(key, row.get(key)) for _, key in _FIGURES),
        )
    total = report.get("total") or {}
    table.add_section()
    labels = ["TOTAL"] + [""] * (len(dims) - 1) if dims else []
    table.add_row(*labels, *(_cell(key, total.get(key)) for _, key in _FIGURES), style="bold")
    return table


def _write_csv(text: str, out: Path, what: str | None = None) -> None:
    """Write ``text`` to the file ``out`` whole (never half), or to stdout for ``-``;
    ``what`` says on stderr what was written (default: a report's rows and total)."""
    if str(out) == "-":
        typer.echo(text, nl=False)
        return
    partial = out.with_name(out.name + ".partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    rows = max(text.count("\n") - 2, 0)  # less the header and the TOTAL row
    what = what or f"{rows:,} rows and the total"
    render.err_console().print(f"wrote {what} to {out}", markup=False)


@app.command("usage")
def usage(
    ctx: typer.Context,
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            help="Group by: program, organization, project, sector, size_class, region, "
            "gpu_type, month (repeat for several; default: program).",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="From this time (ISO-8601, or YYYY-MM; no zone means UTC).",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Before this time (exclusive).", show_default=False),
    ] = None,
    csv_out: Annotated[
        Path | None,
        typer.Option(
            "--csv", help="Write the server's CSV to FILE ('-': stdout).", show_default=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """GPU-hours granted vs used, won charged (public and co-pay) and queue waits.

    Without --until the report ends now: grants count up to now, not to their end, so
    utilization compares like with like."""
    if csv_out is not None and as_json:
        raise typer.BadParameter("choose one of --csv and --json", param_hint="'--csv'")
    start, end = _when(since, "--since"), _when(until, "--until")
    now = datetime.now(UTC)
    if end is None and (start is None or datetime.fromisoformat(start) < now):
        end = now.isoformat()
    with connect(ctx) as client:
        if csv_out is not None:
            _write_csv(client.usage_report_csv(by or (), start, end), csv_out)
            return
        report = client.usage_report(by or (), start, end)
    if as_json:
        print_json(report)
        return
    render.out_console().print(usage_table(report))


def forecast_line(b: Mapping[str, Any]) -> str:
    """One sentence: when the budget runs out at the current rate, or why we cannot say."""
    budget, remaining = int(b.get("budget_won") or 0), int(b.get("remaining_won") or 0)
    rate = _decimal(b.get("rate_won_per_day")) or Decimal(0)
    day = b.get("forecast")
    if remaining <= 0:
        return f"budget of {budget:,} won spent" + (f" on {day}" if day else "")
    if not day and rate > 0:
        years = int(Decimal(remaining) / rate / 365)
        return (
            f"{remaining:,} of {budget:,} won left; at {rate:,.0f} won/day (last 7 days) it "
            f"lasts more than {years:,} years: no end in sight"
        )
    if not day:
        return (
            f"{remaining:,} of {budget:,} won left; nothing charged in the last 7 days: no forecast"
        )
    now = render.parse_time(b.get("now")) or datetime.now(UTC)
    days = (date.fromisoformat(str(day)) - now.date()).days
    line = (
        f"{remaining:,} of {budget:,} won left; at {rate:,.0f} won/day (last 7 days) "
        f"the budget runs out on {day} (in {days:,} days)"
    )
    ends = render.parse_time(b.get("ends_at"))
    if ends is not None and date.fromisoformat(str(day)) > ends.date():
        line += f", after the program ends on {ends.date()}"
    early, late = b.get("forecast_early"), b.get("forecast_late")
    if early:
        line += f"; between {early} and {late or 'never'} at the fastest and slowest 7-day rates"
    running = int(b.get("running_jobs") or 0)
    if running:
        accrued = int(b.get("accrued_won") or 0)
        line += f"; {running:,} running job(s) used {accrued:,} won since their last charge"
    return line


@app.command("burndown")
def burndown(
    ctx: typer.Context,
    program: Annotated[str, typer.Argument(help="Program name or id.", show_default=False)],
    csv_out: Annotated[
        Path | None,
        typer.Option(
            "--csv", help="Write the server's CSV to FILE ('-': stdout).", show_default=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A program's charges per day against its budget, and when the budget runs out."""
    if csv_out is not None and as_json:
        raise typer.BadParameter("choose one of --csv and --json", param_hint="'--csv'")
    with connect(ctx) as client:
        if csv_out is not None:
            text = client.burndown_csv(program)
            _write_csv(text, csv_out, count(max(text.count(chr(10)) - 1, 0), "day"))
            return
        b = client.burndown(program)
    if as_json:
        print_json(b)
        return
    table = Table(
        title=f"{b.get('program', program)}: budget {int(b.get('budget_won') or 0):,} won, "
        f"granted {int(b.get('granted_won') or 0):,} won",
        title_justify="left",
        box=None,
        header_style="bold",
        pad_edge=False,
    )
    for header in ("DAY", "CHARGED WON", "PUBLIC WON", "CUMULATIVE WON", "REMAINING WON"):
        table.add_column(header, justify="left" if header == "DAY" else "right", no_wrap=True)
    for d in b.get("days") or []:
        if d.get("charged_won"):  # days without charges would only repeat the line above
            table.add_row(
                str(d.get("day")),
                *(
                    _cell(k, d.get(k))
                    for k in (
                        "charged_won",
                        "public_won",
                        "cumulative_charged_won",
                        "remaining_won",
                    )
                ),
            )
    table.add_section()
    table.add_row(
        "TOTAL",
        *(
            _cell(k, b.get(k))
            for k in ("charged_won", "public_won", "charged_won", "remaining_won")
        ),
        style="bold",
    )
    console = render.out_console()
    console.print(table)
    console.print(f"forecast: {forecast_line(b)}", markup=False, soft_wrap=True)


# -- axc acct: jobs of a period, as sacct -------------------------------------------------

_ACCT_CSV = (
    "job_id,task,name,user,project,state,gpus,gpu_type,submitted_at,started_at,ended_at,"
    "elapsed_s,gpu_hours,charged_won,exit_code"
)


def _since(text: str | None, option: str) -> str | None:
    """``--since``/``--until``: ISO-8601, ``YYYY-MM``, or a duration meaning that long ago
    (``7d``, ``12h``: Slurm's ``now-7days``)."""
    if text is None:
        return None
    try:
        ago = parse_duration(text)
    except ValueError:
        return _when(text, option)
    return shifted(datetime.now(UTC), -ago, option).isoformat()


def _gpu_hours(row: Mapping[str, Any]) -> Decimal:
    return (Decimal(int(row.get("gpu_seconds") or 0)) / 3600).quantize(Decimal("0.01"))


def acct_csv(rows: list[Mapping[str, Any]]) -> str:
    """The rows of ``axc acct`` as CSV, with a header, one line per job."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_ACCT_CSV.split(","))
    for r in rows:
        writer.writerow(
            [
                r.get("id"),
                render.job_ref(r) if r.get("array_id") else "",
                r.get("name"),
                r.get("user"),
                r.get("project"),
                r.get("state"),
                r.get("gpus"),
                r.get("gpu_type") or "",
                r.get("submitted_at"),
                r.get("started_at") or "",
                r.get("ended_at") or "",
                r.get("elapsed_s"),
                _gpu_hours(r),
                r.get("charged_won"),
                "" if r.get("exit_code") is None else r.get("exit_code"),
            ]
        )
        for step in r.get("steps") or ():  # a row per step, as sacct's: no GPUs, no won
            code = step.get("exit_code")
            writer.writerow(
                [
                    step.get("id"),
                    "",
                    "",
                    step.get("user"),
                    r.get("project"),
                    step.get("state"),
                    "",
                    "",
                    "",
                    step.get("started_at"),
                    step.get("ended_at") or "",
                    _step_elapsed(step),
                    "",
                    "",
                    "" if code is None else code,
                ]
            )
    return buffer.getvalue()


def _step_elapsed(step: Mapping[str, Any]) -> int:
    started, ended = (
        render.parse_time(step.get("started_at")),
        render.parse_time(step.get("ended_at")),
    )
    if started is None:
        return 0
    return max(0, round(((ended or datetime.now(UTC)) - started).total_seconds()))


def acct_table(rows: list[Mapping[str, Any]]) -> Table:
    """The rows of ``axc acct`` as a table with a total line; starts in the center's zone."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("JOB", "NAME", "USER", "PROJECT", "STATE", "START", "GPUS", "ELAPSED"):
        table.add_column(name, no_wrap=name in ("JOB", "STATE", "START"))
    for name in ("GPU-H", "WON", "EXIT"):
        table.add_column(name, justify="right")
    for r in rows:
        table.add_row(
            render.job_ref(r),
            escape(str(r.get("name") or "-")),
            escape(str(r.get("user") or "-")),
            escape(str(r.get("project") or "-")),
            render.state_text(r.get("state")),
            when(render.parse_time(r.get("started_at"))),
            f"{r.get('gpus')}x{r.get('gpu_type')}" if r.get("gpu_type") else str(r.get("gpus")),
            format_duration(int(r.get("elapsed_s") or 0)),
            f"{_gpu_hours(r):,}",
            f"{int(r.get('charged_won') or 0):,}",
            "-" if r.get("exit_code") is None else str(r.get("exit_code")),
        )
        for step in r.get("steps") or ():  # as sacct: JOB.0, JOB.1... under their job
            table.add_row(
                f"  {step.get('id')}",
                "",
                escape(str(step.get("user") or "-")),
                "",
                render.state_text(step.get("state")),
                "",
                format_duration(_step_elapsed(step)),
                "",
                "",
                "-" if step.get("exit_code") is None else str(step.get("exit_code")),
            )
    table.add_section()
    hours = sum((_gpu_hours(r) for r in rows), Decimal(0))
    won = sum(int(r.get("charged_won") or 0) for r in rows)
    table.add_row(count(len(rows), "job"), *[""] * 7, f"{hours:,}", f"{won:,}", "", style="bold")
    return table


def acct(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            "-S",
            "--starttime",
            help="Jobs that ran from this time: ISO-8601, YYYY-MM, or that long ago (7d, "
            "12h). Default: 7 days ago.",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            "-E",
            "--endtime",
            help="... up to this time (default: now).",
            show_default=False,
        ),
    ] = None,
    user: Annotated[
        list[str] | None,
        typer.Option(
            "--user", "-u", help="Only these users' jobs (repeatable, or a,b).", show_default=False
        ),
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", "--account", "-A", help="Only this project.")
    ] = None,
    csv_out: Annotated[
        Path | None,
        typer.Option("--csv", help="Write CSV to FILE ('-': stdout).", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Jobs that ran in a period with elapsed time, GPU-hours and won charged (sacct)."""
    if csv_out is not None and as_json:
        raise typer.BadParameter("choose one of --csv and --json", param_hint="'--csv'")
    users = [u.strip() for item in user or [] for u in item.split(",") if u.strip()]
    with connect(ctx) as client:
        answer = client.accounting(
            _since(since, "--since"), _since(until, "--until"), users, project
        )
    rows = list(answer.get("items") or [])
    if answer.get("truncated"):
        render.err_console().print(
            f"only the first {len(rows):,} jobs: narrow the period or filter by user or project",
            style="yellow",
            markup=False,
        )
    if as_json:
        print_json(answer)
    elif csv_out is not None:
        _write_csv(acct_csv(rows), csv_out, count(len(rows), "job"))
    elif not rows:
        render.err_console().print("no job ran in the period")
    else:
        render.out_console().print(acct_table(rows))


#: the top-level commands of this module, as ``axcenter.cli.main`` loads them
commands = new_app()
commands.command("acct")(acct)


# -- settlement and statements --------------------------------------------------------------

#: (header, column) of the settlement table on the terminal (the files have every column)
_SETTLEMENT = (
    ("GRANTED", "granted_won"),
    ("WITHDRAWN", "withdrawn_won"),
    ("RELEASED", "released_won"),
    ("LIST", "list_won"),
    ("DISCOUNT", "discount_won"),
    ("CHARGED", "charged_won"),
    ("PUBLIC", "public_won"),
    ("SELF-PAID", "self_paid_won"),
    ("UNUSED", "unused_won"),
    ("OPEN", "open_won"),
)
_STATEMENT = (
    ("RUNS", "runs"),
    ("LIST", "list_won"),
    ("DISCOUNT", "discount_won"),
    ("CHARGED", "charged_won"),
    ("PUBLIC", "public_won"),
    ("SELF-PAID", "self_paid_won"),
)

FileOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Write the documented layout to FILE: .csv or .xlsx by its suffix.",
        show_default=False,
    ),
]


def _sheet_format(out: Path) -> str:
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("csv", "xlsx"):
        raise typer.BadParameter(f"{out}: name a .csv or .xlsx file", param_hint="'--out'")
    return fmt


def _write_bytes(data: bytes, out: Path) -> None:
    partial = out.with_name(out.name + ".partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    render.err_console().print(f"wrote {out}", markup=False)


def _sheet_table(report: Mapping[str, Any], keys: Sequence[str], figures: Any) -> Table:
    t = Table(box=None, header_style="bold", pad_edge=False)
    for key in keys:
        t.add_column(key.upper())
    for header, _ in figures:
        t.add_column(header, justify="right", no_wrap=True)
    for row in [*(report.get("rows") or []), report.get("total") or {}]:
        if row is report.get("total"):
            t.add_section()
        t.add_row(
            *(escape(str(row.get(k) or "")) for k in keys),
            *(f"{row.get(c, 0):,}" for _, c in figures),
        )
    return t


@app.command("settlement")
def settlement(
    ctx: typer.Context,
    program: Annotated[str, typer.Argument(help="Program name or prg_ id.")],
    since: Annotated[str | None, typer.Option("--since", metavar="ISO|YYYY-MM")] = None,
    until: Annotated[str | None, typer.Option("--until", metavar="ISO|YYYY-MM")] = None,
    out: FileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A program's settlement (정산) per organization: granted, withdrawn, released;
    charged at list price, discounted, paid by the program and by the companies; unused."""
    start, end = _when(since, "--since"), _when(until, "--until")
    with connect(ctx) as client:
        if out is not None:
            data = client.settlement(program, start, end, _sheet_format(out))
            assert isinstance(data, bytes)
            _write_bytes(data, out)
            return
        report = client.settlement(program, start, end)
    assert isinstance(report, dict)
    if as_json:
        print_json(report)
        return
    render.out_console().print(_sheet_table(report, ["organization"], _SETTLEMENT))


@app.command("statement")
def statement(
    ctx: typer.Context,
    organization: Annotated[str, typer.Argument(help="Organization name or org_ id.")],
    month: Annotated[str, typer.Argument(help="YYYY-MM (the center's time zone).")],
    out: FileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """An organization's monthly statement: charges per program, project and GPU type,
    with the terms applied and the self-paid part the company owes."""
    if not _MONTH.match(month):
        raise typer.BadParameter(f"{month!r}: use YYYY-MM", param_hint="'MONTH'")
    with connect(ctx) as client:
        if out is not None:
            data = client.statement(organization, month, _sheet_format(out))
            assert isinstance(data, bytes)
            _write_bytes(data, out)
            return
        report = client.statement(organization, month)
    assert isinstance(report, dict)
    if as_json:
        print_json(report)
        return
    render.out_console().print(
        _sheet_table(report, ["program", "project", "gpu_type", "terms"], _STATEMENT)
    )


@app.command("evidence")
def evidence(
    ctx: typer.Context,
    program: Annotated[str, typer.Argument(help="Program name or prg_ id.")],
    since: Annotated[str | None, typer.Option("--since", metavar="ISO|YYYY-MM")] = None,
    until: Annotated[str | None, typer.Option("--until", metavar="ISO|YYYY-MM")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML report to write.")] = Path(
        "evidence.html"
    ),
    pdf: Annotated[
        Path | None, typer.Option("--pdf", help="Also write the report as PDF.", show_default=False)
    ] = None,
    more_gpus: Annotated[
        int | None,
        typer.Option(
            "--more-gpus", min=0, help="N in 'what N more GPUs would change' (default: +25%)."
        ),
    ] = None,
    more_won: Annotated[
        int | None,
        typer.Option(
            "--more-won",
            min=0,
            help="W in 'what W more won would change' (default: 20% of the budget).",
        ),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Replays in parallel.")] = 2,
) -> None:
    """The evidence report of a program (operators, program managers): what it bought,
    whom it reached, how long they waited, its outcomes, and what N more GPUs or W more
    won would have changed (the center's history replayed on a larger cluster); one
    self-contained HTML page in Korean and English, and a PDF with --pdf."""
    from axcenter.cli.evidence import (  # noqa: PLC0415 (Matplotlib, the simulator)
        render_evidence,
        scenarios_for,
        what_ifs,
    )

    start, end = _when(since, "--since"), _when(until, "--until")
    with connect(ctx) as client:
        data = client.evidence(program, start, end)
    scenarios, money = scenarios_for(data, more_gpus, more_won)
    results = what_ifs(data, scenarios, workers)
    command = "axc report evidence " + " ".join(
        [repr(program)]
        + [f"{k} {v}" for k, v in (("--since", since), ("--until", until)) if v]
        + [f"--more-gpus {more_gpus}"] * (more_gpus is not None)
        + [f"--more-won {more_won}"] * (more_won is not None)
    )
    page = render_evidence(data, results, money, command)
    _write_csv(page, out, f"the evidence report of {program}")
    if pdf is not None:
        try:
            from weasyprint import HTML  # type: ignore[import-untyped]  # noqa: PLC0415
        except ImportError:
            raise typer.BadParameter(
                "PDF needs WeasyPrint: pip install 'axcenter[pdf]'", param_hint="'--pdf'"
            ) from None
        HTML(string=page).write_pdf(pdf)
        render.err_console().print(f"wrote {pdf}", markup=False)
