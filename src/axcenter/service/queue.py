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

from typing import TYPE_CHECKING

from sqlalchemy import select
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
    with center.store.read() as session:
        order = _order(center, session)
        mine = set(
            session.scalars(select(orm.Job.id).where(orm.Job.state == _PENDING, visible_jobs(who)))
        )
        positions = {job_id: n for n, job_id in enumerate(order, start=1)}
        keys = [job_id for job_id in order if job_id in mine]
        page_ids = keys[offset : offset + limit]
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
    return QueueOut(items=items, total=len(keys), queue_length=len(order))


def queue_position(center: Center, session: Session, job_id: str) -> tuple[int, int] | None:
    """A pending job's place in the whole queue and the queue's length (None: not
    pending). The caller has checked that ``who`` may see the job."""
    order = _order(center, session)
    try:
        return order.index(job_id) + 1, len(order)
    except ValueError:
        return None


def _order(center: Center, session: Session) -> list[str]:
    """Every pending job's id, in the order the scheduler walks the queue."""
    state = center.control.state
    rank: dict[str, int] = {}
    for job_id in list(state.reasons):  # a copy: the control loop replaces it each cycle
        waiting = state.pending.get(job_id)
        if waiting is not None:
            rank.setdefault(waiting.project_id, len(rank))
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
