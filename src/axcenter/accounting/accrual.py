"""Money as it accrues: long runs charged as they run, and what running jobs have used
since their last charge.

A run's hold is its worst case; its charge used to post only at its end, so a program's
balance, burn rate and warnings lagged every running job. Now, at the end of each
**period** (an hour or a day of the center's zone, per program or for the center), a
running job's usage since its previous accrual is posted as an ``accrual`` entry:
charged, and taken off its hold (docs/accounting.md, "Accrual").

- Exact: every entry is ``cumulative(through) - cumulative(previous)`` (``ledger.cumulative``:
  rounded once, on the run's total), and the final charge at the run's end is the same
  difference, so a run's accruals and final charge add up to the one charge it would have
  had, to the won, however many periods it spans.
- Once: an entry's time is its watermark (the last microsecond of the period it
  charges, so that it is in that period's day and month), posted with the entry itself,
  and the store refuses a second entry of a job at one moment (``ux_ledger_accrual``);
  writes are fenced (``Store.write``), so a controller that lost the store posts nothing.
- Serialised with the run's end: the running jobs' rows are locked (PostgreSQL; SQLite has
  one writer), as ``control.runs`` locks them before settling.
- An end learned after a period already accrued past it (a late engine report) is settled
  by a negative final charge: the run's entries still add up to its exact cost.

``accrual`` gives the part not posted yet (what settling each running job now would add),
beside the charged won on pages and in the burn-down.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, bindparam, insert, select
from sqlalchemy.orm import Session

from axcenter.accounting.ledger import LEDGER, Cumulative, Funding, charge_row, cumulative
from axcenter.accounting.terms import TermsBook
from axcenter.model.jobs import JobState
from axcenter.store import orm

__all__ = [
    "PERIOD_PATTERN",
    "Accrual",
    "accrual",
    "boundaries",
    "post_accruals",
]

_LIVE = (JobState.ADMITTED.value, JobState.RUNNING.value)

#: an accrual period: ``hour``, ``day`` (of the center's zone), ``off``, or N seconds
#: (``300s``: whole multiples of N since 1970, for tests and demonstrations)
PERIOD_PATTERN = r"^(hour|day|off|[1-9][0-9]{0,6}s)$"

#: an entry is dated the last microsecond of the period it charges (so that it is in
#: that period's day and month), and ``at + _TICK`` is the watermark
_TICK = timedelta(microseconds=1)

#: entries posted for one run in one pass at most; the next pass goes on from there
MAX_PER_RUN = 2_000


def boundaries(period: str, zone: tzinfo, after: datetime, through: datetime) -> list[datetime]:
    """The ends of the periods in ``(after, through]`` (UTC), at most ``MAX_PER_RUN``."""
    if period == "off" or through <= after:
        return []
    out: list[datetime] = []
    if period == "day":
        day = after.astimezone(zone).date()
        while len(out) < MAX_PER_RUN:
            day += timedelta(days=1)
            b = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
            if b > through:
                break
            if b > after:
                out.append(b)
        return out
    if period == "hour":
        start = after.astimezone(zone).replace(minute=0, second=0, microsecond=0)
        step = timedelta(hours=1)
        b = start.astimezone(UTC) + step
    else:
        match = re.fullmatch(r"([1-9][0-9]*)s", period)
        if match is None:
            raise ValueError(f"unknown accrual period {period!r}")
        n = int(match.group(1))
        step = timedelta(seconds=n)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        b = epoch + step * ((after - epoch) // step) + step
    while b <= through and len(out) < MAX_PER_RUN:
        if b > after:
            out.append(b)
        b += step
    return out


@dataclass(frozen=True, slots=True)
class _Run:
    """A running job's open hold and what its accruals have posted against it."""

    job_id: str
    started: datetime | None  # None: admitted, not started yet
    gpus: int
    hold: Any  # a ledger row: id, allocation_id, program_id, project_id, gpu_type, ...
    posted: Cumulative
    last: datetime | None  # the latest accrual's time (its watermark less a microsecond)


def _runs(session: Session, where: list[ColumnElement[bool]], *, lock: bool) -> list[_Run]:
    """The running jobs ``where`` selects that hold money, with their accruals so far."""
    query = select(orm.Job.id, orm.Job.started_at, orm.Job.gpus_per_node * orm.Job.nodes).where(
        orm.Job.state.in_(_LIVE), *where
    )
    if lock:  # in id order, so that two lockers of the same rows queue, not deadlock
        query = query.order_by(orm.Job.id).with_for_update()
    jobs = {job_id: (started, gpus) for job_id, started, gpus in session.execute(query).tuples()}
    if not jobs:
        return []
    holds: dict[str, list[Any]] = defaultdict(list)
    releases: dict[str, int] = defaultdict(int)
    accruals: dict[str, list[Any]] = defaultdict(list)
    for row in session.execute(_SELECT_ENTRIES, {"ids": list(jobs)}):
        if row.kind == "hold":
            holds[row.job_id].append(row)
        elif row.kind == "release":
            releases[row.job_id] += 1
        else:
            accruals[row.job_id].append(row)
    out = []
    for job_id, rows in holds.items():
        if len(rows) <= releases[job_id]:
            continue
        hold = rows[releases[job_id]]
        posted = Cumulative()
        last = None
        for a in accruals[job_id]:
            if a.id > hold.id:
                posted += Cumulative(a.gpu_seconds, a.list_won or 0, a.amount_won, a.public_won)
                last = a.at
        started, gpus = jobs[job_id]
        out.append(_Run(job_id, started, gpus, hold, posted, last))
    return out


