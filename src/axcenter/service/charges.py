"""What a job cost: its ledger rows (holds, releases, charges) as its owner may see them,
and, while it runs, what it has used so far (``accounting.accrual``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from axcenter.accounting.accrual import accrual
from axcenter.model.access import Principal
from axcenter.service.access import visible_jobs
from axcenter.service.errors import NotFound
from axcenter.service.schemas import ChargeOut, ChargesOut
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = ["job_charges"]


def job_charges(center: Center, who: Principal, job_id: str) -> ChargesOut:
    """The ledger rows of a job the caller may see (404 otherwise), oldest first."""
    with center.store.read() as session:
        if (
            session.scalar(select(orm.Job.id).where(orm.Job.id == job_id, visible_jobs(who)))
            is None
        ):
            raise NotFound(f"no job {job_id!r}")
        rows = session.scalars(
            select(orm.LedgerEntry)
            .where(orm.LedgerEntry.job_id == job_id)
            .order_by(orm.LedgerEntry.id)
        ).all()
        items = [
            ChargeOut(
                at=r.at,
                kind=r.kind,
                allocation_id=r.allocation_id,
                gpu_type=r.gpu_type,
                gpu_seconds=r.gpu_seconds,
                amount_won=r.amount_won,
                public_won=r.public_won,
                copay_won=r.copay_won,
            )
            for r in rows
        ]
        accrued = accrual(session, utcnow(), job_id=job_id).accrued_won
    held = sum(i.amount_won for i in items if i.kind == "hold") - sum(
        i.amount_won for i in items if i.kind == "release"
    )
    return ChargesOut(
        job_id=job_id,
        items=items,
        charged_won=sum(i.amount_won for i in items if i.kind == "charge"),
        held_won=held,
        accrued_won=accrued,
    )
