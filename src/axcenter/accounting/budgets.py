"""What each project's current allocation can still pay for: the scheduler's budgets."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from axcenter.accounting.prices import prices_at
from axcenter.model.snapshot import Budget
from axcenter.store import orm

__all__ = ["load_budgets"]


def load_budgets(session: Session, now: datetime, hold_grace_s: int) -> dict[str, Budget]:
    """One budget per project with an active allocation covering ``now`` (the one that
    ends first, as ``ledger.current_allocation`` charges), from a few grouped queries."""
    allocations = session.scalars(
        select(orm.Allocation)
        .where(
            orm.Allocation.status == "active",
            orm.Allocation.starts_at <= now,
            orm.Allocation.ends_at > now,
        )
        .order_by(orm.Allocation.project_id, orm.Allocation.ends_at, orm.Allocation.id)
    ).all()
    current: dict[str, orm.Allocation] = {}
    for a in allocations:
        current.setdefault(a.project_id, a)
    if not current:
        return {}
    ids = [a.id for a in current.values()]
    granted_won: dict[str, int] = {}
    granted_secs: dict[str, dict[str, int]] = {}
    for alloc_id, gpu_type, secs, won in session.execute(
        select(
            orm.AllocationItem.allocation_id,
            orm.AllocationItem.gpu_type,
            orm.AllocationItem.gpu_seconds,
            orm.AllocationItem.won,
        ).where(orm.AllocationItem.allocation_id.in_(ids))
    ):
        granted_won[alloc_id] = granted_won.get(alloc_id, 0) + int(won)
        granted_secs.setdefault(alloc_id, {})[gpu_type] = int(secs)
    spent_won: dict[str, int] = {}
    used_secs: dict[str, dict[str, int]] = {}
    for alloc_id, kind, gpu_type, won, secs in session.execute(
        select(
            orm.LedgerEntry.allocation_id,
            orm.LedgerEntry.kind,
            orm.LedgerEntry.gpu_type,
            func.sum(orm.LedgerEntry.amount_won),
            func.sum(orm.LedgerEntry.gpu_seconds),
        )
        .where(orm.LedgerEntry.allocation_id.in_(ids))
        .group_by(orm.LedgerEntry.allocation_id, orm.LedgerEntry.kind, orm.LedgerEntry.gpu_type)
    ):
        sign = -1 if kind == "release" else 1
        spent_won[alloc_id] = spent_won.get(alloc_id, 0) + sign * int(won)
        per_type = used_secs.setdefault(alloc_id, {})
        per_type[gpu_type] = per_type.get(gpu_type, 0) + sign * int(secs)
    prices = prices_at(session, now)
    budgets = {}
    for project_id, a in current.items():
        granted = granted_secs.get(a.id, {})
        used = used_secs.get(a.id, {})
        budgets[project_id] = Budget(
            won_left=granted_won.get(a.id, 0) - spent_won.get(a.id, 0),
            gpu_seconds_left={t: s - used.get(t, 0) for t, s in granted.items()},
            prices={t: prices[t] for t in granted if t in prices},
            hold_grace_s=hold_grace_s,
            unfunded_ok=a.on_exhaustion == "preemptible",
        )
    return budgets
