"""Usage reports, aggregated in SQL from the ledger, grants and jobs.

A ministry audits these figures, so they come from the same ledger the scheduler spends
from and follow the rules of docs/accounting.md:

- won are integers; every additive column of the total row is the sum of the rows, and the
  won and GPU-second totals equal the sums of the ledger's charges in the period;
- GPU-hours are GPU-seconds / 3600 rounded half up to 0.001 per row (the total row adds
  the rounded rows, so the column foots); the exact integer GPU-seconds travel alongside;
- a grant accrues evenly over its allocation's window: the part in ``[a, b)`` is
  ``share(b) - share(a)`` with ``share`` rounded half up, so the parts of consecutive
  months add up exactly to the part of the whole period, whatever the grouping.

Charges and waits are grouped by the database (a GROUP BY, and window functions for the
95th percentile), so no ledger or job row leaves it; grants are few (one row per
allocation and GPU type) and are prorated here. ``scope`` restricts every figure to the
projects a caller may see.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select, true
from sqlalchemy.orm import Session

from axcenter.accounting.ledger import CHARGE_KINDS
from axcenter.store import orm

__all__ = [
    "DIMENSIONS",
    "Report",
    "ReportRow",
    "Scope",
    "gpu_hours",
    "month_starts",
    "prorated",
    "usage_report",
    "utc_text",
    "utilization",
]

#: what a usage report may be grouped by (``month``: calendar month in UTC, ``YYYY-MM``)
DIMENSIONS = (
    "program",
    "organization",
    "project",
    "sector",
    "size_class",
    "region",
    "gpu_type",
    "month",
)

#: a clause on ``orm.Project``, a set of project ids, or None for every project
Scope = ColumnElement[bool] | Collection[str] | None
Key = tuple[str | None, ...]

_US = timedelta(microseconds=1)
#: the columns the ledger's charges give, and all that add up (the total row's sums)
_CHARGE_FIELDS = ("used_gpu_seconds", "charged_won", "public_won", "copay_won", "runs")
_ADDITIVE = ("granted_gpu_seconds", *_CHARGE_FIELDS, "jobs")


def gpu_hours(gpu_secs: int) -> Decimal:
    """GPU-seconds as GPU-hours, rounded half up to 0.001 (exact integer arithmetic)."""
    return Decimal((2 * gpu_secs * 1000 + 3600) // 7200).scaleb(-3)


def utilization(used_secs: int, granted_secs: int) -> Decimal | None:
    """used / granted rounded half up to 0.0001; None when nothing was granted."""
    if granted_secs <= 0:
        return None
    return Decimal((2 * used_secs * 10_000 + granted_secs) // (2 * granted_secs)).scaleb(-4)


def prorated(total: int, start: datetime, end: datetime, at: datetime) -> int:
    """The part of ``total`` accrued by ``at`` when it accrues evenly over ``[start, end)``,
    rounded half up. Differences of these shares telescope, so parts never lose a unit."""
    if at <= start:
        return 0
    if at >= end:
        return total
    span, done = (end - start) // _US, (at - start) // _US
    return (2 * total * done + span) // (2 * span)


def month_starts(start: datetime, end: datetime) -> list[datetime]:
    """Starts (UTC) of the calendar months that ``[start, end)`` touches."""
    at = start.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    out = []
    while at < end:
        out.append(at)
        at = _next_month(at)
    return out


def _next_month(at: datetime) -> datetime:
    return (
        at.replace(year=at.year + 1, month=1) if at.month == 12 else at.replace(month=at.month + 1)
    )


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One group of a usage report (or the total row, whose ``keys`` are all None)."""

    keys: Key
    granted_gpu_seconds: int = 0
    used_gpu_seconds: int = 0
    charged_won: int = 0
    public_won: int = 0
    copay_won: int = 0
    runs: int = 0  # charged runs (one charge per run)
    jobs: int = 0  # jobs whose latest run started in the period (the waits' population)
    granted_gpu_hours: Decimal = Decimal("0.000")
    used_gpu_hours: Decimal = Decimal("0.000")
    utilization: Decimal | None = None
    wait_mean_s: Decimal | None = None  # seconds, rounded half up to 0.1
    wait_p95_s: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Report:
    group_by: tuple[str, ...]
    since: datetime | None
    until: datetime | None
    rows: tuple[ReportRow, ...]
    total: ReportRow


Waits = dict[Key, tuple[int, Decimal | None, Decimal | None]]


