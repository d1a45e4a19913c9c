"""Grants: approved allocations, what approving changes, and what is left of them.

An allocation is a project's GPU-hours (per GPU type) and won for a time window. The
scheduler derives the project's guaranteed quota from it (``store.policy``) and holds
every funded run against it (``accounting.ledger``). This module applies approved
requests to allocations (new, top-up, extension, termination), inside the approval's
transaction, and reports balances with their warning level.

Won are fixed at approval: each type's GPU-seconds are rated at the price in force at
that moment, so later price changes never change a grant's envelope, and a type without
a price cannot be granted. A program never grants more won than its budget, nor more to
one organization than the concentration caps of its rules (``rules.check_caps``); a new
grant is released in the tranches its program's rules say (``tranches``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from axcenter.accounting.ledger import balance
from axcenter.accounting.prices import prices_at
from axcenter.accounting.terms import rules_at
from axcenter.model.access import Principal
from axcenter.model.ids import new_id
from axcenter.model.money import rate
from axcenter.service.access import (
    allocation_for,
    project_named,
    visible_allocations,
)
from axcenter.service.audit import record
from axcenter.service.errors import Conflict
from axcenter.service.programs import allocated_won
from axcenter.service.rules import check_caps
from axcenter.service.schemas import AllocationOut, BalanceItemOut, BalanceOut
from axcenter.service.tranches import split_grant, withdraw_pending
from axcenter.store import orm

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = [
    "SECONDS_PER_HOUR",
    "WARN_AT",
    "allocation_out",
    "allocation_status",
    "extend",
    "get_allocation",
    "grant",
    "list_allocations",
    "terminate",
    "top_up",
    "warning_line",
]

SECONDS_PER_HOUR = 3600
#: the used fraction at which an allocation warns ("80%"); at 1.0 it is exhausted ("100%")
WARN_AT = 0.8


# -- balances -------------------------------------------------------------------------------


def allocation_status(session: Session, allocation: orm.Allocation) -> BalanceOut:
    """Granted, charged, held and left, in won and per GPU type, and the warning level.

    Holds count as used: they are what running jobs may still cost, and what the
    scheduler cannot give to another job.
    """
    b = balance(session, allocation.id)
    fractions = [(b.charged_won + b.held_won) / b.granted_won] if b.granted_won else []
    items = []
    for gpu_type, granted in sorted(b.granted_gpu_seconds.items()):
        used = b.used_gpu_seconds.get(gpu_type, 0)
        if granted:
            fractions.append(used / granted)
        items.append(
            BalanceItemOut(
                gpu_type=gpu_type,
                granted_gpu_seconds=granted,
                used_gpu_seconds=used,
                left_gpu_seconds=granted - used,
                granted_gpu_hours=round(granted / SECONDS_PER_HOUR, 3),
                left_gpu_hours=round((granted - used) / SECONDS_PER_HOUR, 3),
            )
        )
    used_fraction = max(fractions, default=0.0)
    warning = "100%" if used_fraction >= 1.0 else "80%" if used_fraction >= WARN_AT else "none"
    return BalanceOut(
        granted_won=b.granted_won,
        charged_won=b.charged_won,
        held_won=b.held_won,
        left_won=b.won_left,
        used_fraction=round(used_fraction, 4),
        warning=warning,
        items=items,
    )


def allocation_out(session: Session, allocation: orm.Allocation) -> AllocationOut:
    project = session.get(orm.Project, allocation.project_id)
    program = session.get(orm.Program, allocation.program_id)
    return AllocationOut(
        id=allocation.id,
        project=project.name if project else "?",
        project_id=allocation.project_id,
        program=program.name if program else "?",
        program_id=allocation.program_id,
        request_id=allocation.request_id,
        starts_at=allocation.starts_at,
        ends_at=allocation.ends_at,
        status=allocation.status,
        on_exhaustion=allocation.on_exhaustion,
        created_at=allocation.created_at,
        balance=allocation_status(session, allocation),
    )


def warning_line(allocation: AllocationOut) -> str | None:
    """One line for an allocation at or above ``WARN_AT`` used (None below it)."""
    b = allocation.balance
    if b.warning == "none":
        return None
    what = "exhausted" if b.warning == "100%" else f"{b.used_fraction:.0%} used"
    return (
        f"allocation {allocation.id} of {allocation.project} is {what} "
        f"({b.left_won:,} won left; on exhaustion: {allocation.on_exhaustion})"
    )


def list_allocations(
    center: Center,
    who: Principal,
    *,
    project: str | None = None,
    status: str | None = None,
    warning: str | None = None,
) -> list[AllocationOut]:
    """Allocations ``who`` may read, newest first, each with its balance."""
    query = select(orm.Allocation).where(visible_allocations(who))
    if status:
        query = query.where(orm.Allocation.status == status)
    with center.store.read() as session:
        if project:
            query = query.where(
                orm.Allocation.project_id.in_(select(orm.Project.id).where(project_named(project)))
            )
        rows = session.scalars(query.order_by(orm.Allocation.id.desc())).all()
        out = [allocation_out(session, a) for a in rows]
    return [a for a in out if warning is None or a.balance.warning == warning]


def get_allocation(center: Center, who: Principal, allocation_id: str) -> AllocationOut:
    with center.store.read() as session:
        row, _ = allocation_for(session, who, allocation_id, "allocation.read")
        return allocation_out(session, row)


# -- applying approvals ---------------------------------------------------------------------


def _rated(session: Session, hours: Mapping[str, int], at: datetime) -> dict[str, tuple[int, int]]:
    """GPU type -> (GPU-seconds, won at the price in force at ``at``); Conflict naming
    the types the price book has no price for."""
    prices = prices_at(session, at)
    missing = sorted(t for t in hours if t not in prices)
    if missing:
        raise Conflict(
            (
                "no price for {missing} in the price book: set one (axc price set) "
                "before granting it"
            ),
            missing=", ".join(missing),
        )
    return {
        t: (h * SECONDS_PER_HOUR, rate(h * SECONDS_PER_HOUR, prices[t])) for t, h in hours.items()
    }


def _check_budget(session: Session, program: orm.Program, extra_won: int) -> None:
    """Conflict if granting ``extra_won`` more would take the program past its budget.

    The caller holds the program's row lock (PostgreSQL) or the store's write lock
    (SQLite), so two approvals cannot both see the same headroom.
    """
    granted = allocated_won(session, [program.id]).get(program.id, 0)
    if granted + extra_won > program.budget_won:
        raise Conflict(
            (
                "program {program!r} would exceed its budget: {budget_won:,} won, "
                "{granted_won:,} already granted, this grant {extra_won:,} (total "
                "{total_won:,}, {over_won:,} over)"
            ),
            program=program.name,
            budget_won=program.budget_won,
            granted_won=granted,
            extra_won=extra_won,
            total_won=granted + extra_won,
            over_won=granted + extra_won - program.budget_won,
        )


def _locked_program(session: Session, program_id: str) -> orm.Program:
    program = session.scalars(
        select(orm.Program).where(orm.Program.id == program_id).with_for_update()
    ).one()
    return program


def grant(
    session: Session,
    who: Principal,
    request: orm.AllocationRequest,
    hours: Mapping[str, int],
    starts_at: datetime,
    ends_at: datetime,
    on_exhaustion: str,
    at: datetime,
) -> orm.Allocation:
    """Create the allocation an approved ``new`` request grants."""
    program = _locked_program(session, request.program_id)
    rated = _rated(session, hours, at)
    _check_budget(session, program, sum(won for _, won in rated.values()))
    check_caps(
        session,
        program,
        request.project_id,
        sum(secs for secs, _ in rated.values()),
        sum(won for _, won in rated.values()),
        at,
    )
    allocation = orm.Allocation(
        id=new_id("alc"),
        project_id=request.project_id,
        program_id=program.id,
        request_id=request.id,
        starts_at=starts_at,
        ends_at=ends_at,
        status="active",
        on_exhaustion=on_exhaustion,
        created_at=at,
    )
    session.add(allocation)
    session.flush()
    now_items = split_grant(session, allocation, rated, rules_at(session, program.id, at))
    for gpu_type, (secs, won) in now_items.items():
        session.add(
            orm.AllocationItem(
                allocation_id=allocation.id, gpu_type=gpu_type, gpu_seconds=secs, won=won
            )
        )
    record(
        session,
        who,
        "grant.create",
        "allocation",
        allocation.id,
        {
            "request_id": request.id,
            "project_id": request.project_id,
            "program_id": program.id,
            "items": {t: {"gpu_seconds": s, "won": w} for t, (s, w) in rated.items()},
            "released": {t: {"gpu_seconds": s, "won": w} for t, (s, w) in now_items.items()},
            "starts_at": starts_at,
            "ends_at": ends_at,
            "on_exhaustion": on_exhaustion,
        },
    )
    session.flush()
    return allocation


def top_up(
    session: Session,
    who: Principal,
    request: orm.AllocationRequest,
    allocation: orm.Allocation,
    hours: Mapping[str, int],
    at: datetime,
) -> None:
    """Add GPU-hours (rated at today's price) to an allocation."""
    program = _locked_program(session, allocation.program_id)
    rated = _rated(session, hours, at)
    _check_budget(session, program, sum(won for _, won in rated.values()))
    check_caps(
        session,
        program,
        allocation.project_id,
        sum(secs for secs, _ in rated.values()),
        sum(won for _, won in rated.values()),
        at,
    )
    for gpu_type, (secs, won) in rated.items():
        item = session.get(orm.AllocationItem, (allocation.id, gpu_type))
        if item is None:
            session.add(
                orm.AllocationItem(
                    allocation_id=allocation.id, gpu_type=gpu_type, gpu_seconds=secs, won=won
                )
            )
        else:
            item.gpu_seconds += secs
            item.won += won
    record(
        session,
        who,
        "grant.topup",
        "allocation",
        allocation.id,
        {
            "request_id": request.id,
            "items": {t: {"gpu_seconds": s, "won": w} for t, (s, w) in rated.items()},
        },
    )
    session.flush()


def extend(
    session: Session,
    who: Principal,
    request: orm.AllocationRequest,
    allocation: orm.Allocation,
    ends_at: datetime,
) -> None:
    """Move an allocation's end later (its envelopes stay as they are)."""
    if ends_at <= allocation.ends_at:
        raise Conflict(
            (
                "allocation {allocation} already ends at {ends_at:%Y-%m-%d %H:%M} UTC: "
                "an extension must end later"
            ),
            allocation=allocation.id,
            ends_at=allocation.ends_at,
        )
    record(
        session,
        who,
        "grant.extend",
        "allocation",
        allocation.id,
        {"request_id": request.id, "before": allocation.ends_at, "after": ends_at},
    )
    allocation.ends_at = ends_at


def terminate(
    session: Session,
    who: Principal,
    request: orm.AllocationRequest,
    allocation: orm.Allocation,
    at: datetime,
) -> None:
    """End an allocation now. Jobs already running keep running and are charged to it
    when they end (their holds are on it); new runs are not charged to it. Tranches not
    yet released go back to the program's budget."""
    record(
        session,
        who,
        "grant.terminate",
        "allocation",
        allocation.id,
        {"request_id": request.id, "ends_at_before": allocation.ends_at, "ends_at": at},
    )
    allocation.status = "terminated"
    allocation.ends_at = max(at, allocation.starts_at)
    withdraw_pending(session, allocation.id)
