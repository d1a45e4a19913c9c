"""What each person should hear about, read from the records the center keeps anyway.

A notification is derived, not stored: the ends of one's own jobs (failed, timed out,
preempted and requeued, succeeded, cancelled) from the job events; the steps of the
allocation requests one has a part in (a reviewer: being assigned; the applicant's
organization admin: the decision; program managers and operators: a request filed,
resubmitted or reviewed) from the request events; the notices sent about the grants one
may read (reminders, warnings, suspensions, take-backs); and, as standing alerts, the grants
one may read that are 80% used, exhausted, or end within ``EXPIRING_DAYS``. The feed
goes back ``FEED_DAYS`` at most. What is new is for the caller to say (``since``): the
dashboard keeps the moment its reader last opened the feed in a cookie.

The same notices reach people by e-mail, for the kinds each chose (``service.mail``).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from axcenter.model.access import Principal, Role
from axcenter.model.jobs import JobState
from axcenter.service.access import visible_allocations
from axcenter.service.grants import allocation_out
from axcenter.service.schemas import NotificationOut
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = ["EXPIRING_DAYS", "FEED_DAYS", "UNREAD_REUSE_S", "notifications", "unread"]

FEED_DAYS = 14
#: how long an unread count is reused (the navigation shows it on every page)
UNREAD_REUSE_S = 30.0
EXPIRING_DAYS = 14
#: job states worth a word to the job's owner
_JOB_ENDS = (
    JobState.SUCCEEDED.value,
    JobState.FAILED.value,
    JobState.TIMED_OUT.value,
    JobState.CANCELLED.value,
    JobState.PREEMPTED.value,
)
_DECISIONS = ("approved", "rejected", "returned")
_FOR_STAFF = ("submitted", "resubmitted", "reviewed")


def notifications(
    center: Center, who: Principal, *, since: datetime | None = None, limit: int = 30
) -> list[NotificationOut]:
    """The caller's notifications newer than ``since`` (at most ``FEED_DAYS`` old), newest
    first, then the standing alerts on grants."""
    now = utcnow()
    floor = now - timedelta(days=FEED_DAYS)
    after = max(since, floor) if since is not None else floor
    with center.store.read() as session:
        feed = (
            _jobs(session, who, after, limit)
            + _requests(session, who, after, limit)
            + _notices(session, who, after, limit)
        )
        feed.sort(key=lambda n: n.at or now, reverse=True)
        return feed[:limit] + _grants(session, who, now)


#: (center id, user, since) -> (monotonic time counted, count)
_counts: dict[tuple[int, str, datetime | None], tuple[float, int]] = {}
_counts_lock = threading.Lock()


def unread(center: Center, who: Principal, since: datetime | None) -> int:
    """How many notifications (standing alerts aside) are newer than ``since``; a count
    is reused for ``UNREAD_REUSE_S``, so a busy reader's pages do not each read the feed."""
    key = (id(center), who.user_id, since)
    now = time.monotonic()
    with _counts_lock:
        hit = _counts.get(key)
    if hit is not None and now - hit[0] < UNREAD_REUSE_S:
        return hit[1]
    count = sum(1 for n in notifications(center, who, since=since) if n.at is not None)
    with _counts_lock:
        if len(_counts) > 10_000:
            _counts.clear()
        _counts[key] = (now, count)
    return count


def _jobs(session: Session, who: Principal, after: datetime, limit: int) -> list[NotificationOut]:
    rows = session.execute(
        select(orm.JobEvent.at, orm.JobEvent.to_state, orm.Job.id, orm.Job.name)
        .join(orm.Job, orm.Job.id == orm.JobEvent.job_id)
        .where(
            orm.Job.user_id == who.user_id,
            orm.JobEvent.at > after,
            orm.JobEvent.to_state.in_(_JOB_ENDS),
        )
        .order_by(orm.JobEvent.at.desc())
        .limit(limit)
    ).tuples()
    return [
        NotificationOut(at=at, kind=f"job.{state}", ref=job_id, subject=name or job_id)
        for at, state, job_id, name in rows
    ]


def _requests(
    session: Session, who: Principal, after: datetime, limit: int
) -> list[NotificationOut]:
    event, request = orm.RequestEvent, orm.AllocationRequest
    query = (
        select(event.at, event.action, request.id, orm.Project.name)
        .join(request, request.id == event.request_id)
        .join(orm.Project, orm.Project.id == request.project_id)
        .where(event.at > after, event.actor_id != who.user_id)
    )
    mine = select(orm.RequestReviewer.request_id).where(
        orm.RequestReviewer.reviewer_id == who.user_id
    )
    assigned = (event.action == "assigned") & event.request_id.in_(mine)
    if who.role in (Role.OPERATOR, Role.PROGRAM_MANAGER):
        query = query.where(event.action.in_(_FOR_STAFF) | assigned)
    elif who.role is Role.ORG_ADMIN:
        own = orm.Project.organization_id == who.organization_id
        query = query.where((event.action.in_(_DECISIONS) & own) | assigned)
    else:
        query = query.where(assigned)
    rows = session.execute(query.order_by(event.at.desc()).limit(limit)).tuples()
    return [
        NotificationOut(at=at, kind=f"request.{action}", ref=request_id, subject=project)
        for at, action, request_id, project in rows
    ]


def _notices(
    session: Session, who: Principal, after: datetime, limit: int
) -> list[NotificationOut]:
    """Notices about the grants one may read: reminders of overdue reports and surveys,
    warnings, suspensions, take-backs (``service.obligations``, ``service.monitoring``)."""
    if who.role is Role.REVIEWER:
        return []
    notice = orm.GrantNotice
    rows = session.execute(
        select(notice.at, notice.kind, notice.allocation_id, orm.Project.name)
        .join(orm.Allocation, orm.Allocation.id == notice.allocation_id)
        .join(orm.Project, orm.Project.id == orm.Allocation.project_id)
        .where(visible_allocations(who), notice.at > after)
        .order_by(notice.at.desc())
        .limit(limit)
    ).tuples()
    return [
        NotificationOut(at=at, kind=f"notice.{kind}", ref=allocation_id, subject=project)
        for at, kind, allocation_id, project in rows
    ]


def _grants(session: Session, who: Principal, now: datetime) -> list[NotificationOut]:
    """Standing alerts: grants 80% used or exhausted, and grants about to end."""
    if who.role is Role.REVIEWER:
        return []
    rows = session.scalars(
        select(orm.Allocation).where(visible_allocations(who), orm.Allocation.status == "active")
    ).all()
    out = []
    for row in rows:
        alloc = allocation_out(session, row)
        if alloc.balance.warning != "none":
            out.append(
                NotificationOut(
                    at=None,
                    kind=f"grant.{alloc.balance.warning}",
                    ref=alloc.id,
                    subject=alloc.project,
                )
            )
        if alloc.ends_at <= now + timedelta(days=EXPIRING_DAYS):
            out.append(
                NotificationOut(
                    at=None,
                    kind="grant.expiring",
                    ref=alloc.id,
                    subject=alloc.project,
                    until=alloc.ends_at,
                )
            )
    return out
