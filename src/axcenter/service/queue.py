"""The pending queue in scheduling order, as ``squeue`` shows it.

Positions follow the way the scheduler walks the queues: projects in the order its latest
cycle first reached them (fair share and quota tiers decide that order), each project's
jobs by priority class, then submission time (the order its queue holds them in);
projects the cycle did not reach come last, their jobs by priority and submission. Each
job carries the reason it waits and its estimated start (``estimated_start``).

A position is the job's place in the whole queue, not among the jobs its caller may see:
a member whose job is fourth behind three jobs of other companies reads 4, not 1 (the
other jobs stay hidden; their number is no secret, the cluster page shows it to all).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import false, func, select, text, true
from sqlalchemy.orm import Session

from axcenter.control.convert import utc
from axcenter.model.access import Principal
from axcenter.model.jobs import JobState
from axcenter.model.plan import PendingReason
from axcenter.service.access import visible_projects
from axcenter.service.errors import InvalidInput
from axcenter.service.schemas import QueueItemOut, QueueOut
from axcenter.store import orm

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = ["MAX_PAGE", "estimated_start", "queue", "queue_position"]

MAX_PAGE = 500
_PENDING = JobState.PENDING.value


def queue(center: Center, who: Principal, *, offset: int = 0, limit: int = 50) -> QueueOut:
    """Pending jobs ``who`` may see, positions ``offset + 1`` to ``offset + limit``.

    No sort of the backlog, so the page costs about the same at 100,000 pending jobs as
    at 100 (benchmarks/queue_view.py): the pending jobs are counted per project (one
    index scan), and the queue is walked a project at a time in the cycle's order, each
    project's jobs read from the index that holds them in their queue order
    (``ix_jobs_pending_order``) from the page's first. Only projects the cycle did not
    reach share one ordering, numbered by the database among themselves."""
    if offset < 0:
        raise InvalidInput("offset", "must be 0 or more")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", "must be between 1 and {MAX_PAGE}", MAX_PAGE=MAX_PAGE)
    j = orm.Job
    pending = orm.JOB_PENDING  # as the partial indexes say it, so that they serve
    with center.store.read() as session:
        counts: dict[str, int] = dict(
            session.execute(_COUNTS_SQLITE if center.store.is_sqlite else _COUNTS).tuples().all()
        )
        visible = set(
            session.scalars(
                select(orm.Project.id).where(
                    visible_projects(who), orm.Project.id.in_(list(counts))
                )
            )
        )
        # one's own jobs in projects one does not see (rare: a member who left one)
        own_elsewhere: dict[str, list[str]] = {}
        if hidden := [p for p in counts if p not in visible]:
            for job_id, project_id in session.execute(
                select(j.id, j.project_id)
                .where(j.user_id == who.user_id, pending, j.project_id.in_(hidden))
                .order_by(*_IN_PROJECT)
            ).tuples():
                own_elsewhere.setdefault(project_id, []).append(job_id)
        rank = _ranks(center)
        reached = [p for p in rank if p in counts]
        unreached = [p for p in counts if p not in rank]
        positions: dict[str, int] = {}
        skip, base = offset, 0
        for project_id in reached:
            if len(positions) >= limit:
                break
            if project_id in visible:
                if skip >= counts[project_id]:
                    skip -= counts[project_id]
                else:
                    ids = session.scalars(
                        select(j.id)
                        .where(pending, j.project_id == project_id)
                        .order_by(*_IN_PROJECT)
                        .offset(skip)
                        .limit(limit - len(positions))
                    ).all()
                    positions.update((job_id, base + skip + n + 1) for n, job_id in enumerate(ids))
                    skip = 0
            else:
                for job_id in own_elsewhere.get(project_id, ()):
                    if skip:
                        skip -= 1
                    elif len(positions) < limit:
                        positions[job_id] = base + _place_in_project(session, job_id)
            base += counts[project_id]
        if unreached and len(positions) < limit:
            numbered = (
                select(
                    j.id.label("id"),
                    j.project_id.label("project_id"),
                    j.user_id.label("user_id"),
                    func.row_number().over(order_by=_IN_PROJECT).label("place"),
                )
                .where(pending, j.project_id.in_(unreached))
                .subquery()
            )
            seen = numbered.c.project_id.in_(list(visible)) | (numbered.c.user_id == who.user_id)
            page = session.execute(
                select(numbered.c.id, numbered.c.place)
                .where(seen)
                .order_by(numbered.c.place)
                .offset(skip)
                .limit(limit - len(positions))
            ).tuples()
            positions.update((job_id, base + place) for job_id, place in page)
        page_ids = list(positions)
        total = sum(counts[p] for p in visible) + sum(map(len, own_elsewhere.values()))
        length = sum(counts.values())
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
        estimate = estimated_start(center, job_id)
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
                estimated_start=estimate,
            )
        )
    return QueueOut(items=items, total=total, queue_length=length)


def estimated_start(center: Center, job_id: str) -> datetime | None:
    """When a pending job should start: the scheduler run forward over the queue with
    every job lasting its time limit (``control/estimates.py``), else the start the latest
    cycle reserved for it (backfill's shadow); never before now (a start due at the next
    cycle reads now). None: neither knows (held, dependent, or beyond the forecast's
    horizon). The caller has checked that its reader may see the job."""
    at = center.estimates.start_of(job_id)
    if at is None:
        at = center.control.state.estimates.get(job_id)
    return None if at is None else utc(max(at, time.time()))


#: pending jobs per project, from ``ix_jobs_pending_order`` alone. SQLite's planner,
#: without statistics, prefers the index on state and a sort (4x slower at 100,000
#: pending), so it is told which index to use
_COUNTS = text("SELECT project_id, count(*) FROM jobs WHERE state = 'pending' GROUP BY project_id")
_COUNTS_SQLITE = text(
    "SELECT project_id, count(*) FROM jobs INDEXED BY ix_jobs_pending_order"
    " WHERE state = 'pending' GROUP BY project_id"
)
#: a project's queue order (priority class, then submission, then id): the order of
#: ``ix_jobs_pending_order`` after its (state, project) prefix
_IN_PROJECT = (orm.Job.priority.desc(), orm.Job.submitted_at, orm.Job.id)


def _place_in_project(session: Session, job_id: str) -> int:
    """A pending job's place in its own project's queue (1 for the first)."""
    j = orm.Job
    project, priority, submitted = session.execute(
        select(j.project_id, j.priority, j.submitted_at).where(j.id == job_id)
    ).one()
    ahead = (j.priority > priority) | (
        (j.priority == priority)
        & ((j.submitted_at < submitted) | ((j.submitted_at == submitted) & (j.id < job_id)))
    )
    found = session.scalar(
        select(func.count()).where(j.state == _PENDING, j.project_id == project, ahead)
    )
    return (found or 0) + 1


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
    pending = orm.JOB_PENDING
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
