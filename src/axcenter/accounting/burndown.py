"""A program's budget burn-down (and a project's: its grants in force are its budget): won
charged per day, what remains, and the day the budget runs out at the current rate, within
a band (docs/accounting.md). From the same ledger as the
usage reports (``accounting.reports``), so the two always agree on charged won.

Days are those of a time zone (the center's, ``Settings.time_zone``; UTC by default):
the database sums charges per UTC hour, and each hour goes to its day in the zone, which
is exact for every zone whose offset is whole hours (Korea's, and nearly all others).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from axcenter.accounting.ledger import CHARGE_KINDS
from axcenter.accounting.reports import utc_text
from axcenter.store import orm

__all__ = ["RATE_WINDOW_DAYS", "Burndown", "BurndownDay", "burndown", "project_burndown"]

#: the window of the burn-down's current rate
RATE_WINDOW_DAYS = 7
#: the days whose 7-day windows give the forecast band (the fastest and slowest rates)
BAND_DAYS = 28


@dataclass(frozen=True, slots=True)
class BurndownDay:
    """Charges booked on one day (of the burn-down's zone) and the running totals at its end."""

    day: date
    charged_won: int
    public_won: int
    cumulative_charged_won: int
    cumulative_public_won: int
    remaining_won: int  # budget - cumulative charged won


@dataclass(frozen=True, slots=True)
class Burndown:
    """A program's budget against what it has paid, and when it runs out at the current rate.

    The budget caps the won the program grants (``service.programs``: grants may not
    exceed it), and grants are spent by whole charges, so the budget burns by charged won;
    the public and co-pay parts say who pays. ``rate_won_per_day`` is the won charged in the
    last ``RATE_WINDOW_DAYS`` days divided by that many days; ``forecast`` is the day (of
    ``zone``) on which the remaining budget is used up at that rate (None: the rate is zero, or the
    day is past the year 9999), or the day it was used up if that already happened.
    """

    program_id: str
    program: str
    budget_won: int
    granted_won: int
    charged_won: int
    public_won: int
    copay_won: int
    remaining_won: int
    rate_won_per_day: Decimal
    forecast: date | None
    starts_at: datetime | None
    ends_at: datetime | None
    now: datetime
    days: tuple[BurndownDay, ...]
    #: the zone whose days ``days`` and ``forecast`` are
    time_zone: str = "UTC"
    #: the forecast band: the day the budget runs out at the fastest and at the slowest
    #: rate of the 7-day windows ending on each of the last ``BAND_DAYS`` days (a window
    #: before the program's first day is rated on the days it has); None: never (at a
    #: zero rate)
    forecast_early: date | None = None
    forecast_late: date | None = None


def burndown(session: Session, program_id: str, now: datetime, zone: tzinfo = UTC) -> Burndown:
    """The burn-down of ``program_id`` up to ``now`` (charges booked at or before it), one
    day per day of ``zone`` from the program's start (or its first charge) to ``now``."""
    program = session.get(orm.Program, program_id)
    if program is None:
        raise LookupError(program_id)
    granted = session.scalar(
        select(func.coalesce(func.sum(orm.AllocationItem.won), 0))
        .join(orm.Allocation, orm.Allocation.id == orm.AllocationItem.allocation_id)
        .where(orm.Allocation.program_id == program_id)
    )
    return _burn(
        session,
        orm.LedgerEntry.program_id == program_id,
        program.id,
        program.name,
        program.budget_won,
        int(granted or 0),
        program.starts_at,
        program.ends_at,
        now,
        zone,
    )


def project_burndown(
    session: Session, project_id: str, now: datetime, zone: tzinfo = UTC
) -> Burndown | None:
    """The burn-down of a project's grants in force at ``now`` (active or suspended): their
    won granted is the budget, their charges burn it, from the first grant's start; None
    when no grant is in force."""
    a = orm.Allocation
    grants = session.scalars(
        select(a).where(
            a.project_id == project_id,
            a.status.in_(("active", "suspended")),
            a.starts_at <= now,
            a.ends_at > now,
        )
    ).all()
    project = session.get(orm.Project, project_id)
    if not grants or project is None:
        return None
    ids = [g.id for g in grants]
    granted = int(
        session.scalar(
            select(func.coalesce(func.sum(orm.AllocationItem.won), 0)).where(
                orm.AllocationItem.allocation_id.in_(ids)
            )
        )
        or 0
    )
    return _burn(
        session,
        orm.LedgerEntry.allocation_id.in_(ids),
        project.id,
        project.name,
        granted,
        granted,
        min(g.starts_at for g in grants),
        max(g.ends_at for g in grants),
        now,
        zone,
    )


def _burn(
    session: Session,
    scope: ColumnElement[bool],
    owner_id: str,
    owner: str,
    budget: int,
    granted: int,
    starts_at: datetime | None,
    ends_at: datetime | None,
    now: datetime,
    zone: tzinfo,
) -> Burndown:
    entry = orm.LedgerEntry
    charges = (scope, entry.kind.in_(CHARGE_KINDS), entry.at <= now)
    hour = utc_text(session, entry.at, "%Y-%m-%d %H")
    booked: dict[date, tuple[int, int]] = {}
    for h, won_h, public_h in session.execute(
        select(hour, func.sum(entry.amount_won), func.sum(entry.public_won))
        .where(*charges)
        .group_by(hour)
    ):
        local = datetime.strptime(str(h)[:13], "%Y-%m-%d %H").replace(tzinfo=UTC)
        d = local.astimezone(zone).date()
        won0, pub0 = booked.get(d, (0, 0))
        booked[d] = (won0 + int(won_h), pub0 + int(public_h))
    today = now.astimezone(zone).date()
    first = min(booked, default=today)
    if starts_at is not None:
        first = min(first, starts_at.astimezone(zone).date())
    days: list[BurndownDay] = []
    charged = public = 0
    crossed: date | None = None
    for n in range((today - first).days + 1):
        d = first + timedelta(days=n)
        won, pub = booked.get(d, (0, 0))
        charged, public = charged + won, public + pub
        if crossed is None and charged >= budget:
            crossed = d
        days.append(BurndownDay(d, won, pub, charged, public, budget - charged))
    recent = int(
        session.scalar(
            select(func.coalesce(func.sum(entry.amount_won), 0)).where(
                *charges, entry.at > now - timedelta(days=RATE_WINDOW_DAYS)
            )
        )
        or 0
    )
    remaining = budget - charged
    early, late = _band(days, now, remaining, zone)
    if remaining <= 0:
        early = late = crossed
    return Burndown(
        program_id=owner_id,
        program=owner,
        budget_won=budget,
        granted_won=granted,
        charged_won=charged,
        public_won=public,
        copay_won=charged - public,
        remaining_won=remaining,
        rate_won_per_day=(Decimal(recent) / RATE_WINDOW_DAYS).quantize(
            Decimal("0.01"), ROUND_HALF_UP
        ),
        forecast=crossed if remaining <= 0 else _forecast(now, remaining, recent, zone),
        starts_at=starts_at,
        ends_at=ends_at,
        now=now,
        days=tuple(days),
        time_zone=str(zone),
        forecast_early=early,
        forecast_late=late,
    )


def _band(
    days: list[BurndownDay], now: datetime, remaining: int, zone: tzinfo
) -> tuple[date | None, date | None]:
    """(early, late): the forecast at the fastest and at the slowest 7-day rate of the
    last ``BAND_DAYS`` days; a window is rated on the days of it the program has had."""
    rates: list[tuple[int, int]] = []  # (won, days) of each window
    for i in range(max(0, len(days) - BAND_DAYS), len(days)):
        window = days[max(0, i - RATE_WINDOW_DAYS + 1) : i + 1]
        rates.append((sum(d.charged_won for d in window), len(window)))
    if not rates:
        return None, None
    fastest = max(rates, key=lambda r: Fraction(*r))  # won per day, exactly
    slowest = min(rates, key=lambda r: Fraction(*r))
    return (
        _forecast(now, remaining, fastest[0], zone, fastest[1]),
        _forecast(now, remaining, slowest[0], zone, slowest[1]),
    )


def _forecast(
    now: datetime, remaining: int, recent: int, zone: tzinfo, window: int = RATE_WINDOW_DAYS
) -> date | None:
    """The day (of ``zone``) ``remaining`` won are spent at ``recent`` won per ``window``
    days (exact: seconds are rounded up, so the day is never early); None at a zero rate,
    or when the day lies beyond what a date can hold (a huge budget at a trickle)."""
    if recent <= 0:
        return None
    seconds = -(-remaining * window * 86_400 // recent)
    if seconds // 86_400 >= date.max.toordinal() - now.date().toordinal():
        return None
    return (now + timedelta(seconds=seconds)).astimezone(zone).date()
