"""Scheduling policy held in the store (quotas, cohorts, reservations, limits), as the
scheduler's values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from axcenter.model.quota import ROOT_COHORT, Quota, QuotaNode
from axcenter.model.snapshot import Limits, Reservation
from axcenter.store import orm

__all__ = ["Policy", "granted_quotas", "load_policy"]


@dataclass(frozen=True, slots=True)
class Policy:
    projects: dict[str, QuotaNode] = field(default_factory=dict)
    cohorts: dict[str, QuotaNode] = field(default_factory=dict)
    reservations: tuple[Reservation, ...] = ()
    project_limits: dict[str, Limits] = field(default_factory=dict)


def load_policy(session: Session, now: datetime) -> Policy:
    quotas = granted_quotas(session, now)
    for q in session.scalars(select(orm.ProjectQuota)):  # set by operators: they win
        quotas.setdefault(q.project_id, {})[q.gpu_type] = Quota(
            nominal=q.nominal, borrowing_limit=q.borrowing_limit, lending_limit=q.lending_limit
        )
    cohorts = {
        c.id: QuotaNode(c.id, parent=c.parent_id or ROOT_COHORT)
        for c in session.scalars(select(orm.Cohort))
    }
    projects: dict[str, QuotaNode] = {}
    limits: dict[str, Limits] = {}
    for p in session.scalars(select(orm.Project)):
        projects[p.id] = QuotaNode(
            p.id,
            parent=p.cohort_id or ROOT_COHORT,
            quotas=quotas.get(p.id, {}),
            weight=p.fair_share_weight,
        )
        if p.max_running_jobs is not None or p.max_gpus is not None:
            limits[p.id] = Limits(max_running_jobs=p.max_running_jobs, max_gpus=p.max_gpus)
    reservations = tuple(
        Reservation(
            id=r.id,
            project_id=r.project_id,
            start=r.starts_at.timestamp(),
            end=r.ends_at.timestamp(),
            devices=tuple((d["node_id"], tuple(d["devices"])) for d in r.devices),
        )
        for r in session.scalars(
            select(orm.Reservation)
            .where(orm.Reservation.ends_at > now)
            .order_by(orm.Reservation.id)
        )
    )
    return Policy(projects, cohorts, reservations, limits)


def granted_quotas(session: Session, now: datetime) -> dict[str, dict[str, Quota]]:
    """Nominal quotas from active grants: the GPUs that use the grant's GPU-hours evenly
    over its window, rounded up (10,000 GPU-hours over 30 days: 14 GPUs)."""
    nominal: dict[str, dict[str, int]] = {}
    rows = session.execute(
        select(
            orm.Allocation.project_id,
            orm.Allocation.starts_at,
            orm.Allocation.ends_at,
            orm.AllocationItem.gpu_type,
            orm.AllocationItem.gpu_seconds,
        )
        .join(orm.AllocationItem, orm.AllocationItem.allocation_id == orm.Allocation.id)
        .where(
            orm.Allocation.status == "active",
            orm.Allocation.starts_at <= now,
            orm.Allocation.ends_at > now,
        )
    )
    for project_id, starts, ends, gpu_type, secs in rows:
        window = max(1, int((ends - starts).total_seconds()))
        per_type = nominal.setdefault(project_id, {})
        per_type[gpu_type] = per_type.get(gpu_type, 0) + -(-int(secs) // window)
    return {p: {t: Quota(nominal=n) for t, n in types.items()} for p, types in nominal.items()}
