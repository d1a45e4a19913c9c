"""Money as it accrues: what running jobs have used so far, in won.

A run is charged when it ends (``ledger.settle``); until then its allocation holds the
run's worst case. Pages that show charged won would lag reality by every running job, so
they show this figure beside it: for each open hold of a job still running, its usage up
to ``now`` rated exactly as ``settle`` will rate it (GPUs x elapsed seconds at the price
in force when the run started, capped by the hold, discounted by the program's terms in
force then), i.e. what it would be charged if it ended now. Only running jobs' ledger
rows are read, so the cost follows what runs now, not the center's history.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from axcenter.accounting.terms import TermsBook
from axcenter.model.jobs import JobState
from axcenter.model.money import gpu_seconds, rate
from axcenter.model.terms import charge
from axcenter.store import orm

__all__ = ["Accrual", "accrual"]

_LIVE = (JobState.ADMITTED.value, JobState.RUNNING.value)


@dataclass(frozen=True, slots=True)
class Accrual:
    """Open holds of running jobs, and what those runs have used so far."""

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
    """The running jobs' open holds and accrued won, for one job, program or project (or
    the whole center when none is given)."""
    entry = orm.LedgerEntry
    where: list[ColumnElement[bool]] = [
        entry.kind.in_(("hold", "release")),
        entry.job_id.in_(select(orm.Job.id).where(orm.Job.state.in_(_LIVE))),
    ]
    if job_id is not None:
        where.append(entry.job_id == job_id)
    if program_id is not None:
        where.append(entry.program_id == program_id)
    if project_id is not None:
        where.append(entry.project_id == project_id)
    holds: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    releases: dict[str, int] = defaultdict(int)
    payers: dict[str, tuple[str, str]] = {}
    for job, kind, gpu_type, secs, won, program, project in session.execute(
        select(
            entry.job_id,
            entry.kind,
            entry.gpu_type,
            entry.gpu_seconds,
            entry.amount_won,
            entry.program_id,
            entry.project_id,
        )
        .where(*where)
        .order_by(entry.id)
    ).tuples():
        if job is None:
            continue
        if kind == "hold":
            holds[job].append((gpu_type, secs, won))
            payers[job] = (program, project)
        else:
            releases[job] += 1
    open_holds = {
        job: rows[releases[job]] for job, rows in holds.items() if len(rows) > releases[job]
    }
    if not open_holds:
        return Accrual(0, 0, 0)
    runs = {
        job: (started, gpus)
        for job, started, gpus in session.execute(
            select(orm.Job.id, orm.Job.started_at, orm.Job.gpus_per_node * orm.Job.nodes).where(
                orm.Job.id.in_(list(open_holds))
            )
        ).tuples()
    }
    prices = _price_book(session, {gpu_type for gpu_type, _, _ in open_holds.values()})
    programs = {payers[job][0] for job in open_holds}
    shares = dict(
        session.execute(
            select(orm.Program.id, orm.Program.public_share_bp).where(
                orm.Program.id.in_(sorted(programs))
            )
        )
        .tuples()
        .all()
    )
    book = TermsBook(session, programs, {payers[job][1] for job in open_holds})
    held = accrued = 0
    for job, (gpu_type, hold_secs, hold_won) in open_holds.items():
        held += hold_won
        started, gpus = runs.get(job, (None, 0))
        if started is None or started > now:
            continue  # admitted, not started: nothing used yet
        used = min(gpu_seconds(gpus, (now - started).total_seconds()), hold_secs)
        listed = min(rate(used, _price(prices.get(gpu_type, []), started)), hold_won)
        program, project = payers[job]
        accrued += charge(listed, book.terms(program, shares[program], project, started))[0]
    return Accrual(held, accrued, len(open_holds))


def _price_book(session: Session, types: set[str]) -> dict[str, list[tuple[datetime, int]]]:
    book: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for gpu_type, since, won in session.execute(
        select(orm.Price.gpu_type, orm.Price.effective_from, orm.Price.won_per_gpu_hour)
        .where(orm.Price.gpu_type.in_(sorted(types)))
        .order_by(orm.Price.gpu_type, orm.Price.effective_from)
    ).tuples():
        book[gpu_type].append((since, won))
    return book


def _price(history: list[tuple[datetime, int]], at: datetime) -> int:
    """The price in force at ``at`` (as ``prices.price_at``; 0 where none was, as settle)."""
    won = 0
    for since, price in history:
        if since > at:
            break
        won = price
    return won
