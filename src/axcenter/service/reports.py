"""Report use cases: who may see which usage, and the reports as JSON models or CSV.

Who sees what (the scope is applied inside every aggregate, so totals are those of the
visible rows only, and a caller never learns another tenant's figures):

- operators and program managers: the whole center, and any program's burn-down;
- organization admins: their organization's projects; members: their projects;
- reviewers: no usage at all (403): they judge requests, not tenants' spending.

A burn-down is a program-wide figure (every tenant's charges under the program), so only
operators and program managers may see one; everyone else gets 403, since programs
themselves are public within the center.

CSV: a header row, one row per group (per day for a burn-down), then a ``TOTAL`` row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from axcenter.accounting import reports
from axcenter.accounting.accrual import accrual
from axcenter.accounting.burndown import burndown as program_burndown
from axcenter.accounting.burndown import project_burndown as accounting_project_burndown
from axcenter.accounting.ledger import CHARGE_KINDS
from axcenter.model.access import Principal, Role
from axcenter.service.access import allowed, project_target, require, visible_projects
from axcenter.service.errors import Forbidden, InvalidInput, NotFound
from axcenter.service.projects import project_by_ref
from axcenter.service.schemas import (
    BurndownOut,
    DailyUsageOut,
    ProjectUsageOut,
    UsageReportOut,
    UsageRowOut,
)
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = [
    "DAY_COLUMNS",
    "DEFAULT_GROUP_BY",
    "TOTAL",
    "USAGE_COLUMNS",
    "burndown",
    "burndown_csv",
    "project_usage",
    "usage",
    "usage_csv",
]

DEFAULT_GROUP_BY = ("program",)
TOTAL = "TOTAL"
USAGE_COLUMNS = (
    "granted_gpu_hours",
    "used_gpu_hours",
    "utilization",
    "charged_won",
    "public_won",
    "copay_won",
    "runs",
    "jobs",
    "wait_mean_s",
    "wait_p95_s",
    "granted_gpu_seconds",
    "used_gpu_seconds",
)
DAY_COLUMNS = (
    "day",
    "charged_won",
    "public_won",
    "cumulative_charged_won",
    "cumulative_public_won",
    "remaining_won",
)


def _aware(moment: datetime | None) -> datetime | None:
    """Aware UTC; a time without a zone is UTC, as everywhere in the API."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def usage(
    center: Center,
    who: Principal,
    group_by: Sequence[str] = DEFAULT_GROUP_BY,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    waits: bool = True,
) -> UsageReportOut:
    """The usage report of the projects ``who`` may see, grouped by ``group_by``
    (``waits=False``: without queue-wait statistics, see ``accounting.reports``)."""
    if who.role is Role.REVIEWER:
        raise Forbidden("reviewers may not see usage reports")
    dims = tuple(group_by) or DEFAULT_GROUP_BY
    for dim in dims:
        if dim not in reports.DIMENSIONS:
            raise InvalidInput(
                "group_by",
                "unknown dimension {dim!r} (one of {DIMENSIONS})",
                dim=dim,
                DIMENSIONS=", ".join(reports.DIMENSIONS),
            )
    if len(set(dims)) != len(dims):
        raise InvalidInput("group_by", "a dimension is named twice")
    start, end = _aware(since), _aware(until)
    if start is not None and end is not None and end <= start:
        raise InvalidInput("until", "must be after since")
    with center.store.read() as session:
        report = reports.usage_report(
            session, dims, start, end, scope=visible_projects(who), waits=waits
        )
    return UsageReportOut(
        group_by=list(report.group_by),
        since=report.since,
        until=report.until,
        generated_at=utcnow(),
        rows=[_row_out(dims, r) for r in report.rows],
        total=_row_out(dims, report.total),
    )


def _row_out(dims: Sequence[str], row: reports.ReportRow) -> UsageRowOut:
    return UsageRowOut(
        keys=dict(zip(dims, row.keys, strict=True)),
        granted_gpu_seconds=row.granted_gpu_seconds,
        granted_gpu_hours=row.granted_gpu_hours,
        used_gpu_seconds=row.used_gpu_seconds,
        used_gpu_hours=row.used_gpu_hours,
        utilization=row.utilization,
        charged_won=row.charged_won,
        public_won=row.public_won,
        copay_won=row.copay_won,
        runs=row.runs,
        jobs=row.jobs,
        wait_mean_s=row.wait_mean_s,
        wait_p95_s=row.wait_p95_s,
    )


