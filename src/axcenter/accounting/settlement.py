"""Settlement (정산) of a program and monthly statements of an organization, from the
ledger and the grants (docs/accounting.md, "Settlement and statements").

Settlement, per organization, of a program's grants approved before ``until``:

- granted = released + pending + withdrawn: everything its approvals committed;
- withdrawn: tranches withdrawn and parts taken back, returned to the budget unused;
- released: what the grants could be charged (their items now);
- list, discount, charged, public, self-paid, GPU-seconds, runs: the charges booked in
  ``[since, until)`` (list: the won at list price, before the program's modifiers);
- unused: for grants ended by ``until``, released minus everything ever charged to them
  (returned to the program); open: the same for grants still running at ``until``.

A statement is an organization's charges in ``[since, until)`` per program, project and
GPU type. Every won column is an integer sum of ledger rows, so the TOTAL row of either is
the sum of its rows and equals the ledger's sums over the same scope.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from axcenter.accounting.ledger import CHARGE_KINDS
from axcenter.store import orm

__all__ = [
    "SETTLEMENT_COLUMNS",
    "STATEMENT_COLUMNS",
    "SettlementRow",
    "StatementRow",
    "settlement",
    "statement",
    "total",
]


@dataclass(slots=True)
class SettlementRow:
    organization: str
    region: str | None
    size_class: str | None
    grants: int = 0
    granted_won: int = 0
    withdrawn_won: int = 0
    released_won: int = 0
    pending_won: int = 0
    list_won: int = 0
    discount_won: int = 0
    charged_won: int = 0
    public_won: int = 0
    self_paid_won: int = 0
    gpu_seconds: int = 0
    runs: int = 0
    unused_won: int = 0
    open_won: int = 0


@dataclass(slots=True)
class StatementRow:
    program: str
    project: str
    gpu_type: str
    terms: str
    runs: int = 0
    gpu_seconds: int = 0
    list_won: int = 0
    discount_won: int = 0
    charged_won: int = 0
    public_won: int = 0
    self_paid_won: int = 0


#: the additive columns, in the order the CSV and XLSX layouts give them
SETTLEMENT_COLUMNS = tuple(f.name for f in fields(SettlementRow))
STATEMENT_COLUMNS = tuple(f.name for f in fields(StatementRow))


def _charges(
    session: Session, where: Sequence[ColumnElement[bool]], keys: Sequence[Any]
) -> list[Any]:
    e = orm.LedgerEntry
    return list(
        session.execute(
            select(
                *keys,
                func.coalesce(func.sum(case((e.kind == "charge", 1), else_=0)), 0),
                func.coalesce(func.sum(e.gpu_seconds), 0),
                func.coalesce(func.sum(func.coalesce(e.list_won, e.amount_won)), 0),
                func.coalesce(func.sum(e.amount_won), 0),
                func.coalesce(func.sum(e.public_won), 0),
                func.coalesce(func.sum(e.copay_won), 0),
            )
            .where(e.kind.in_(CHARGE_KINDS), *where)
            .group_by(*keys)
        ).all()
    )


def settlement(
    session: Session,
    program_id: str,
    since: datetime,
    until: datetime,
    scope: ColumnElement[bool],
) -> list[SettlementRow]:
    """One row per organization with a grant of the program approved before ``until``
    (``scope``: a condition on ``orm.Project`` that says which projects count)."""
    a = orm.Allocation
    grants = session.execute(
        select(
            a.id,
            a.status,
            a.ends_at,
            orm.Organization.name,
            orm.Organization.region,
            orm.Organization.size_class,
        )
        .join(orm.Project, orm.Project.id == a.project_id)
        .join(orm.Organization, orm.Organization.id == orm.Project.organization_id)
        .where(a.program_id == program_id, a.created_at < until, scope)
    ).all()
    ids = [g.id for g in grants]
    released: dict[str, int] = dict(
        session.execute(
            select(orm.AllocationItem.allocation_id, func.sum(orm.AllocationItem.won))
            .where(orm.AllocationItem.allocation_id.in_(ids))
            .group_by(orm.AllocationItem.allocation_id)
        )
        .tuples()
        .all()
    )
    t = orm.GrantTranche
    tranches: dict[str, tuple[int, int]] = {
        alloc_id: (int(pending), int(withdrawn))
        for alloc_id, pending, withdrawn in session.execute(
            select(
                t.allocation_id,
                func.sum(case((t.status == "pending", t.won), else_=0)),
                func.sum(case((t.status == "withdrawn", t.won), else_=0)),
            )
            .where(t.allocation_id.in_(ids))
            .group_by(t.allocation_id)
        ).tuples()
    }
    n = orm.GrantNotice
    reclaimed: dict[str, int] = dict(
        session.execute(
            select(n.allocation_id, func.sum(n.won))
            .where(n.allocation_id.in_(ids), n.kind == "reclaim", n.at < until)
            .group_by(n.allocation_id)
        )
        .tuples()
        .all()
    )
    e = orm.LedgerEntry
    in_period = {
        r[0]: r[1:]
        for r in _charges(
            session, [e.allocation_id.in_(ids), e.at >= since, e.at < until], [e.allocation_id]
        )
    }
    lifetime = {
        r[0]: int(r[4])
        for r in _charges(session, [e.allocation_id.in_(ids), e.at < until], [e.allocation_id])
    }
    rows: dict[str, SettlementRow] = {}
    for g in grants:
        row = rows.setdefault(g.name, SettlementRow(g.name, g.region, g.size_class))
        pending, withdrawn = tranches.get(g.id, (0, 0))
        withdrawn += int(reclaimed.get(g.id) or 0)
        out = int(released.get(g.id) or 0)
        row.grants += 1
        row.released_won += out
        row.pending_won += pending
        row.withdrawn_won += withdrawn
        row.granted_won += out + pending + withdrawn
        runs, secs, listed, won, public, company = in_period.get(g.id, (0, 0, 0, 0, 0, 0))
        row.runs += int(runs)
        row.gpu_seconds += int(secs)
        row.list_won += int(listed)
        row.charged_won += int(won)
        row.discount_won += int(listed) - int(won)
        row.public_won += int(public)
        row.self_paid_won += int(company)
        left = out - lifetime.get(g.id, 0)
        if g.status != "active" or g.ends_at <= until:
            row.unused_won += left
        else:
            row.open_won += left
    return sorted(rows.values(), key=lambda r: r.organization)


def statement(
    session: Session,
    organization_id: str,
    since: datetime,
    until: datetime,
    scope: ColumnElement[bool],
) -> list[StatementRow]:
    """An organization's charges in ``[since, until)`` per program, project, GPU type
    and the terms they were booked under."""
    e = orm.LedgerEntry
    keys = [orm.Program.name, orm.Project.name, e.gpu_type, func.coalesce(e.terms, "")]
    query_where = [
        e.at >= since,
        e.at < until,
        e.project_id.in_(
            select(orm.Project.id).where(orm.Project.organization_id == organization_id, scope)
        ),
    ]
    e_program = orm.Program.id == e.program_id
    e_project = orm.Project.id == e.project_id
    rows = session.execute(
        select(
            *keys,
            func.coalesce(func.sum(case((e.kind == "charge", 1), else_=0)), 0),
            func.coalesce(func.sum(e.gpu_seconds), 0),
            func.coalesce(func.sum(func.coalesce(e.list_won, e.amount_won)), 0),
            func.coalesce(func.sum(e.amount_won), 0),
            func.coalesce(func.sum(e.public_won), 0),
            func.coalesce(func.sum(e.copay_won), 0),
        )
        .join(orm.Program, e_program)
        .join(orm.Project, e_project)
        .where(e.kind.in_(CHARGE_KINDS), *query_where)
        .group_by(*keys)
        .order_by(*keys)
    ).all()
    return [
        StatementRow(
            program=program,
            project=project,
            gpu_type=gpu_type,
            terms=terms,
            runs=int(runs),
            gpu_seconds=int(secs),
            list_won=int(listed),
            discount_won=int(listed) - int(won),
            charged_won=int(won),
            public_won=int(public),
            self_paid_won=int(company),
        )
        for program, project, gpu_type, terms, runs, secs, listed, won, public, company in rows
    ]


def total(kind: type[Any], rows: Sequence[Any], label_field: str) -> dict[str, Any]:
    """The TOTAL row of ``rows`` (of dataclass ``kind``): every integer column summed,
    ``label_field`` says TOTAL, the other text columns are empty."""
    out: dict[str, Any] = {}
    for f in fields(kind):
        if f.name == label_field:
            out[f.name] = "TOTAL"
        elif f.type in ("int", int):
            out[f.name] = sum(getattr(r, f.name) for r in rows)
        else:
            out[f.name] = None
    return out