def usage_report(
    session: Session,
    group_by: Sequence[str],
    since: datetime | None = None,
    until: datetime | None = None,
    scope: Scope = None,
    *,
    waits: bool = True,
) -> Report:
    """Granted vs used GPU-hours, won charged, runs and waits per group in ``[since, until)``.

    A charge falls in the period (and month) of its ledger time ``at``; a job's wait
    (``started_at - submitted_at``) in those of its ``started_at``. ``waits=False`` skips
    the queue statistics (``jobs`` 0, waits null): they rank every started job, which a
    caller that shows only GPU-hours and won need not pay for.
    """
    dims = tuple(group_by)
    if any(d not in DIMENSIONS for d in dims) or len(set(dims)) != len(dims):
        raise ValueError(f"group_by must name distinct dimensions of {', '.join(DIMENSIONS)}")
    where = _scope_clause(scope)
    acc: defaultdict[Key, dict[str, int]] = defaultdict(lambda: dict.fromkeys(_ADDITIVE, 0))
    _add_grants(session, dims, since, until, where, acc)
    _add_charges(session, dims, since, until, where, acc)
    queued = _waits(session, dims, since, until, where) if waits else {}
    for key, (jobs, _, _) in queued.items():
        acc[key]["jobs"] = jobs
    rows = tuple(
        ReportRow(
            key,
            **sums,
            granted_gpu_hours=gpu_hours(sums["granted_gpu_seconds"]),
            used_gpu_hours=gpu_hours(sums["used_gpu_seconds"]),
            utilization=utilization(sums["used_gpu_seconds"], sums["granted_gpu_seconds"]),
            wait_mean_s=queued.get(key, (0, None, None))[1],
            wait_p95_s=queued.get(key, (0, None, None))[2],
        )
        for key, sums in sorted(acc.items(), key=lambda kv: _order(kv[0]))
    )
    totals = {f: sum(getattr(r, f) for r in rows) for f in _ADDITIVE}
    _, mean, p95 = (
        _waits(session, (), since, until, where).get((), (0, None, None))
        if waits
        else (0, None, None)
    )
    total = ReportRow(
        (None,) * len(dims),
        **totals,
        granted_gpu_hours=sum((r.granted_gpu_hours for r in rows), Decimal("0.000")),
        used_gpu_hours=sum((r.used_gpu_hours for r in rows), Decimal("0.000")),
        utilization=utilization(totals["used_gpu_seconds"], totals["granted_gpu_seconds"]),
        wait_mean_s=mean,
        wait_p95_s=p95,
    )
    return Report(group_by=dims, since=since, until=until, rows=rows, total=total)


def _order(key: Key) -> tuple[tuple[int, str], ...]:
    return tuple((1, "") if k is None else (0, k) for k in key)


def _scope_clause(scope: Scope) -> ColumnElement[bool]:
    if scope is None:
        return true()
    if isinstance(scope, ColumnElement):
        return scope
    return orm.Project.id.in_(sorted(scope))


def _period(column: Any, since: datetime | None, until: datetime | None) -> list[Any]:
    """``since <= column < until``, either bound optional."""
    clauses = [] if since is None else [column >= since]
    return clauses if until is None else [*clauses, column < until]


def utc_text(session: Session, column: Any, pattern: str) -> ColumnElement[str]:
    """A UTC timestamp column as text (``pattern`` in strftime terms: %Y-%m[-%d[ %H]])."""
    if session.get_bind().dialect.name == "postgresql":
        pg = pattern.replace("%Y", "YYYY").replace("%m", "MM").replace("%d", "DD")
        pg = pg.replace("%H", "HH24")
        return func.to_char(func.timezone("UTC", column), pg)
    return func.strftime(pattern, column)  # SQLite stores naive UTC


def _seconds_between(session: Session, start: Any, end: Any) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _dims(session: Session, dims: Sequence[str], gpu_type: Any, at: Any) -> list[Any]:
    """The SQL expression of each dimension, for a query joined to project, organization
    and program (``gpu_type`` and ``at`` are the source's own columns)."""
    columns = {
        "program": orm.Program.name,
        "organization": orm.Organization.name,
        "project": orm.Project.name,
        "sector": orm.Project.sector,
        "size_class": orm.Organization.size_class,
        "region": orm.Organization.region,
        "gpu_type": gpu_type,
    }
    return [utc_text(session, at, "%Y-%m") if d == "month" else columns[d] for d in dims]


def _joined(query: Select[Any], project_id: Any, program_id: Any) -> Select[Any]:
    return (
        query.join(orm.Project, orm.Project.id == project_id)
        .join(orm.Organization, orm.Organization.id == orm.Project.organization_id)
        .outerjoin(orm.Program, orm.Program.id == program_id)
    )


