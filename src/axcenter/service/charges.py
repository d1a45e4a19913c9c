"""What jobs cost: one job's ledger rows (holds, releases, charges) as its owner may see
them and, while it runs, what it has used so far (``accounting.accrual``); and every
visible job of a period with its time, GPU-hours and won (``sacct``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select

from axcenter.accounting.accrual import accrual
from axcenter.accounting.ledger import CHARGE_KINDS
from axcenter.model.access import Principal
from axcenter.service.access import project_named, visible_jobs
from axcenter.service.errors import InvalidInput, NotFound
from axcenter.service.schemas import ChargeOut, ChargesOut, JobAccountOut, JobAccountsOut
from axcenter.service.steps import steps_of
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = ["DEFAULT_PERIOD", "MAX_ACCOUNTS", "job_accounts", "job_charges"]

#: ``sacct`` without ``--starttime``: the last week
DEFAULT_PERIOD = timedelta(days=7)
MAX_ACCOUNTS = 100_000


def job_charges(center: Center, who: Principal, job_id: str) -> ChargesOut:
    """The ledger rows of a job the caller may see (404 otherwise), oldest first."""
    with center.store.read() as session:
        if (
            session.scalar(select(orm.Job.id).where(orm.Job.id == job_id, visible_jobs(who)))
            is None
        ):
            raise NotFound("no job {job_id!r}", job_id=job_id)
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
                list_won=r.list_won,
                terms=r.terms,
            )
            for r in rows
        ]
        accrued = accrual(session, utcnow(), job_id=job_id).accrued_won
    held = (
        sum(i.amount_won for i in items if i.kind == "hold")
        - sum(i.amount_won for i in items if i.kind == "release")
        - sum(i.list_won or 0 for i in items if i.kind == "accrual")
    )
    return ChargesOut(
        job_id=job_id,
        items=items,
        charged_won=sum(i.amount_won for i in items if i.kind in CHARGE_KINDS),
        held_won=held,
        accrued_won=accrued,
    )


def job_accounts(
    center: Center,
    who: Principal,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    users: Sequence[str] = (),
    project: str | None = None,
    limit: int = 10_000,
) -> JobAccountsOut:
    """The visible jobs that ran during ``[since, until)``, oldest start first, with what
    each used and cost (defaults: the last ``DEFAULT_PERIOD`` up to now)."""
    now = utcnow()
    until = until or now
    since = since or until - DEFAULT_PERIOD
    if since >= until:
        raise InvalidInput("since", "the period must start before it ends")
    if not 1 <= limit <= MAX_ACCOUNTS:
        raise InvalidInput(
            "limit", "must be between 1 and {MAX_ACCOUNTS}", MAX_ACCOUNTS=MAX_ACCOUNTS
        )
    where = [
        visible_jobs(who),
        orm.Job.started_at.is_not(None),
        orm.Job.started_at < until,
        or_(orm.Job.ended_at.is_(None), orm.Job.ended_at >= since),
    ]
    if users:
        ids = [u for u in users if u.startswith("usr_")]
        named = select(orm.User.id).where(orm.User.name.in_([u for u in users if u not in ids]))
        where.append(orm.Job.user_id.in_(ids) | orm.Job.user_id.in_(named))
    if project:
        where.append(orm.Job.project_id.in_(select(orm.Project.id).where(project_named(project))))
    charged = (
        select(
            orm.LedgerEntry.job_id,
            func.sum(orm.LedgerEntry.amount_won).label("won"),
            func.sum(orm.LedgerEntry.gpu_seconds).label("gpu_seconds"),
        )
        .where(orm.LedgerEntry.kind.in_(CHARGE_KINDS), orm.LedgerEntry.job_id.is_not(None))
        .group_by(orm.LedgerEntry.job_id)
        .subquery()
    )
    query = (
        select(orm.Job, orm.User.name, orm.Project.name, charged.c.won, charged.c.gpu_seconds)
        .join(orm.User, orm.User.id == orm.Job.user_id)
        .join(orm.Project, orm.Project.id == orm.Job.project_id)
        .outerjoin(charged, charged.c.job_id == orm.Job.id)
        .where(*where)
        .order_by(orm.Job.started_at, orm.Job.id)
        .limit(limit + 1)
    )
    with center.store.read() as session:
        rows = session.execute(query).tuples().all()
        steps = steps_of(session, [job.id for job, *_ in rows[:limit]])
    for listed in steps.values():
        for step in listed:
            step.command = []  # sacct's columns: the command is `axc show`'s, for whom may
    items = []
    for job, user, project_name, won, gpu_seconds in rows[:limit]:
        assert job.started_at is not None  # the query's own condition
        elapsed = int(((job.ended_at or now) - job.started_at).total_seconds())
        gpus = job.gpus_per_node * job.nodes
        items.append(
            JobAccountOut(
                id=job.id,
                name=job.name,
                user=user,
                project=project_name,
                state=job.state,
                array_id=job.array_id,
                array_index=job.array_index,
                gpus=gpus,
                gpu_type=job.gpu_type,
                submitted_at=job.submitted_at,
                started_at=job.started_at,
                ended_at=job.ended_at,
                elapsed_s=max(elapsed, 0),
                gpu_seconds=int(gpu_seconds) if gpu_seconds is not None else elapsed * gpus,
                charged_won=int(won or 0),
                exit_code=job.exit_code,
                steps=steps[job.id],
            )
        )
    return JobAccountsOut(items=items, since=since, until=until, truncated=len(rows) > limit)
