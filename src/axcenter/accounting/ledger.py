"""Holds and charges: how a job's run is paid for, so that concurrent jobs cannot overspend.

At admission the worst case of the run (GPUs x (time limit + grace), at the price in
force) is *held* on the project's current allocation, inside the transaction that admits
the job; the hold is refused if the allocation's GPU-hours or won would go below zero.
When the run ends (finished, failed, cancelled, timed out, preempted or lost) the hold is
*released* and the measured usage is *charged*, split into the program's public share and
the company's co-pay. A requeued job is held again at its next admission: every run is
charged for what it used, once.

A long run is also charged as it runs (``accrual``): at each period's end an ``accrual``
entry charges its usage since the previous one and shrinks its hold by as much at list
price. Every figure is computed on the run's usage *so far* (``cumulative``) and an entry
is the difference from what was posted before, so the accruals and the final charge of a
run add up to exactly the single charge it would have had (docs/accounting.md, "Accrual").

The control loop admits and ends jobs in batches: ``HoldBook`` makes a batch's holds and
``settle_jobs`` its settlements with a few statements per batch, to the won what
``check_hold``/``record_hold`` and ``settle_job`` make one job at a time.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, insert, select
from sqlalchemy.orm import Session

from axcenter.accounting.prices import price_at
from axcenter.accounting.terms import TermsBook
from axcenter.model.money import gpu_seconds, rate, split
from axcenter.model.terms import Terms, charge
from axcenter.store import orm

__all__ = [
    "CHARGE_KINDS",
    "Balance",
    "Cumulative",
    "Funding",
    "HoldBook",
    "InsufficientFunds",
    "balance",
    "balances",
    "charge_row",
    "check_hold",
    "cumulative",
    "current_allocation",
    "hold",
    "record_hold",
    "settle",
    "settle_job",
    "settle_jobs",
]

LEDGER = cast(Table, orm.LedgerEntry.__table__)

#: the ledger kinds that charge: a run's accruals and its final charge (one per run)
CHARGE_KINDS = ("charge", "accrual")


@dataclass(frozen=True, slots=True)
class Cumulative:
    """A run's usage through a moment, rated: GPU-seconds, won at list price, and the won
    and public part under its terms (zero for what has been posted: the sums so far)."""

    gpu_seconds: int = 0
    list_won: int = 0
    won: int = 0
    public_won: int = 0

    def __sub__(self, other: Cumulative) -> Cumulative:
        return Cumulative(
            self.gpu_seconds - other.gpu_seconds,
            self.list_won - other.list_won,
            self.won - other.won,
            self.public_won - other.public_won,
        )

    def __add__(self, other: Cumulative) -> Cumulative:
        return Cumulative(
            self.gpu_seconds + other.gpu_seconds,
            self.list_won + other.list_won,
            self.won + other.won,
            self.public_won + other.public_won,
        )


def cumulative(
    gpus: int,
    started: datetime,
    through: datetime,
    hold_gpu_seconds: int,
    hold_won: int,
    price: int,
    t: Terms,
) -> Cumulative:
    """What a run of ``gpus`` started at ``started`` has used through ``through``: whole
    GPU-seconds (capped by its hold), rated at ``price`` (capped by the hold's won) and
    charged under ``t``. Rounded once, on the total: never per period."""
    used = min(gpu_seconds(gpus, max(0.0, (through - started).total_seconds())), hold_gpu_seconds)
    listed = min(rate(used, price), hold_won)
    won, public, _ = charge(listed, t)
    return Cumulative(used, listed, won, public)


class InsufficientFunds(Exception):
    """The allocation cannot hold this run."""


@dataclass(frozen=True, slots=True)
class Balance:
    """An allocation's envelopes: granted, charged and held (won and GPU-seconds)."""

    granted_won: int
    charged_won: int
    held_won: int
    granted_gpu_seconds: dict[str, int]
    used_gpu_seconds: dict[str, int]  # charged + held

    @property
    def won_left(self) -> int:
        return self.granted_won - self.charged_won - self.held_won

    def gpu_seconds_left(self) -> dict[str, int]:
        return {
            t: granted - self.used_gpu_seconds.get(t, 0)
            for t, granted in self.granted_gpu_seconds.items()
        }


def balance(session: Session, allocation_id: str) -> Balance:
    """What ``allocation_id`` granted, has charged and holds (all zero if it is unknown)."""
    return balances(session, [allocation_id])[allocation_id]


def balances(session: Session, allocation_ids: Iterable[str]) -> dict[str, Balance]:
    """``balance`` of each of ``allocation_ids``, in two queries.

    The ledger's sums come from ``allocation_balances`` (kept by a trigger on every
    ledger insert, migration 0007): one row per allocation and GPU type, so the cost does
    not grow with the ledger.
    """
    ids = list(dict.fromkeys(allocation_ids))
    granted_won = dict.fromkeys(ids, 0)
    granted_secs: dict[str, dict[str, int]] = {i: {} for i in ids}
    charged = dict.fromkeys(ids, 0)
    held = dict.fromkeys(ids, 0)
    used: dict[str, dict[str, int]] = {i: {} for i in ids}
    if ids:
        item = orm.AllocationItem
        for alloc_id, gpu_type, secs, won in session.execute(
            select(item.allocation_id, item.gpu_type, item.gpu_seconds, item.won).where(
                item.allocation_id.in_(ids)
            )
        ):
            granted_won[alloc_id] += int(won)
            granted_secs[alloc_id][gpu_type] = int(secs)
        sums = orm.AllocationBalance
        for alloc_id, gpu_type, held_won, charged_won, held_secs, charged_secs in session.execute(
            select(
                sums.allocation_id,
                sums.gpu_type,
                sums.held_won,
                sums.charged_won,
                sums.held_gpu_seconds,
                sums.charged_gpu_seconds,
            ).where(sums.allocation_id.in_(ids))
        ):
            charged[alloc_id] += int(charged_won)
            held[alloc_id] += int(held_won)
            used[alloc_id][gpu_type] = int(held_secs) + int(charged_secs)
    return {
        i: Balance(
            granted_won=granted_won[i],
            charged_won=charged[i],
            held_won=held[i],
            granted_gpu_seconds=granted_secs[i],
            used_gpu_seconds=used[i],
        )
        for i in ids
    }


def current_allocation(
    session: Session, project_id: str, gpu_type: str | None, at: datetime
) -> orm.Allocation | None:
    """The allocation a project's job started at ``at`` is charged to: the active one
    whose window holds ``at`` (and that grants ``gpu_type``), ending first."""
    query = select(orm.Allocation).where(
        orm.Allocation.project_id == project_id,
        orm.Allocation.status == "active",
        orm.Allocation.starts_at <= at,
        orm.Allocation.ends_at > at,
    )
    if gpu_type is not None:
        query = query.where(
            orm.Allocation.id.in_(
                select(orm.AllocationItem.allocation_id).where(
                    orm.AllocationItem.gpu_type == gpu_type
                )
            )
        )
    return session.scalars(
        query.order_by(orm.Allocation.ends_at, orm.Allocation.id).limit(1)
    ).first()


def hold(
    session: Session,
    allocation: orm.Allocation,
    job_id: str,
    gpu_type: str,
    gpus: int,
    seconds: int,
    at: datetime,
) -> int:
    """Hold ``gpus`` x ``seconds`` of ``gpu_type`` for ``job_id``; returns the won held.

    Raises ``InsufficientFunds`` (nothing written) if it does not fit.
    """
    won, secs = check_hold(session, allocation, gpu_type, gpus, seconds, at)
    record_hold(session, allocation, job_id, gpu_type, secs, won, at)
    return won


def record_hold(
    session: Session,
    allocation: orm.Allocation,
    job_id: str,
    gpu_type: str,
    gpu_secs: int,
    won: int,
    at: datetime,
) -> None:
    """Write a hold ``check_hold`` has just allowed in this transaction."""
    session.add(_entry(allocation, "hold", job_id, gpu_type, gpu_secs, won, at, public_bp=None))
    session.flush()  # the next hold in this transaction must see this one


def check_hold(
    session: Session,
    allocation: orm.Allocation,
    gpu_type: str,
    gpus: int,
    seconds: int,
    at: datetime,
) -> tuple[int, int]:
    """(won, GPU-seconds) a hold would take; ``InsufficientFunds`` if it does not fit."""
    price = price_at(session, gpu_type, at)
    if price is None:
        raise InsufficientFunds(f"no price for {gpu_type} in the price book")
    secs = gpus * seconds
    won = rate(secs, price)
    left = balance(session, allocation.id)
    if won > left.won_left or secs > left.gpu_seconds_left().get(gpu_type, 0):
        raise InsufficientFunds(
            f"allocation {allocation.id} cannot hold {won} won / {secs} GPU-seconds"
        )
    return won, secs


def settle(
    session: Session,
    job_id: str,
    gpus: int,
    started_at: datetime,
    ended_at: datetime,
    at: datetime,
) -> int | None:
    """Release the job's open hold and charge what the run used; returns the charge.

    None when the job has no open hold (an unfunded run): nothing is charged.
    """
    open_hold = _open_hold(session, job_id)
    if open_hold is None:
        return None
    allocation = session.get(orm.Allocation, open_hold.allocation_id)
    assert allocation is not None
    program = session.get(orm.Program, allocation.program_id)
    assert program is not None
    book = TermsBook(session, [program.id], [allocation.project_id])
    t = book.terms(program.id, program.public_share_bp, allocation.project_id, started_at)
    price = price_at(session, open_hold.gpu_type, started_at) or 0
    total = cumulative(
        gpus, started_at, ended_at, open_hold.gpu_seconds, open_hold.amount_won, price, t
    )
    posted = _posted(
        session.execute(_SELECT_ACCRUED, {"ids": [job_id], "after": open_hold.id}).tuples()
    ).get(job_id, Cumulative())
    funding = Funding(allocation.id, allocation.program_id, allocation.project_id)
    rows = [
        _row(
            funding,
            "release",
            job_id,
            open_hold.gpu_type,
            open_hold.gpu_seconds - posted.gpu_seconds,
            open_hold.amount_won - posted.list_won,
            at,
            None,
        ),
        charge_row(funding, "charge", job_id, open_hold.gpu_type, total - posted, at, t),
    ]
    session.execute(_INSERT_LEDGER, rows)
    return int(rows[1]["amount_won"])


def settle_job(session: Session, job_id: str, at: datetime) -> int | None:
    """Settle the run of ``job_id`` that ends at ``at`` (started per its row)."""
    job = session.get(orm.Job, job_id)
    if job is None:
        return None
    started = job.started_at if job.started_at is not None and job.started_at <= at else at
    return settle(session, job_id, job.gpus_per_node * job.nodes, started, at, at)


def _open_hold(session: Session, job_id: str) -> orm.LedgerEntry | None:
    holds = session.scalars(
        select(orm.LedgerEntry)
        .where(orm.LedgerEntry.job_id == job_id, orm.LedgerEntry.kind == "hold")
        .order_by(orm.LedgerEntry.id)
    ).all()
    releases = (
        session.scalar(
            select(func.count()).where(
                and_(orm.LedgerEntry.job_id == job_id, orm.LedgerEntry.kind == "release")
            )
        )
        or 0
    )
    return holds[releases] if len(holds) > releases else None


def _entry(
    allocation: orm.Allocation,
    kind: str,
    job_id: str | None,
    gpu_type: str,
    secs: int,
    won: int,
    at: datetime,
    *,
    public_bp: int | None,
) -> orm.LedgerEntry:
    public, copay = split(won, public_bp) if public_bp is not None else (0, 0)
    return orm.LedgerEntry(
        at=at,
        kind=kind,
        allocation_id=allocation.id,
        program_id=allocation.program_id,
        project_id=allocation.project_id,
        job_id=job_id,
        gpu_type=gpu_type,
        gpu_seconds=secs,
        amount_won=won,
        public_won=public,
        copay_won=copay,
    )


# -- batches (the control loop) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Funding:
    """The allocation a run is held on: the ledger columns it fills."""

    id: str
    program_id: str
    project_id: str


class HoldBook:
    """The holds of a batch of admissions at ``at``, in one transaction.

    ``allocation`` and ``hold`` answer as ``current_allocation`` and ``check_hold``
    followed by ``record_hold`` would for each admission in turn: each allocation, balance
    and price is read once, and what the book's earlier holds took is subtracted in
    memory (as the ``allocation_balances`` trigger adds it in the store). ``write``
    inserts the holds, in the order they were made, with one statement.
    """

    def __init__(self, session: Session, at: datetime) -> None:
        self.session = session
        self.at = at
        self._allocations: dict[tuple[str, str | None], Funding | None] = {}
        self._prices: dict[str, int | None] = {}
        #: allocation id -> [won left, {GPU type: GPU-seconds left}]
        self._left: dict[str, tuple[list[int], dict[str, int]]] = {}
        self._rows: list[dict[str, Any]] = []

    def allocation(self, project_id: str, gpu_type: str | None) -> Funding | None:
        key = (project_id, gpu_type)
        if key not in self._allocations:
            found = current_allocation(self.session, project_id, gpu_type, self.at)
            self._allocations[key] = (
                None if found is None else Funding(found.id, found.program_id, found.project_id)
            )
        return self._allocations[key]

    def hold(self, allocation: Funding, job_id: str, gpu_type: str, gpus: int, seconds: int) -> int:
        """Hold ``gpus`` x ``seconds`` of ``gpu_type`` for ``job_id``; returns the won
        held. Raises ``InsufficientFunds`` (nothing held) if it does not fit."""
        if gpu_type not in self._prices:
            self._prices[gpu_type] = price_at(self.session, gpu_type, self.at)
        price = self._prices[gpu_type]
        if price is None:
            raise InsufficientFunds(f"no price for {gpu_type} in the price book")
        secs = gpus * seconds
        won = rate(secs, price)
        left = self._left.get(allocation.id)
        if left is None:
            b = balance(self.session, allocation.id)
            left = self._left[allocation.id] = ([b.won_left], b.gpu_seconds_left())
        won_left, secs_left = left
        if won > won_left[0] or secs > secs_left.get(gpu_type, 0):
            raise InsufficientFunds(
                f"allocation {allocation.id} cannot hold {won} won / {secs} GPU-seconds"
            )
        won_left[0] -= won
        if gpu_type in secs_left:
            secs_left[gpu_type] -= secs
        self._rows.append(_row(allocation, "hold", job_id, gpu_type, secs, won, self.at, None))
        return won

    def write(self) -> None:
        if self._rows:
            self.session.execute(_INSERT_LEDGER, self._rows)
            self._rows = []


def settle_jobs(session: Session, ends: Sequence[tuple[str, datetime]]) -> dict[str, int | None]:
    """``settle_job`` for each ``(job_id, ended at)`` in turn, in a few statements:
    returns each job's charge (None: no open hold, nothing charged)."""
    ids = list(dict.fromkeys(job_id for job_id, _ in ends))
    if not ids:
        return {}
    jobs = {
        job_id: (started, gpus)
        for job_id, started, gpus in session.execute(_SELECT_RUNS, {"ids": ids}).tuples()
    }
    holds: dict[str, list[Any]] = {}
    releases: dict[str, int] = {}
    for row in session.execute(_SELECT_HOLDS, {"ids": ids}):
        if row.kind == "hold":
            holds.setdefault(row.job_id, []).append(row)
        else:
            releases[row.job_id] = releases.get(row.job_id, 0) + 1
    out: dict[str, int | None] = {}
    rows: list[dict[str, Any]] = []
    todo: list[tuple[str, datetime, datetime, int, Any]] = []
    for job_id, at in ends:
        run = jobs.get(job_id)
        if run is None:
            out[job_id] = None
            continue
        taken = releases.get(job_id, 0)
        found = holds.get(job_id, [])
        if len(found) <= taken:
            out[job_id] = None
            continue
        releases[job_id] = taken + 1  # a second end of the same job settles its next hold
        started = run[0] if run[0] is not None and run[0] <= at else at
        todo.append((job_id, started, at, run[1], found[taken]))
    if not todo:
        return out
    allocations = {
        a.id: a
        for a in session.execute(
            _SELECT_ALLOCATIONS, {"ids": list({h.allocation_id for *_, h in todo})}
        )
    }
    book = _price_book(session, {h.gpu_type for *_, h in todo})
    terms_book = TermsBook(
        session,
        {a.program_id for a in allocations.values()},
        {a.project_id for a in allocations.values()},
    )
    # the accruals of each run's hold: those after it (a job's earlier holds are released)
    accrued = _posted(
        session.execute(
            _SELECT_ACCRUED,
            {"ids": [job_id for job_id, *_ in todo], "after": min(h.id for *_, h in todo)},
        ).tuples(),
        {job_id: h.id for job_id, *_, h in todo},
    )
    for job_id, started, at, gpus, h in todo:
        a = allocations[h.allocation_id]
        funding = Funding(a.id, a.program_id, a.project_id)
        t = terms_book.terms(a.program_id, a.public_share_bp, a.project_id, started)
        price = _price_in(book.get(h.gpu_type), started) or 0
        total = cumulative(gpus, started, at, h.gpu_seconds, h.amount_won, price, t)
        posted = accrued.get(job_id, Cumulative())
        rows.append(
            _row(
                funding,
                "release",
                job_id,
                h.gpu_type,
                h.gpu_seconds - posted.gpu_seconds,
                h.amount_won - posted.list_won,
                at,
                None,
            )
        )
        charged = charge_row(funding, "charge", job_id, h.gpu_type, total - posted, at, t)
        rows.append(charged)
        out[job_id] = int(charged["amount_won"])
    session.execute(_INSERT_LEDGER, rows)
    return out


def _posted(
    rows: Iterable[tuple[Any, ...]], after: dict[str, int] | None = None
) -> dict[str, Cumulative]:
    """Each job's accruals (``_SELECT_ACCRUED`` rows) summed, counting only those after
    the ledger id ``after[job]`` where given."""
    sums: dict[str, Cumulative] = {}
    for entry_id, job_id, secs, list_won, won, public in rows:
        if after is not None and entry_id <= after.get(job_id, entry_id):
            continue
        sums[job_id] = sums.get(job_id, Cumulative()) + Cumulative(
            int(secs), int(list_won or 0), int(won), int(public)
        )
    return sums


def _row(
    allocation: Funding,
    kind: str,
    job_id: str,
    gpu_type: str,
    secs: int,
    won: int,
    at: datetime,
    public_bp: int | None,
) -> dict[str, Any]:
    """The ledger row ``_entry`` makes, as parameters of a Core insert."""
    public, copay = split(won, public_bp) if public_bp is not None else (0, 0)
    return {
        "at": at,
        "kind": kind,
        "allocation_id": allocation.id,
        "program_id": allocation.program_id,
        "project_id": allocation.project_id,
        "job_id": job_id,
        "gpu_type": gpu_type,
        "gpu_seconds": secs,
        "amount_won": won,
        "public_won": public,
        "copay_won": copay,
        "list_won": None,
        "terms": None,
    }


def charge_row(
    allocation: Funding,
    kind: str,
    job_id: str,
    gpu_type: str,
    part: Cumulative,
    at: datetime,
    t: Terms,
) -> dict[str, Any]:
    """A charge or accrual entry of ``part`` of a run under terms ``t``: its GPU-seconds,
    discounted won, public and company parts, and the list price and terms it was booked
    under."""
    row = _row(allocation, kind, job_id, gpu_type, part.gpu_seconds, part.won, at, None)
    row.update(
        public_won=part.public_won,
        copay_won=part.won - part.public_won,
        list_won=part.list_won,
        terms=t.label or None,
    )
    return row


def _price_book(
    session: Session, gpu_types: Iterable[str]
) -> dict[str, tuple[list[datetime], list[int]]]:
    """Each GPU type's prices, by effective date (ascending)."""
    book: dict[str, tuple[list[datetime], list[int]]] = {}
    for gpu_type, effective, won in session.execute(
        _SELECT_PRICES, {"types": sorted(gpu_types)}
    ).tuples():
        dates, prices = book.setdefault(gpu_type, ([], []))
        dates.append(effective)
        prices.append(won)
    return book


def _price_in(book: tuple[list[datetime], list[int]] | None, at: datetime) -> int | None:
    """``price_at`` from a ``_price_book`` entry: the latest effective at ``at``."""
    if book is None:
        return None
    dates, prices = book
    i = bisect.bisect_right(dates, at)
    return prices[i - 1] if i else None


# Statements built once (their compiled form is cached without a cache key per call).
_INSERT_LEDGER = insert(LEDGER)
_SELECT_RUNS = select(orm.Job.id, orm.Job.started_at, orm.Job.gpus_per_node * orm.Job.nodes).where(
    orm.Job.id.in_(bindparam("ids", expanding=True))
)
_SELECT_HOLDS = (
    select(
        LEDGER.c.id,
        LEDGER.c.kind,
        LEDGER.c.job_id,
        LEDGER.c.allocation_id,
        LEDGER.c.gpu_type,
        LEDGER.c.gpu_seconds,
        LEDGER.c.amount_won,
    )
    .where(
        LEDGER.c.job_id.in_(bindparam("ids", expanding=True)),
        LEDGER.c.kind.in_(["hold", "release"]),
    )
    .order_by(LEDGER.c.id)
)
#: accrual entries of jobs after a ledger id (``after``: the earliest open hold's)
_SELECT_ACCRUED = (
    select(
        LEDGER.c.id,
        LEDGER.c.job_id,
        LEDGER.c.gpu_seconds,
        LEDGER.c.list_won,
        LEDGER.c.amount_won,
        LEDGER.c.public_won,
    )
    .where(
        LEDGER.c.job_id.in_(bindparam("ids", expanding=True)),
        LEDGER.c.kind == "accrual",
        LEDGER.c.id > bindparam("after"),
    )
    .order_by(LEDGER.c.id)
)
_SELECT_ALLOCATIONS = (
    select(
        orm.Allocation.id,
        orm.Allocation.program_id,
        orm.Allocation.project_id,
        orm.Program.public_share_bp,
    )
    .join(orm.Program, orm.Program.id == orm.Allocation.program_id)
    .where(orm.Allocation.id.in_(bindparam("ids", expanding=True)))
)
_SELECT_PRICES = (
    select(orm.Price.gpu_type, orm.Price.effective_from, orm.Price.won_per_gpu_hour)
    .where(orm.Price.gpu_type.in_(bindparam("types", expanding=True)))
    .order_by(orm.Price.gpu_type, orm.Price.effective_from)
)
