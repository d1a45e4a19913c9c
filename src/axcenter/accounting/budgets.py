"""What each project's current allocation can still pay for: the scheduler's budgets."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from axcenter.accounting.ledger import balances
from axcenter.accounting.prices import prices_at
from axcenter.model.snapshot import Budget
from axcenter.store import orm

__all__ = ["load_budgets"]


def load_budgets(session: Session, now: datetime, hold_grace_s: int) -> dict[str, Budget]:
    """One budget per project with an active allocation covering ``now`` (the one that
    ends first, as ``ledger.current_allocation`` charges), from a few queries whose cost
    does not grow with the ledger (``ledger.balances``); an empty one for a project whose
    only grant covering ``now`` is suspended (``service.monitoring``), so its jobs wait."""
    allocations = session.scalars(
        select(orm.Allocation)
        .where(
            orm.Allocation.status.in_(("active", "suspended")),
            orm.Allocation.starts_at <= now,
            orm.Allocation.ends_at > now,
        )
        .order_by(orm.Allocation.project_id, orm.Allocation.ends_at, orm.Allocation.id)
    ).all()
    current: dict[str, orm.Allocation] = {}
    suspended: set[str] = set()
    for a in allocations:
        if a.status == "active":
            current.setdefault(a.project_id, a)
        else:
            suspended.add(a.project_id)
    # a project whose only grant now is suspended can pay for nothing: its jobs wait
    budgets = {
        project_id: Budget(won_left=0, gpu_seconds_left={}, prices={}, hold_grace_s=hold_grace_s)
        for project_id in suspended - set(current)
    }
    if not current:
        return budgets
    left = balances(session, [a.id for a in current.values()])
    prices = prices_at(session, now)
    for project_id, a in current.items():
        b = left[a.id]
        budgets[project_id] = Budget(
            won_left=b.won_left,
            gpu_seconds_left=b.gpu_seconds_left(),
            prices={t: prices[t] for t in b.granted_gpu_seconds if t in prices},
            hold_grace_s=hold_grace_s,
            unfunded_ok=a.on_exhaustion == "preemptible",
        )
    return budgets
