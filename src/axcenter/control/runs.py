"""Record what an engine reported about runs: each start and each end exactly once.

Used by the control loop for the events of each cycle and by reconcile for what the
engine found after a restart, so both apply the same rules:

- A run is running, and charged, from the start the engine reports. An end that arrives
  before its start was recorded carries the start, and both are written.
- A run that never started costs nothing: a failed launch fails the job, a lost one is
  requeued.
- Settlement and the move to the end state happen only for jobs that are, in this
  transaction (rows locked on PostgreSQL), in the state the end is recorded from: a
  duplicate end, or one racing a cancel, charges nothing twice.
- Preempted and lost runs go back to pending with their history kept (``requeue``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import and_, bindparam, insert, select, update
from sqlalchemy.orm import Session

from axcenter.accounting.ledger import settle_job, settle_jobs
from axcenter.executors.base import Outcome, RunEnded, RunStarted
from axcenter.model.jobs import JobState
from axcenter.store import orm
from axcenter.store.jobs import JOBS, release_leases, transition
from axcenter.store.lifecycle import Move, movable, move_jobs, release_leases_many, write_moves

__all__ = ["End", "Recorded", "end_runs", "job_of", "record_runs", "requeue"]

_TERMINAL = {
    Outcome.SUCCEEDED: JobState.SUCCEEDED,
    Outcome.FAILED: JobState.FAILED,
    Outcome.CANCELLED: JobState.CANCELLED,
    Outcome.TIMED_OUT: JobState.TIMED_OUT,
}
#: a terminal end is recorded from these (a run that never started ends from admitted)
_RUN_STATES = (JobState.RUNNING, JobState.ADMITTED)


def job_of(run_id: str) -> str:
    return run_id.rpartition(".")[0]


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass(slots=True)
class Recorded:
    ended: set[str] = field(default_factory=set)  # jobs that ended for good
    requeued: set[str] = field(default_factory=set)  # jobs back to pending


@dataclass(frozen=True, slots=True)
class End:
    """A run that ends for good: its job, when, in which state, why, and the columns set."""

    job_id: str
    at: datetime
    state: JobState
    reason: str
    values: Mapping[str, object]


def record_runs(
    session: Session,
    events: Iterable[RunStarted | RunEnded],
    refs: Mapping[str, str],
    preempt_reasons: Mapping[str, str],
) -> Recorded:
    """Write the starts and ends of the jobs' current runs (the caller filtered out the
    others) and the references of runs the engine accepted (``refs``: run id -> ref)."""
    starts: dict[str, RunStarted] = {}
    ends: dict[str, RunEnded] = {}
    for event in events:
        if isinstance(event, RunEnded):
            ends.setdefault(job_of(event.run_id), event)
        else:
            starts.setdefault(job_of(event.run_id), event)
    moves = [
        Move(
            job_id,
            _utc(e.started_at),
            f"started (devices {e.devices})" if e.devices else "started",
            {"started_at": _utc(e.started_at), "engine_ref": e.ref or None},
        )
        for job_id, e in starts.items()
    ]
    moves += [
        Move(
            job_id,
            _utc(e.started_at),
            "started",
            {"started_at": _utc(e.started_at), "engine_ref": e.ref or None},
        )
        for job_id, e in ends.items()
        if e.started_at is not None and job_id not in starts
    ]
    move_jobs(session, moves, [JobState.ADMITTED], JobState.RUNNING)
    queued = [
        {"b_id": job_of(run_id), "ref": ref}
        for run_id, ref in refs.items()
        if job_of(run_id) not in starts and job_of(run_id) not in ends
    ]
    if queued:
        session.execute(_SET_REF, queued)
    done = Recorded()
    finals: list[End] = []
    for job_id, e in ends.items():
        at = _utc(e.ended_at)
        state = _TERMINAL.get(e.outcome)
        if state is None:
            reason = preempt_reasons.get(job_id, e.message)
            if requeue(session, job_id, _RUN_STATES, at, reason):
                done.requeued.add(job_id)
            continue
        values = {"ended_at": at, "exit_code": e.exit_code}
        finals.append(End(job_id, at, state, e.message, values))
    done.ended = end_runs(session, _RUN_STATES, finals)
    usage = [
        {
            "job_id": job_id,
            "attempt": int(e.run_id.rpartition(".")[2]),
            "ended_at": _utc(e.ended_at),
            "samples": e.gpu_usage.samples,
            "util_mean_pct": e.gpu_usage.util_mean_pct,
            "util_max_pct": e.gpu_usage.util_max_pct,
            "memory_max_mib": e.gpu_usage.memory_max_mib,
            "idle_samples": e.gpu_usage.idle_samples,
            "sample_s": e.gpu_usage.sample_s,
        }
        for job_id, e in ends.items()
        if e.gpu_usage is not None and (job_id in done.ended or job_id in done.requeued)
    ]
    if usage:  # what the engine saw of the run's GPUs, with its end
        session.execute(insert(orm.RunGpuUsage), usage)
    return done


def end_runs(session: Session, from_states: Sequence[JobState], ends: Sequence[End]) -> set[str]:
    """Settle the runs, move their jobs to their end states and free their devices, for
    the jobs in one of ``from_states`` now; returns the ids of those moved."""
    by_state: dict[JobState, list[End]] = {}
    for e in ends:
        by_state.setdefault(e.state, []).append(e)
    moved: set[str] = set()
    for state, group in by_state.items():
        current = movable(session, [e.job_id for e in group], from_states, state)
        todo = [e for e in group if e.job_id in current and e.job_id not in moved]
        if not todo:
            continue
        settle_jobs(session, [(e.job_id, e.at) for e in todo])
        moves = [Move(e.job_id, e.at, e.reason, e.values) for e in todo]
        write_moves(session, moves, current, state)
        ids = [e.job_id for e in todo]
        release_leases_many(session, ids)
        moved.update(ids)
    return moved


def requeue(
    session: Session, job_id: str, from_states: Iterable[JobState], at: datetime, reason: str
) -> bool:
    """Back to pending with history kept (running -> preempted -> pending), devices
    released and the run settled, if the job is in one of ``from_states``; False if not
    (the end was recorded already)."""
    current = session.execute(_SELECT_STATE_FOR_UPDATE, {"b_id": job_id}).scalar()
    if current is None or JobState(current) not in set(from_states):
        return False
    state = JobState(current)
    settle_job(session, job_id, at)
    if state is JobState.RUNNING:
        transition(session, job_id, [JobState.RUNNING], JobState.PREEMPTED, at=at, reason=reason)
        state = JobState.PREEMPTED
    transition(
        session,
        job_id,
        [state],
        JobState.PENDING,
        at=at,
        reason=reason,
        placement=None,
        gpu_type=None,
        engine_ref=None,
        started_at=None,  # the next run is charged from its own start
    )
    release_leases(session, job_id)
    return True


_SELECT_STATE_FOR_UPDATE = (
    select(JOBS.c.state).where(JOBS.c.id == bindparam("b_id")).with_for_update()
)
_SET_REF = (
    update(JOBS)
    .where(and_(JOBS.c.id == bindparam("b_id"), JOBS.c.state == JobState.ADMITTED.value))
    .values(engine_ref=bindparam("ref"))
)
