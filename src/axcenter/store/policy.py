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

__all__ = ["Policy", "load_policy"]


@dataclass(frozen=True, slots=True)
class Policy:
    projects: dict[str, QuotaNode] = field(default_factory=dict)
    cohorts: dict[str, QuotaNode] = field(default_factory=dict)
    reservations: tuple[Reservation, ...] = ()
    project_limits: dict[str, Limits] = field(default_factory=dict)


def load_policy(session: Session, now: datetime) -> Policy:
    quotas: dict[str, dict[str, Quota]] = {}
    for q in session.scalars(select(orm.ProjectQuota)):
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
