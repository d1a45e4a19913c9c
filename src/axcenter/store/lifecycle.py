"""Job writes in batches, for the control loop: many jobs, a few statements.

``move_jobs`` (``movable``, then ``write_moves``) is ``store.jobs.transition`` for many
jobs at once, under the same rules: a job moves only from one of the given states (and
only along a legal transition), its row and its event are written in the same
transaction, and a job that has moved on is left as it is (a stale decision). Instead of
three statements per job it runs three per batch: one select of the current states, one
executemany update guarded by those states, one insert of the events. On PostgreSQL the
select locks the rows it returns, so that a concurrent writer (the API cancelling a
pending job) waits for this transaction and the guarded updates cannot miss; SQLite
writers are serialised by ``Store.write`` already.

``take_leases_many`` and ``release_leases_many`` do the same for device leases.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from axcenter.model.cluster import Allocation
from axcenter.model.jobs import JobState
from axcenter.store.jobs import (
    INSERT_EVENTS,
    INSERT_LEASES,
    JOBS,
    LEASES,
    SHARED_EXPRESSIONS,
    allowed,
    lease_rows,
    update_setting,
)

__all__ = [
    "Move",
    "movable",
    "move_jobs",
    "release_leases_many",
    "take_leases_many",
    "write_moves",
]

#: ids per statement: well under SQLite's limit on bound parameters
CHUNK = 500


@dataclass(frozen=True, slots=True)
class Move:
    """One job's transition: when, why, and the columns it sets besides state and reason
    (a value, or ``store.jobs.NEXT_ATTEMPT`` for ``attempts``)."""

    job_id: str
    at: datetime
    reason: str
    values: Mapping[str, Any] = field(default_factory=dict)


def move_jobs(
    session: Session, moves: Sequence[Move], from_states: Iterable[JobState], to_state: JobState
) -> dict[str, JobState]:
    """Move each job of ``moves`` that is in one of ``from_states`` to ``to_state``.

    Returns the state each moved job left, in the order of ``moves``; a job in none of
    ``from_states`` (or unknown) is not in it and nothing is written for it. A job named
    twice is moved once, by its first move.
    """
    current = movable(session, [m.job_id for m in moves], from_states, to_state)
    return write_moves(session, moves, current, to_state)


def movable(
    session: Session, job_ids: Sequence[str], from_states: Iterable[JobState], to_state: JobState
) -> dict[str, JobState]:
    """The jobs of ``job_ids`` that may move to ``to_state`` now: in one of
    ``from_states``, by a legal transition. On PostgreSQL their rows stay locked until
    the transaction ends, so ``write_moves`` finds them as they were read."""
    legal = [s.value for s in from_states if allowed(s, to_state)]
    current: dict[str, JobState] = {}
    if not legal:
        return current
    for chunk in _chunks(list(dict.fromkeys(job_ids))):
        for job_id, state in session.execute(
            _SELECT_STATES, {"ids": chunk, "states": legal}
        ).tuples():
            current[job_id] = JobState(state)
    return current


def write_moves(
    session: Session, moves: Sequence[Move], current: Mapping[str, JobState], to_state: JobState
) -> dict[str, JobState]:
    """Write the moves of the jobs in ``current`` (what ``movable`` returned in this
    transaction); the others are skipped. Returns the state each moved job left."""
    left: dict[str, JobState] = {}
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[dict[str, Any]]] = {}
    events: list[dict[str, Any]] = []
    for m in moves:
        state = current.get(m.job_id)
        if state is None or m.job_id in left:
            continue
        left[m.job_id] = state
        plain = {k: v for k, v in m.values.items() if k not in SHARED_EXPRESSIONS}
        shared = tuple(sorted(k for k in m.values if k in SHARED_EXPRESSIONS))
        for k in shared:
            if m.values[k] is not SHARED_EXPRESSIONS[k]:
                raise ValueError(f"{k} may only be set to its shared expression")
        params = {"b_id": m.job_id, "b_current": state.value, "state": to_state.value}
        params["reason"] = m.reason
        params.update(plain)
        groups.setdefault((tuple(sorted(plain)), shared), []).append(params)
        events.append(
            {
                "job_id": m.job_id,
                "at": m.at,
                "from_state": state.value,
                "to_state": to_state.value,
                "reason": m.reason,
            }
        )
    for (columns, shared), rows in groups.items():
        done = session.execute(update_setting(("reason", "state", *columns), shared), rows)
        missed = len(rows) - done.rowcount  # type: ignore[attr-defined]
        if missed:
            # the rows were read in this transaction (and locked on PostgreSQL): nothing
            # else may have moved them; fail the transaction rather than half-apply it
            raise RuntimeError(f"{missed} job(s) moved under a batch transition")
    if events:
        session.execute(INSERT_EVENTS, events)
    return left


def take_leases_many(
    session: Session, placements: Iterable[tuple[str, Sequence[Allocation]]]
) -> None:
    """Record the devices each ``(job_id, placement)`` holds, in one statement; fails
    (IntegrityError) if any is held already."""
    rows = [row for job_id, placement in placements for row in lease_rows(job_id, placement)]
    if rows:
        session.execute(INSERT_LEASES, rows)


def release_leases_many(session: Session, job_ids: Sequence[str]) -> None:
    for chunk in _chunks(list(dict.fromkeys(job_ids))):
        session.execute(_DELETE_LEASES, {"ids": chunk})


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i : i + CHUNK]


# Statements built once (their compiled form is cached without a cache key per call).
_SELECT_STATES = (
    select(JOBS.c.id, JOBS.c.state)
    .where(
        JOBS.c.id.in_(bindparam("ids", expanding=True)),
        JOBS.c.state.in_(bindparam("states", expanding=True)),
    )
    .order_by(JOBS.c.id)
    .with_for_update()  # PostgreSQL; SQLite renders nothing (its writers are serialised)
)
_DELETE_LEASES = delete(LEASES).where(LEASES.c.job_id.in_(bindparam("ids", expanding=True)))
