"""Settlement of a program and monthly statements of an organization, as JSON, CSV and
XLSX in the documented layouts (docs/accounting.md, "Settlement and statements").

Who sees what, as for usage reports: operators and program managers everything,
organization admins their organization's projects, members their projects; reviewers
nothing (403). A statement is an organization's: only those who may read the organization
(``organization.read``). Rows and totals cover only what the caller may see.

Layout of both files: a title line, the period and the zone, then a header row of column
names (English in CSV, Korean and English in XLSX), one row per group, and a TOTAL row.
Won are plain integers. The XLSX has a second sheet naming every column in both
languages with its definition.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from axcenter.accounting.settlement import (
    SETTLEMENT_COLUMNS,
    STATEMENT_COLUMNS,
    SettlementRow,
    StatementRow,
    settlement,
    statement,
    total,
)
from axcenter.model.access import Principal, Role
from axcenter.service.access import org_target, require, visible_projects
from axcenter.service.errors import Forbidden, InvalidInput
from axcenter.service.organizations import org_by_ref
from axcenter.service.programs import program_by_ref
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = [
    "COLUMN_WORDS",
    "SettlementOut",
    "StatementOut",
    "monthly_statement",
    "program_settlement",
    "sheet_csv",
    "sheet_xlsx",
]

#: column -> (Korean, definition in English)
COLUMN_WORDS: dict[str, tuple[str, str]] = {
    "organization": ("기관", "the organization"),
    "region": ("지역", "its region"),
    "size_class": ("기업 규모", "its size class (SME, mid, large)"),
    "grants": ("협약 과제 수", "grants of the program approved before the period's end"),
    "granted_won": ("협약액(원)", "released + pending + withdrawn: all the approvals committed"),
    "withdrawn_won": ("회수액(원)", "tranches withdrawn and parts taken back, unused"),
    "released_won": ("지급액(원)", "what the grants could be charged (released tranches)"),
    "pending_won": ("미지급액(원)", "tranches awaiting their progress report"),
    "list_won": ("정가 금액(원)", "charges of the period at list price"),
    "discount_won": ("할인액(원)", "list minus charged: the program's discounts"),
    "charged_won": ("집행액(원)", "charges of the period"),
    "public_won": ("정부 지원액(원)", "the program's part of the charges"),
    "self_paid_won": ("자부담액(원)", "the company's part of the charges (self-paid)"),
    "gpu_seconds": ("GPU 초", "GPU-seconds charged in the period"),
    "runs": ("실행 수", "runs charged in the period"),
    "unused_won": ("미사용 반납액(원)", "ended grants: released minus all their charges"),
    "open_won": ("잔액(진행 중, 원)", "running grants: released minus all their charges"),
    "program": ("지원사업", "the program"),
    "project": ("과제", "the project"),
    "gpu_type": ("GPU 종류", "the GPU type"),
    "terms": ("적용 조건", "the terms the charges were booked under"),
}


class SettlementOut(BaseModel):
    program: str
    since: datetime
    until: datetime
    columns: list[str]
    rows: list[dict[str, Any]]
    total: dict[str, Any]


class StatementOut(BaseModel):
    organization: str
    month: str
    time_zone: str
    since: datetime
    until: datetime
    columns: list[str]
    rows: list[dict[str, Any]]
    total: dict[str, Any]


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def program_settlement(
    center: Center,
    who: Principal,
    program_ref: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> SettlementOut:
    """A program's settlement per organization: charges in ``[since, until)`` (default:
    the program's period, or its first grant, up to now) and its grants as they stand."""
    if who.role is Role.REVIEWER:
        raise Forbidden("reviewers may not see settlements")
    with center.store.read() as session:
        program = program_by_ref(session, program_ref)
        end = _aware(until) if until else min(utcnow(), program.ends_at or utcnow())
        start = _aware(since) if since else (program.starts_at or program.created_at)
        if end <= start:
            raise InvalidInput("until", "must be after since")
        rows = settlement(session, program.id, start, end, visible_projects(who))
    return SettlementOut(
        program=program.name,
        since=start,
        until=end,
        columns=list(SETTLEMENT_COLUMNS),
        rows=[asdict(r) for r in rows],
        total=total(SettlementRow, rows, "organization"),
    )


def month_bounds(month: str, zone_name: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` in the zone as ``[start, end)`` in UTC."""
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    try:
        first = date.fromisoformat(f"{month}-01")
    except ValueError:
        raise InvalidInput("month", "{month!r} is not a month (YYYY-MM)", month=month) from None
    nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    zone = ZoneInfo(zone_name)
    return (
        datetime.combine(first, time(), zone).astimezone(UTC),
        datetime.combine(nxt, time(), zone).astimezone(UTC),
    )


def monthly_statement(
    center: Center, who: Principal, organization_ref: str, month: str
) -> StatementOut:
    """An organization's charges of a month of the center's zone, per program, project,
    GPU type and terms, with what the company pays (self-paid) and the program pays."""
    zone = center.settings.time_zone
    start, end = month_bounds(month, zone)
    with center.store.read() as session:
        org = org_by_ref(session, organization_ref)
        require(who, "organization.read", org_target(org), organization_ref)
        rows = statement(session, org.id, start, end, visible_projects(who))
    return StatementOut(
        organization=org.name,
        month=month,
        time_zone=zone,
        since=start,
        until=end,
        columns=list(STATEMENT_COLUMNS),
        rows=[asdict(r) for r in rows],
        total=total(StatementRow, rows, "program"),
    )


def _title(report: SettlementOut | StatementOut) -> list[str]:
    if isinstance(report, SettlementOut):
        return [
            f"Settlement of {report.program} (정산)",
            f"charges from {report.since.isoformat()} to {report.until.isoformat()} (UTC)",
        ]
    return [
        f"Statement of {report.organization} for {report.month} (월별 이용 명세)",
        f"{report.time_zone}: {report.since.isoformat()} to {report.until.isoformat()} (UTC)",
    ]


def sheet_csv(report: SettlementOut | StatementOut) -> str:
    """The CSV layout: two title lines, the header, the rows, TOTAL."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for line in _title(report):
        writer.writerow([f"# {line}"])
    writer.writerow(report.columns)
    for row in [*report.rows, report.total]:
        writer.writerow(["" if row.get(c) is None else row[c] for c in report.columns])
    return buffer.getvalue()


def sheet_xlsx(report: SettlementOut | StatementOut) -> bytes:
    """The XLSX layout: the same as the CSV on sheet 1 (header in Korean, then English),
    won formatted with thousands separators; sheet 2 defines every column."""
    from openpyxl import Workbook  # noqa: PLC0415
    from openpyxl.styles import Font  # noqa: PLC0415

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "settlement" if isinstance(report, SettlementOut) else "statement"
    for line in _title(report):
        sheet.append([line])
    sheet.append([COLUMN_WORDS[c][0] for c in report.columns])
    sheet.append(list(report.columns))
    for cell in (*sheet[3], *sheet[4]):
        cell.font = Font(bold=True)
    for row in [*report.rows, report.total]:
        sheet.append([row.get(c) for c in report.columns])
    for column in sheet.iter_cols(min_row=5):
        for cell in column:
            if isinstance(cell.value, int):
                cell.number_format = "#,##0"
    sheet[sheet.max_row][0].font = Font(bold=True)
    sheet.freeze_panes = "B5"
    words = book.create_sheet("columns")
    words.append(["column", "열", "definition"])
    for c in report.columns:
        words.append([c, COLUMN_WORDS[c][0], COLUMN_WORDS[c][1]])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