def _add_grants(
    session: Session,
    dims: Sequence[str],
    since: datetime | None,
    until: datetime | None,
    where: ColumnElement[bool],
    acc: defaultdict[Key, dict[str, int]],
) -> None:
    """Each allocation item's grant prorated to the period (and to each month).

    Items are prorated one by one, so every grouping sums the same parts."""
    plain = [d for d in dims if d != "month"]
    query = _joined(
        select(
            *_dims(session, plain, orm.AllocationItem.gpu_type, None),
            orm.Allocation.starts_at,
            orm.Allocation.ends_at,
            orm.AllocationItem.gpu_seconds,
        )
        .select_from(orm.AllocationItem)
        .join(orm.Allocation, orm.Allocation.id == orm.AllocationItem.allocation_id),
        orm.Allocation.project_id,
        orm.Allocation.program_id,
    ).where(where, *_period(orm.Allocation.ends_at, since, None))
    if until is not None:
        query = query.where(orm.Allocation.starts_at < until)
    for *values, starts, ends, secs in session.execute(query):
        lo = max(starts, since) if since is not None else starts
        hi = min(ends, until) if until is not None else ends
        cuts: list[tuple[datetime, datetime, str | None]] = [(lo, hi, None)]
        if "month" in dims:
            cuts = [
                (max(m, lo), min(_next_month(m), hi), f"{m:%Y-%m}") for m in month_starts(lo, hi)
            ]
        for a, b, month in cuts:
            part = prorated(int(secs), starts, ends, b) - prorated(int(secs), starts, ends, a)
            if part:
                it = iter(values)
                key = tuple(month if d == "month" else next(it) for d in dims)
                acc[key]["granted_gpu_seconds"] += part


def _add_charges(
    session: Session,
    dims: Sequence[str],
    since: datetime | None,
    until: datetime | None,
    where: ColumnElement[bool],
    acc: defaultdict[Key, dict[str, int]],
) -> None:
    entry = orm.LedgerEntry
    cols = _dims(session, dims, entry.gpu_type, entry.at)
    sums = (entry.gpu_seconds, entry.amount_won, entry.public_won, entry.copay_won)
    query = _joined(
        select(
            *cols,
            *(func.sum(c) for c in sums),
            func.sum(case((entry.kind == "charge", 1), else_=0)),  # one per run
            func.count(),
        ).select_from(entry),
        entry.project_id,
        entry.program_id,
    ).where(entry.kind.in_(CHARGE_KINDS), where, *_period(entry.at, since, until))
    for *values, secs, won, public, copay, runs, rows in session.execute(query.group_by(*cols)):
        if rows:
            row = acc[tuple(values)]
            for name, value in zip(_CHARGE_FIELDS, (secs, won, public, copay, runs), strict=True):
                row[name] += int(value)


def _waits(
    session: Session,
    dims: Sequence[str],
    since: datetime | None,
    until: datetime | None,
    where: ColumnElement[bool],
) -> Waits:
    """(jobs, mean wait, 95th percentile wait) per group of the jobs started in the period.

    One query: each wait is computed once (inner subquery), then window functions number a
    group's waits in order, count and average them; the row of nearest rank
    ``ceil(0.95 n)`` carries the group's figures, so no job row leaves the database.
    """
    job = orm.Job
    cols = _dims(session, dims, job.gpu_type, job.started_at)
    query = select(
        *[c.label(f"k{i}") for i, c in enumerate(cols)],
        _seconds_between(session, job.submitted_at, job.started_at).label("wait"),
    ).select_from(job)
    query = query.outerjoin(orm.Allocation, orm.Allocation.id == job.allocation_id)
    program_id = func.coalesce(orm.Allocation.program_id, orm.Project.program_id)
    waits = (
        _joined(query, job.project_id, program_id)
        .where(job.started_at.is_not(None), where, *_period(job.started_at, since, until))
        .subquery()
    )
    keys = [waits.c[f"k{i}"] for i in range(len(cols))]
    part = keys or None
    ranked = select(
        *keys,
        waits.c.wait,
        func.row_number().over(partition_by=part, order_by=waits.c.wait).label("rn"),
        func.count().over(partition_by=part).label("n"),
        func.avg(waits.c.wait).over(partition_by=part).label("mean"),
    ).subquery()
    picked = select(
        *[ranked.c[f"k{i}"] for i in range(len(cols))], ranked.c.n, ranked.c.mean, ranked.c.wait
    ).where(ranked.c.rn == (ranked.c.n * 95 + 99) // 100)
    return {
        tuple(values): (int(n), _tenths(mean), _tenths(p95))
        for *values, n, mean, p95 in session.execute(picked)
    }


def _tenths(value: Any) -> Decimal | None:
    if value is None:
        return None
    return Decimal(repr(float(value))).quantize(Decimal("0.1"), ROUND_HALF_UP)
