"""Grants in tranches, released after progress reports (as ACCESS releases half of an
award after a progress report, and Korean contracted projects (협약) pay in stages).

A program's rules in force at approval (``tranches_bp``: e.g. 5000, 5000) split a new
grant: each GPU type's GPU-seconds and won are split by the shares, each part floored and
the last taking the rest (``model.terms.tranche_split``), so the parts add up to the grant
exactly. The first part goes into the allocation's items at once; the others are
``pending`` tranches, committed against the program's budget (``programs.allocated_won``
counts them) but not spendable. The progress report for tranche k is due when the first
k-1 shares of the window have passed; once a program manager accepts it, the tranche is
added to the allocation's items in the same transaction (``grant.tranche`` in the audit
log) and the scheduler is told. Top-ups are granted whole.

Who does what (the access rules of requests, whose people these are): the organization's
admins submit reports (``request.create`` on the project), program managers and operators
accept or return them (``request.decide``), whoever may read the grant reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from axcenter.model.access import Principal
from axcenter.model.ids import new_id
from axcenter.model.money import BP
from axcenter.model.terms import ProgramRules, tranche_split
from axcenter.service.access import allocation_for
from axcenter.service.audit import record
from axcenter.service.errors import Conflict, InvalidInput, NotFound
from axcenter.service.program_schemas import (
    ProgressReportIn,
    ProgressReportOut,
    TrancheOut,
    TranchesOut,
)
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = [
    "accept_report",
    "get_tranches",
    "pending_won",
    "return_report",
    "split_grant",
    "submit_report",
    "withdraw_pending",
]

SECONDS_PER_HOUR = 3600


def split_grant(
    session: Session,
    allocation: orm.Allocation,
    rated: Mapping[str, tuple[int, int]],
    rules: ProgramRules | None,
) -> dict[str, tuple[int, int]]:
    """Write the tranches of a new grant ``rated`` (``{type: (GPU-seconds, won)}``) and
    return what its items get now: the first tranche, or everything if the rules in force
    have a single tranche."""
    shares = rules.tranches_bp if rules is not None else (BP,)
    if len(shares) == 1:
        return dict(rated)
    parts: list[dict[str, list[int]]] = [{} for _ in shares]
    for gpu_type, (secs, won) in rated.items():
        for k, (s, w) in enumerate(
            zip(tranche_split(secs, shares), tranche_split(won, shares), strict=True)
        ):
            parts[k][gpu_type] = [s, w]
    window = allocation.ends_at - allocation.starts_at
    elapsed_bp = 0
    for k, items in enumerate(parts):
        first = k == 0
        session.add(
            orm.GrantTranche(
                allocation_id=allocation.id,
                seq=k + 1,
                items=items,
                gpu_seconds=sum(s for s, _ in items.values()),
                won=sum(w for _, w in items.values()),
                status="released" if first else "pending",
                report_due_at=None if first else allocation.starts_at + window * elapsed_bp / BP,
                released_at=allocation.created_at if first else None,
            )
        )
        elapsed_bp += shares[k]
    return {t: (s, w) for t, (s, w) in parts[0].items()}


def withdraw_pending(session: Session, allocation_id: str) -> int:
    """Withdraw the grant's tranches not yet released (its end, or a take-back): their won
    go back to the program's budget. Returns the won withdrawn."""
    rows = session.scalars(
        select(orm.GrantTranche).where(
            orm.GrantTranche.allocation_id == allocation_id, orm.GrantTranche.status == "pending"
        )
    ).all()
    for tranche in rows:
        tranche.status = "withdrawn"
    return sum(t.won for t in rows)


def pending_won(session: Session, program_ids: list[str]) -> dict[str, int]:
    """Won of tranches not yet released, per program: committed, not spendable."""
    t = orm.GrantTranche
    rows = session.execute(
        select(orm.Allocation.program_id, func.coalesce(func.sum(t.won), 0))
        .join(orm.Allocation, orm.Allocation.id == t.allocation_id)
        .where(orm.Allocation.program_id.in_(program_ids), t.status == "pending")
        .group_by(orm.Allocation.program_id)
    ).all()
    return {program_id: int(won) for program_id, won in rows}


def _tranche_out(row: orm.GrantTranche) -> TrancheOut:
    return TrancheOut(
        seq=row.seq,
        gpu_hours={t: round(int(s) / SECONDS_PER_HOUR, 3) for t, (s, _) in row.items.items()},
        gpu_seconds=row.gpu_seconds,
        won=row.won,
        status=row.status,
        report_due_at=row.report_due_at,
        released_at=row.released_at,
    )


def report_out(session: Session, row: orm.ProgressReport) -> ProgressReportOut:
    allocation = session.get(orm.Allocation, row.allocation_id)
    project = session.get(orm.Project, allocation.project_id) if allocation else None
    submitter = session.get(orm.User, row.submitted_by)
    decider = session.get(orm.User, row.decided_by) if row.decided_by else None
    return ProgressReportOut(
        id=row.id,
        allocation_id=row.allocation_id,
        project=project.name if project else "?",
        tranche_seq=row.tranche_seq,
        summary=row.summary,
        status=row.status,
        submitted_by=submitter.name if submitter else "?",
        submitted_at=row.submitted_at,
        decided_by=decider.name if decider else None,
        decided_at=row.decided_at,
        decision_comment=row.decision_comment,
    )


def _next_pending(session: Session, allocation_id: str) -> orm.GrantTranche | None:
    return session.scalars(
        select(orm.GrantTranche)
        .where(
            orm.GrantTranche.allocation_id == allocation_id, orm.GrantTranche.status == "pending"
        )
        .order_by(orm.GrantTranche.seq)
        .limit(1)
    ).first()


