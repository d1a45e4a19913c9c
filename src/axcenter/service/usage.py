"""Usage over time with drill-down, as Open XDMoD shows it: GPU-hours and won charged per
day, week or month, by organization, then one organization's projects, one project's
users, one user's jobs.

- **What counts**: the charges the ledger booked (each run's at its end; running jobs
  appear once settled), in the bucket of the center's zone where they were booked.
- **Honest buckets**: the first bucket is the one holding the center's first charge (no
  zeros for the months before the center existed), the last one the one holding the end
  of the window; a bucket not over yet is marked ``partial`` (its figures are so far).
  Weeks start on Monday (ISO), as Korean calendars print them.
- **Who sees what**: what the reports show (``service.reports``): operators and program
  managers everything; organization admins their organization; members their projects
  (and, in them, each member's share, as the project page shows); reviewers nothing (403).
  An organization, project or user the caller may not see answers 404, as one that does
  not exist; totals are sums of the visible rows only.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import ColumnElement, func, select

from axcenter.accounting.reports import utc_text
from axcenter.model.access import Principal, Role
from axcenter.service.access import visible_jobs, visible_organizations, visible_projects
from axcenter.service.errors import Forbidden, InvalidInput, NotFound
from axcenter.service.schemas import (
    UsageBucketOut,
    UsageJobOut,
    UsageOverTimeOut,
    UsageSeriesItemOut,
)
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = ["PERIODS", "buckets", "usage_over_time"]

Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")
#: buckets shown by default, per period
DEFAULT_SPAN = {"day": 30, "week": 26, "month": 12}
MAX_BUCKETS = 400


def _floor(day: date, period: Period) -> date:
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day


def _next(day: date, period: Period) -> date:
    if period == "day":
        return day + timedelta(days=1)
    if period == "week":
        return day + timedelta(days=7)
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def buckets(
    first: datetime, until: datetime, now: datetime, period: Period, zone: tzinfo
) -> list[UsageBucketOut]:
    """The periods from the one holding ``first`` to the one holding ``until`` (both in
    ``zone``), each marked partial when it ends after ``now``."""
    day = _floor(first.astimezone(zone).date(), period)
    last = until.astimezone(zone)
    out: list[UsageBucketOut] = []
    while True:
        start = datetime.combine(day, datetime.min.time(), zone)
        if start >= last and out:
            break
        day = _next(day, period)
        end = datetime.combine(day, datetime.min.time(), zone)
        out.append(UsageBucketOut(start=start, end=end, partial=end > now))
        if len(out) > MAX_BUCKETS:
            raise InvalidInput(
                "since",
                "more than {MAX_BUCKETS} {period}s: choose a longer period",
                MAX_BUCKETS=MAX_BUCKETS,
                period=period,
            )
    return out


def _index(
    periods: Sequence[UsageBucketOut], starts: Sequence[datetime], at: datetime
) -> int | None:
    """The bucket holding ``at`` (``starts``: the buckets' starts, sorted)."""
    i = bisect_right(starts, at) - 1
    return i if i >= 0 and at < periods[i].end else None


def _local_day(
    session: Any, column: Any, zone: tzinfo, periods: Sequence[UsageBucketOut]
) -> ColumnElement[str]:
    """Charges grouped by their day in the center's zone where the store can say it
    (PostgreSQL with the zone's rules; SQLite when the zone's offset is one over the
    window, as Asia/Seoul's is), else by UTC hour, placed in buckets here."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone(str(zone), column), "YYYY-MM-DD")
    offsets = {b.start.utcoffset() for b in periods} | {b.end.utcoffset() for b in periods}
    if len(offsets) == 1:
        (offset,) = offsets
        minutes = int(offset.total_seconds() // 60) if offset is not None else 0
        return func.strftime("%Y-%m-%d", column, f"{minutes:+d} minutes")
    return utc_text(session, column, "%Y-%m-%d %H")


def _moment(text: str, zone: tzinfo) -> datetime:
    """A group's instant: a local day's start (``2026-12-07``) or a UTC hour."""
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), zone)
    return datetime.fromisoformat(f"{text[:13]}:00:00+00:00")


def usage_over_time(
    center: Center,
    who: Principal,
    *,
    period: str = "month",
    organization: str | None = None,
    project: str | None = None,
    user: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> UsageOverTimeOut:
    """One level of the drill-down: by organization (nothing named), by project (an
    ``organization``), by user (a ``project``), a user's jobs (``project`` and ``user``)."""
    if period not in PERIODS:
        raise InvalidInput(
            "period", "one of {PERIODS}, not {period!r}", PERIODS=", ".join(PERIODS), period=period
        )
    per: Period = period
    if who.role is Role.REVIEWER:
        raise Forbidden("your role (reviewer) may not read usage: reviewers judge requests")
    if user is not None and project is None:
        raise InvalidInput("user", "a user's usage is read within a project: name it")
    zone = center.settings.zone
    now = utcnow()
    end = until.astimezone(UTC) if until is not None else now
    entry = orm.LedgerEntry
    with center.store.read() as session:
        first = session.scalar(select(func.min(entry.at)).where(entry.kind == "charge"))
        if first is not None and first.tzinfo is None:
            first = first.replace(tzinfo=UTC)
        start = since.astimezone(UTC) if since is not None else None
        if start is None:
            back = DEFAULT_SPAN[per]
            day = _floor(end.astimezone(zone).date(), per)
            for _ in range(back - 1):
                day = _floor(day - timedelta(days=1), per)
            start = datetime.combine(day, datetime.min.time(), zone)
        if first is not None:
            start = max(start, first)
        if start >= end:
            raise InvalidInput("since", "the window ends before it starts")
        periods = buckets(start, end, now, per, zone) if first is not None else []
        window = (
            entry.kind == "charge",
            entry.at >= (periods[0].start if periods else end),
            entry.at < end,
        )
        scope: list[ColumnElement[bool]] = [visible_projects(who)]
        level: Literal["organization", "project", "user", "job"] = "organization"
        org_row = prj_row = usr_row = None
        if organization is not None:
            org_row = session.scalars(
                select(orm.Organization).where(
                    orm.Organization.name == organization, visible_organizations(who)
                )
            ).one_or_none()
            if org_row is None:
                raise NotFound("no organization {organization!r}", organization=organization)
            scope.append(orm.Project.organization_id == org_row.id)
            level = "project"
        if project is not None:
            prj_row = session.scalars(
                select(orm.Project).where(orm.Project.name == project, visible_projects(who))
            ).one_or_none()
            if prj_row is None or (org_row is not None and prj_row.organization_id != org_row.id):
                raise NotFound("no project {project!r}", project=project)
            scope.append(orm.Project.id == prj_row.id)
            level = "user"
        if user is not None:
            assert prj_row is not None
            in_project = orm.User.id.in_(
                select(orm.ProjectMember.user_id).where(orm.ProjectMember.project_id == prj_row.id)
            ) | orm.User.id.in_(select(orm.Job.user_id).where(orm.Job.project_id == prj_row.id))
            usr_row = session.scalars(
                select(orm.User).where(orm.User.name == user, in_project)
            ).one_or_none()
            if usr_row is None:  # whoever it is, it has no part in this project
                raise NotFound("no user {user!r} in {project}", user=user, project=project)
            scope.append(orm.Job.user_id == usr_row.id)
            level = "job"
        key: Any
        name: Any
        if level == "organization":
            key, name = orm.Organization.id, orm.Organization.name
        elif level == "project":
            key, name = orm.Project.id, orm.Project.name
        else:
            key, name = orm.User.id, orm.User.name
        hour = _local_day(session, entry.at, zone, periods)
        query = (
            select(key, name, hour, func.sum(entry.gpu_seconds), func.sum(entry.amount_won))
            .join(orm.Project, orm.Project.id == entry.project_id)
            .join(orm.Organization, orm.Organization.id == orm.Project.organization_id)
            .outerjoin(orm.Job, orm.Job.id == entry.job_id)
            .outerjoin(orm.User, orm.User.id == orm.Job.user_id)
            .where(*window, *scope)
            .group_by(key, name, hour)
        )
        starts = [b.start for b in periods]
        series: dict[str, UsageSeriesItemOut] = {}
        #: a group's time text -> its bucket (texts repeat across series)
        slots: dict[str, int | None] = {}
        for found, named, h, secs, won in session.execute(query).tuples():
            # a charge of no job (booked by hand) has no user to show it under
            k, label = ("", "-") if found is None else (found, named)
            text = str(h)
            if text not in slots:
                slots[text] = _index(periods, starts, _moment(text, zone))
            i = slots[text]
            if i is None:
                continue
            item = series.setdefault(
                str(k),
                UsageSeriesItemOut(
                    key=str(k),
                    label=str(label),
                    gpu_hours=[0.0] * len(periods),
                    won=[0] * len(periods),
                    total_gpu_hours=0.0,
                    total_won=0,
                ),
            )
            item.gpu_hours[i] += int(secs) / 3600
            item.won[i] += int(won)
        for item in series.values():
            item.gpu_hours = [round(h, 2) for h in item.gpu_hours]
            item.total_gpu_hours = round(sum(item.gpu_hours), 2)
            item.total_won = sum(item.won)
        jobs = None
        if level == "job":
            rows = session.execute(
                select(
                    orm.Job.id,
                    orm.Job.name,
                    orm.Job.state,
                    func.sum(entry.gpu_seconds),
                    func.sum(entry.amount_won),
                    func.max(entry.at),
                )
                .join(orm.Job, orm.Job.id == entry.job_id)
                .join(orm.Project, orm.Project.id == entry.project_id)
                .where(*window, *scope, visible_jobs(who))
                .group_by(orm.Job.id, orm.Job.name, orm.Job.state)
                .order_by(func.max(entry.at).desc())
                .limit(500)
            ).tuples()
            jobs = [
                UsageJobOut(
                    id=j,
                    name=n or "",
                    state=s,
                    gpu_hours=round(int(secs) / 3600, 2),
                    won=int(won),
                    last_charged_at=last if last.tzinfo else last.replace(tzinfo=UTC),
                )
                for j, n, s, secs, won, last in rows
            ]
    return UsageOverTimeOut(
        level=level,
        period=per,
        time_zone=str(zone),
        organization=org_row.name if org_row else None,
        project=prj_row.name if prj_row else None,
        user=usr_row.name if usr_row else None,
        first_at=first,
        buckets=periods,
        series=sorted(series.values(), key=lambda s: (-s.total_won, s.label)),
        jobs=jobs,
    )
