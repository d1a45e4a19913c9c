"""The pending queue in scheduling order, as ``squeue`` shows it.

Positions follow the way the scheduler walks the queues: projects in the order its latest
cycle first reached them (fair share and quota tiers decide that order), each project's
jobs by priority class, then submission time (the order its queue holds them in);
projects the cycle did not reach come last, their jobs by priority and submission. Each
job carries the reason it waits and, where backfill reserved one, its estimated start.

A position is the job's place in the whole queue, not among the jobs its caller may see:
a member whose job is fourth behind three jobs of other companies reads 4, not 1 (the
other jobs stay hidden; their number is no secret, the cluster page shows it to all).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import case, false, func, literal, select, true
from sqlalchemy.orm import Session

from axcenter.control.convert import utc
from axcenter.model.access import Principal
from axcenter.model.jobs import JobState
from axcenter.model.plan import PendingReason
from axcenter.service.access import visible_jobs
from axcenter.service.errors import InvalidInput
from axcenter.service.schemas import QueueItemOut, QueueOut
from axcenter.store import orm

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = ["MAX_PAGE", "queue", "queue_position"]

MAX_PAGE = 500
_PENDING = JobState.PENDING.value


def queue(center: Center, who: Principal, *, offset: int = 0, limit: int = 50) -> QueueOut:
    """Pending jobs ``who`` may see, positions ``offset + 1`` to ``offset + limit``."""
    if offset < 0:
        raise InvalidInput("offset", "must be 0 or more")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", f"must be between 1 and {MAX_PAGE}")
    state = center.control.state
    j = orm.Job
    with center.store.read() as session:
        # the database numbers the whole queue (a window function: no row of the backlog
        # comes to Python), then keeps the caller's page of the jobs it may see
        ordered = select(
            j.id.label("id"), func.row_number().over(order_by=_order_by(center)).label("place")
        ).where(j.state == _PENDING)
        numbered = ordered.subquery()
        page = session.execute(
            select(numbered.c.id, numbered.c.place)
            .join(j, j.id == numbered.c.id)
            .where(visible_jobs(who))
            .order_by(numbered.c.place)
            .offset(offset)
            .limit(limit)
        ).tuples()
        positions = dict(page.all())
        page_ids = list(positions)
        total = session.scalar(select(func.count()).where(j.state == _PENDING, visible_jobs(who)))
        length = session.scalar(select(func.count()).where(j.state == _PENDING))
        rows = {
            job.id: (job, project, user)
            for job, project, user in session.execute(
                select(orm.Job, orm.Project.name, orm.User.name)
                .join(orm.Project, orm.Project.id == orm.Job.project_id)
                .join(orm.User, orm.User.id == orm.Job.user_id)
                .where(orm.Job.id.in_(page_ids))
            ).tuples()
        }
    items = []
    for job_id in page_ids:
        job, project, user = rows[job_id]
        estimate = state.estimates.get(job_id)
        items.append(
            QueueItemOut(
                position=positions[job_id],
                id=job_id,
                name=job.name,
                project=project,
                user=user,
                gpus_per_node=job.gpus_per_node,
                nodes=job.nodes,
                gpu_types=list(job.gpu_types),
                priority=job.priority,
                submitted_at=job.submitted_at,
                reason=(center.control.reason(job_id) or PendingReason.PRIORITY).value,
                estimated_start=utc(estimate) if estimate is not None else None,
            )
        )
    return QueueOut(items=items, total=total or 0, queue_length=length or 0)


def queue_position(center: Center, session: Session, job_id: str) -> tuple[int, int] | None:
    """A pending job's place in the whole queue and the queue's length (None: not
    pending), counted in the database (no sort of the backlog: a job page of a waiting job
    refreshes often). The caller has checked that ``who`` may see the job."""
    job = session.execute(
        select(orm.Job.project_id, orm.Job.priority, orm.Job.submitted_at).where(
            orm.Job.id == job_id, orm.Job.state == _PENDING
        )
    ).one_or_none()
    if job is None:
        return None
    project, priority, submitted = job
    rank = _ranks(center)
    ranked = list(rank)
    j = orm.Job
    pending = j.state == _PENDING
    ahead_in_order = (j.priority > priority) | (
        (j.priority == priority)
        & ((j.submitted_at < submitted) | ((j.submitted_at == submitted) & (j.id < job_id)))
    )
    if project in rank:  # after the projects the cycle reached first, then its own order
        before = [p for p, r in rank.items() if r < rank[project]]
        ahead = (j.project_id.in_(before) if before else false()) | (
            (j.project_id == project) & ahead_in_order
        )
    else:  # the projects the cycle did not reach come last, in one order
        ahead = (j.project_id.in_(ranked) if ranked else false()) | (
            (j.project_id.not_in(ranked) if ranked else true()) & ahead_in_order
        )
    count = func.count()
    place = session.scalar(select(count).where(pending, ahead)) or 0
    length = session.scalar(select(count).where(pending)) or 0
    return place + 1, length


def _ranks(center: Center) -> dict[str, int]:
    """Projects in the order the latest cycle first reached them."""
    state = center.control.state
    rank: dict[str, int] = {}
    for job_id in list(state.reasons):  # a copy: the control loop replaces it each cycle
        waiting = state.pending.get(job_id)
        if waiting is not None:
            rank.setdefault(waiting.project_id, len(rank))
    return rank


def _order_by(center: Center) -> tuple[Any, ...]:
    """The queue's order as SQL: the projects' ranks from the latest cycle (the rest
    after them), then priority, submission and id, as ``_order`` sorts."""
    rank = _ranks(center)
    j = orm.Job
    by_rank = case(rank, value=j.project_id, else_=len(rank)) if rank else literal(0)
    return (by_rank, j.priority.desc(), j.submitted_at, j.id)


def _order(center: Center, session: Session) -> list[str]:
    """Every pending job's id, in the order the scheduler walks the queue (for tests:
    the sort the SQL of ``queue`` and ``queue_position`` must agree with)."""
    rank = _ranks(center)
    last = len(rank)
    keys = list(
        session.execute(
            select(orm.Job.id, orm.Job.project_id, orm.Job.priority, orm.Job.submitted_at).where(
                orm.Job.state == _PENDING
            )
        ).tuples()
    )
    keys.sort(key=lambda k: (rank.get(k[1], last), -k[2], k[3], k[0]))
    return [k[0] for k in keys]