def get_tranches(center: Center, who: Principal, allocation_id: str) -> TranchesOut:
    """A grant's tranches and every progress report it filed, oldest first."""
    with center.store.read() as session:
        allocation, project = allocation_for(session, who, allocation_id, "allocation.read")
        program = session.get(orm.Program, allocation.program_id)
        tranches = session.scalars(
            select(orm.GrantTranche)
            .where(orm.GrantTranche.allocation_id == allocation.id)
            .order_by(orm.GrantTranche.seq)
        ).all()
        reports = session.scalars(
            select(orm.ProgressReport)
            .where(orm.ProgressReport.allocation_id == allocation.id)
            .order_by(orm.ProgressReport.submitted_at, orm.ProgressReport.id)
        ).all()
        return TranchesOut(
            allocation_id=allocation.id,
            project=project.name,
            program=program.name if program else "?",
            tranches=[_tranche_out(t) for t in tranches],
            reports=[report_out(session, r) for r in reports],
        )


def submit_report(
    center: Center, who: Principal, allocation_id: str, body: ProgressReportIn
) -> ProgressReportOut:
    """File the progress report that asks for the grant's next pending tranche."""
    now = utcnow()
    with center.store.write() as session:
        allocation, project = allocation_for(
            session, who, allocation_id, "request.create", lock=True
        )
        if allocation.status != "active":
            raise Conflict(
                "allocation {allocation} is {status}",
                allocation=allocation.id,
                status=allocation.status,
            )
        tranche = _next_pending(session, allocation.id)
        if tranche is None:
            raise Conflict(
                "allocation {allocation} has no tranche left to release: no report is due",
                allocation=allocation.id,
            )
        waiting = session.scalar(
            select(orm.ProgressReport.id).where(
                orm.ProgressReport.allocation_id == allocation.id,
                orm.ProgressReport.status == "submitted",
            )
        )
        if waiting is not None:
            raise Conflict(
                "report {waiting} of {project} awaits a decision",
                waiting=waiting,
                project=project.name,
            )
        row = orm.ProgressReport(
            id=new_id("rpt"),
            allocation_id=allocation.id,
            tranche_seq=tranche.seq,
            summary=body.summary,
            status="submitted",
            submitted_by=who.user_id,
            submitted_at=now,
            decision_comment="",
        )
        session.add(row)
        session.flush()
        record(
            session,
            who,
            "report.submit",
            "allocation",
            allocation.id,
            {"report_id": row.id, "tranche": tranche.seq},
        )
        return report_out(session, row)


def _decide(
    session: Session, who: Principal, report_id: str, verb: str
) -> tuple[orm.ProgressReport, orm.Allocation]:
    row = session.scalars(
        select(orm.ProgressReport).where(orm.ProgressReport.id == report_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFound("no progress report {report_id!r}", report_id=report_id)
    allocation, _ = allocation_for(session, who, row.allocation_id, "request.decide", lock=True)
    if row.status != "submitted":
        raise Conflict(
            "report {id} is {report_status}: it cannot be {verb}",
            id=row.id,
            report_status=row.status,
            verb=verb,
        )
    return row, allocation


def accept_report(
    center: Center, who: Principal, report_id: str, comment: str = ""
) -> ProgressReportOut:
    """Accept a report and release the tranche it asks for, in one transaction."""
    now = utcnow()
    with center.store.write() as session:
        row, allocation = _decide(session, who, report_id, "accepted")
        if allocation.status != "active":
            raise Conflict(
                "allocation {allocation} is {status}: no tranche is released",
                allocation=allocation.id,
                status=allocation.status,
            )
        tranche = session.get(orm.GrantTranche, (allocation.id, row.tranche_seq))
        if tranche is None or tranche.status != "pending":
            raise Conflict(
                "tranche {tranche_seq} of {allocation} is not pending",
                tranche_seq=row.tranche_seq,
                allocation=allocation.id,
            )
        for gpu_type, (secs, won) in tranche.items.items():
            item = session.get(orm.AllocationItem, (allocation.id, gpu_type))
            if item is None:
                session.add(
                    orm.AllocationItem(
                        allocation_id=allocation.id,
                        gpu_type=gpu_type,
                        gpu_seconds=int(secs),
                        won=int(won),
                    )
                )
            else:
                item.gpu_seconds += int(secs)
                item.won += int(won)
        tranche.status = "released"
        tranche.released_at = now
        row.status = "accepted"
        row.decided_by = who.user_id
        row.decided_at = now
        row.decision_comment = comment
        record(
            session,
            who,
            "grant.tranche",
            "allocation",
            allocation.id,
            {
                "report_id": row.id,
                "tranche": tranche.seq,
                "gpu_seconds": tranche.gpu_seconds,
                "won": tranche.won,
            },
        )
        session.flush()
        out = report_out(session, row)
    center.control.policy_changed()  # quotas and budgets follow the grant
    return out


def return_report(
    center: Center, who: Principal, report_id: str, comment: str
) -> ProgressReportOut:
    """Send a report back (say why); the project files another."""
    if not comment.strip():
        raise InvalidInput("comment", "say why the report is returned")
    now = utcnow()
    with center.store.write() as session:
        row, allocation = _decide(session, who, report_id, "returned")
        row.status = "returned"
        row.decided_by = who.user_id
        row.decided_at = now
        row.decision_comment = comment
        record(
            session,
            who,
            "report.return",
            "allocation",
            allocation.id,
            {"report_id": row.id, "comment": comment},
        )
        session.flush()
        return report_out(session, row)