class _Rater:
    """Prices, shares and terms of a batch of runs, each read once."""

    def __init__(self, session: Session, runs: list[_Run]) -> None:
        self.prices: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
        for gpu_type, since, won in session.execute(
            select(orm.Price.gpu_type, orm.Price.effective_from, orm.Price.won_per_gpu_hour)
            .where(orm.Price.gpu_type.in_(sorted({r.hold.gpu_type for r in runs})))
            .order_by(orm.Price.gpu_type, orm.Price.effective_from)
        ).tuples():
            self.prices[gpu_type].append((since, won))
        programs = {r.hold.program_id for r in runs}
        self.shares = dict(
            session.execute(
                select(orm.Program.id, orm.Program.public_share_bp).where(
                    orm.Program.id.in_(sorted(programs))
                )
            )
            .tuples()
            .all()
        )
        self.book = TermsBook(session, programs, {r.hold.project_id for r in runs})

    def price(self, gpu_type: str, at: datetime) -> int:
        """The price in force at ``at`` (as ``prices.price_at``; 0 where none was, as settle)."""
        won = 0
        for since, price in self.prices.get(gpu_type, []):
            if since > at:
                break
            won = price
        return won

    def through(self, run: _Run, at: datetime) -> tuple[Cumulative, Any]:
        """The run's usage through ``at``, rated as its settlement will rate it."""
        h = run.hold
        assert run.started is not None
        t = self.book.terms(h.program_id, self.shares[h.program_id], h.project_id, run.started)
        total = cumulative(
            run.gpus,
            run.started,
            at,
            h.gpu_seconds,
            h.amount_won,
            self.price(h.gpu_type, run.started),
            t,
        )
        return total, t


def post_accruals(
    session: Session, now: datetime, *, period: str, zone: tzinfo, lag_s: float = 0.0
) -> int:
    """Post the accruals of every running job through the period ends up to ``now -
    lag_s``; returns the entries written. ``period`` is the center's; a program's rules
    may name another (``accrual_period``), those in force when the run started."""
    runs = _runs(session, [orm.Job.started_at.is_not(None)], lock=True)
    if not runs:
        return 0
    rater = _Rater(session, runs)
    through = now - timedelta(seconds=lag_s)
    rows: list[dict[str, Any]] = []
    for run in runs:
        h = run.hold
        assert run.started is not None  # the query's own condition
        rules = rater.book.rules(h.program_id, run.started)
        own = rules.accrual_period if rules is not None else None
        after = run.started if run.last is None else max(run.started, run.last + _TICK)
        posted = run.posted
        funding = Funding(h.allocation_id, h.program_id, h.project_id)
        for b in boundaries(own or period, zone, after, through):
            total, t = rater.through(run, b)
            part = total - posted
            rows.append(charge_row(funding, "accrual", run.job_id, h.gpu_type, part, b - _TICK, t))
            posted = total
    if rows:
        session.execute(insert(LEDGER), rows)
    return len(rows)


@dataclass(frozen=True, slots=True)
class Accrual:
    """Open holds of running jobs (what is still held), and what those runs have used
    since their latest accrual (not yet in any charged figure)."""

    held_won: int
    accrued_won: int
    runs: int


def accrual(
    session: Session,
    now: datetime,
    *,
    job_id: str | None = None,
    program_id: str | None = None,
    project_id: str | None = None,
) -> Accrual:
    """The running jobs' held and accrued won, for one job, program or project (or the
    whole center when none is given)."""
    where: list[ColumnElement[bool]] = []
    if job_id is not None:
        where.append(orm.Job.id == job_id)
    if project_id is not None:
        where.append(orm.Job.project_id == project_id)
    runs = _runs(session, where, lock=False)
    if program_id is not None:
        runs = [r for r in runs if r.hold.program_id == program_id]
    if not runs:
        return Accrual(0, 0, 0)
    rater = _Rater(session, runs)
    held = accrued = 0
    for run in runs:
        held += run.hold.amount_won - run.posted.list_won
        if run.started is None or run.started > now:
            continue  # admitted, not started: nothing used yet
        total, _ = rater.through(run, now)
        accrued += (total - run.posted).won
    return Accrual(held, accrued, len(runs))


_SELECT_ENTRIES = (
    select(
        LEDGER.c.id,
        LEDGER.c.at,
        LEDGER.c.kind,
        LEDGER.c.job_id,
        LEDGER.c.allocation_id,
        LEDGER.c.program_id,
        LEDGER.c.project_id,
        LEDGER.c.gpu_type,
        LEDGER.c.gpu_seconds,
        LEDGER.c.amount_won,
        LEDGER.c.public_won,
        LEDGER.c.list_won,
    )
    .where(
        LEDGER.c.job_id.in_(bindparam("ids", expanding=True)),
        LEDGER.c.kind.in_(["hold", "release", "accrual"]),
    )
    .order_by(LEDGER.c.id)
)