def burndown(
    center: Center, who: Principal, program_ref: str, now: datetime | None = None
) -> BurndownOut:
    """The burn-down of a program (by ``prg_`` id or name) up to ``now``."""
    if who.role not in (Role.OPERATOR, Role.PROGRAM_MANAGER):
        raise Forbidden("only operators and program managers may see a program's burn-down")
    column = orm.Program.id if program_ref.startswith("prg_") else orm.Program.name
    with center.store.read() as session:
        program_id = session.scalar(select(orm.Program.id).where(column == program_ref))
        if program_id is None:
            raise NotFound("no program {program_ref!r}", program_ref=program_ref)
        at = _aware(now) or utcnow()
        b = program_burndown(session, program_id, at, center.settings.zone)
        live = accrual(session, at, program_id=program_id)
    # the domain value and the API shape have the same fields (days: a tuple -> a list)
    out = BurndownOut.model_validate(b, from_attributes=True)
    out.held_won, out.accrued_won, out.running_jobs = live.held_won, live.accrued_won, live.runs
    return out


def project_burndown(center: Center, who: Principal, project_ref: str) -> BurndownOut | None:
    """The burn-down of a project's grants in force (``allocation.read`` on the project),
    with what its running jobs hold and used since their last accrual; None without a
    grant in force."""
    now = utcnow()
    with center.store.read() as session:
        project = project_by_ref(session, project_ref)
        target = project_target(session, project)
        require(who, "project.read", target, project_ref)
        if not allowed(who, "allocation.read", target):
            raise Forbidden(
                "your role ({role}) may not allocation.read on {label}",
                role=who.role.value,
                label=target.label,
            )
        b = accounting_project_burndown(session, project.id, now, center.settings.zone)
        if b is None:
            return None
        live = accrual(session, now, project_id=project.id)
    out = BurndownOut.model_validate(b, from_attributes=True)
    out.held_won, out.accrued_won, out.running_jobs = live.held_won, live.accrued_won, live.runs
    return out


def project_usage(
    center: Center, who: Principal, project_ref: str, days: int = 30
) -> ProjectUsageOut:
    """A project's charges per day (of the center's zone) and user, over the last
    ``days`` days: usage over time, with who used it (``allocation.read``)."""
    if not 1 <= days <= 366:
        raise InvalidInput("days", "must be between 1 and 366")
    zone = center.settings.zone
    now = utcnow()
    entry = orm.LedgerEntry
    with center.store.read() as session:
        project = project_by_ref(session, project_ref)
        target = project_target(session, project)
        require(who, "project.read", target, project_ref)
        if not allowed(who, "allocation.read", target):
            raise Forbidden(
                "your role ({role}) may not allocation.read on {label}",
                role=who.role.value,
                label=target.label,
            )
        hour = reports.utc_text(session, entry.at, "%Y-%m-%d %H")
        sums: dict[tuple[date, str], list[int]] = {}
        for h, user, won, secs in session.execute(
            select(hour, orm.User.name, func.sum(entry.amount_won), func.sum(entry.gpu_seconds))
            .join(orm.Job, orm.Job.id == entry.job_id)
            .join(orm.User, orm.User.id == orm.Job.user_id)
            .where(
                entry.project_id == project.id,
                entry.kind.in_(CHARGE_KINDS),
                entry.at > now - timedelta(days=days),
            )
            .group_by(hour, orm.User.name)
        ).tuples():
            at = datetime.strptime(str(h)[:13], "%Y-%m-%d %H").replace(tzinfo=UTC)
            acc = sums.setdefault((at.astimezone(zone).date(), str(user)), [0, 0])
            acc[0] += int(won)
            acc[1] += int(secs)
    rows = [
        DailyUsageOut(day=d, user=u, charged_won=won, gpu_seconds=secs)
        for (d, u), (won, secs) in sorted(sums.items())
    ]
    return ProjectUsageOut(project=project.name, days=days, time_zone=str(zone), rows=rows)


# -- CSV ------------------------------------------------------------------------------------


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def usage_csv(report: UsageReportOut, header: Callable[[str], str] = str) -> str:
    """The report as CSV: the group columns, then the figures; the last row is ``TOTAL``
    (in the first group column). ``header`` names the columns and the total (the
    dashboard's Korean export says them in Korean)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([header(c) for c in (*report.group_by, *USAGE_COLUMNS)])
    for row in [*report.rows, report.total]:
        keys = [_cell(row.keys.get(d)) for d in report.group_by]
        if row is report.total:
            keys = [header(TOTAL)] + [""] * (len(keys) - 1)
        writer.writerow([*keys, *(_cell(getattr(row, c)) for c in USAGE_COLUMNS)])
    return buffer.getvalue()


def burndown_csv(b: BurndownOut, header: Callable[[str], str] = str) -> str:
    """One row per day of the center's zone (named in the first header), then ``TOTAL``
    (the sums of the day columns, and the final cumulative and remaining figures);
    ``header`` names the columns as in ``usage_csv``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [f"{header(DAY_COLUMNS[0])} ({b.time_zone})", *(header(c) for c in DAY_COLUMNS[1:])]
    )
    for d in b.days:
        writer.writerow([_cell(getattr(d, c)) for c in DAY_COLUMNS])
    writer.writerow(
        [header(TOTAL), b.charged_won, b.public_won, b.charged_won, b.public_won, b.remaining_won]
    )
    return buffer.getvalue()
