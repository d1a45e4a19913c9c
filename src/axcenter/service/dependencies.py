"""Jobs that wait for other jobs (Slurm's ``--dependency``) or for a place under their
array's ``%`` throttle, and the resolver that lets them go.

A job submitted with a dependency is pending with ``dependency_pending`` set; the
scheduler passes it over (``PendingJob.dependent``, reason ``dependency``). The
``DependencyResolver`` thread re-judges the waiting jobs (``model.dependencies.judge``)
whenever the control loop reports jobs ended (``JobWatch`` listeners), and every few
seconds as a safety net: a job whose dependency holds is handed back to the scheduler
(the flag cleared where the job is still pending, then ``forget`` and ``submitted``); one
whose dependency never can hold is cancelled through the one gate for state changes
(``store.jobs.transition``), its reason naming the job that ended the other way. The
tasks of an array submitted with ``%N`` beyond the first N wait the same way, and go,
lowest index first, as the array's started tasks end.

The resolver keeps the ids of the waiting jobs in memory (loaded at start, added at each
such submission), so a center without dependent jobs never queries for them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from axcenter.control.convert import pending_from_row
from axcenter.model.access import Principal
from axcenter.model.dependencies import Dependency, Verdict, judge, parse_dependency
from axcenter.model.jobs import TERMINAL, JobState
from axcenter.model.snapshot import PendingJob
from axcenter.service.access import visible_jobs
from axcenter.service.errors import InvalidInput
from axcenter.service.schemas import JobIn
from axcenter.store import orm
from axcenter.store.db import Store
from axcenter.store.jobs import transition
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.control.loop import ControlLoop

__all__ = ["DependencyResolver", "check_dependencies"]

log = logging.getLogger(__name__)

#: the resolver also looks this often without being woken (a missed wake-up costs this)
SAFETY_S = 5.0
_ENDED = [s.value for s in TERMINAL]


def check_dependencies(store: Store, who: Principal, requests: Sequence[JobIn]) -> None:
    """Refuse a dependency on a job the submitter may not see or that does not exist (as
    ``sbatch`` does), naming it. Only submissions with a dependency read anything."""
    refs = {
        job for r in requests if r.dependency for _, job in parse_dependency(r.dependency).after
    }
    if not refs:
        return
    with store.read() as session:
        known = _states(session, refs, visible_jobs(who))
    missing = sorted(refs - set(known))
    if missing:
        raise InvalidInput("dependency", "no job {missing!r} to depend on", missing=missing[0])


def _states(
    session: Session, refs: Iterable[str], scope: ColumnElement[bool] | None = None
) -> dict[str, str]:
    """The state of each job, task (``arr_…_N``) or array (``arr_…``: ended once every
    task has; succeeded if every task did) that ``refs`` names and exists."""
    where = [scope] if scope is not None else []
    jobs = [r for r in refs if r.startswith("job_")]
    arrays = {r.rsplit("_", 1)[0] if r.count("_") == 2 else r for r in refs if r[:4] == "arr_"}
    found: dict[str, str] = {}
    if jobs:
        by_id = select(orm.Job.id, orm.Job.state).where(orm.Job.id.in_(jobs), *where)
        found.update({job_id: state for job_id, state in session.execute(by_id).tuples()})
    if arrays:
        tasks = select(orm.Job.array_id, orm.Job.array_index, orm.Job.state).where(
            orm.Job.array_id.in_(sorted(arrays)), *where
        )
        per_array: dict[str, list[str]] = {}
        for array_id, index, state in session.execute(tasks).tuples():
            assert array_id is not None
            found[f"{array_id}_{index}"] = state
            per_array.setdefault(array_id, []).append(state)
        for array_id, states in per_array.items():
            if any(s not in _ENDED for s in states):
                found[array_id] = JobState.PENDING.value
            elif all(s == JobState.SUCCEEDED.value for s in states):
                found[array_id] = JobState.SUCCEEDED.value
            else:
                found[array_id] = JobState.FAILED.value
    return found


class DependencyResolver:
    """One thread that lets dependent jobs go when what they wait for has happened."""

    def __init__(self, store: Store, control: ControlLoop) -> None:
        self._store = store
        self._control = control
        self._waiting: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._store.read() as session:
            ids = session.scalars(
                select(orm.Job.id).where(
                    orm.Job.dependency_pending.is_(True),
                    orm.Job.state == JobState.PENDING.value,
                )
            ).all()
        with self._lock:
            self._waiting.update(ids)
        self._thread = threading.Thread(target=self._run, name="axc-dependencies", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def submitted(self, job_ids: Iterable[str]) -> None:
        """Jobs with a dependency were committed: judge them now (what they wait for may
        have ended already)."""
        with self._lock:
            self._waiting.update(job_ids)
        self._wake.set()

    def ended(self, job_ids: Iterable[str]) -> None:
        """The control loop committed these jobs' ends (a ``JobWatch`` listener: cheap,
        on the loop's thread)."""
        if self._waiting:
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(SAFETY_S)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.resolve()
            except Exception:  # the next wake-up tries again
                log.exception("resolving job dependencies failed")

    def resolve(self) -> None:
        """Judge every waiting job once; release or cancel those that are decided."""
        with self._lock:
            waiting = sorted(self._waiting)
        if not waiting:
            return
        released: list[PendingJob] = []
        decided: set[str] = set()
        with self._store.write() as session:
            rows = session.scalars(select(orm.Job).where(orm.Job.id.in_(waiting))).all()
            specs = {r.id: parse_dependency(r.dependency) for r in rows if r.dependency}
            refs = {job for spec in specs.values() for _, job in spec.after}
            states = _states(session, refs)
            now = utcnow()
            ready: list[orm.Job] = []
            for row in rows:
                if row.state != JobState.PENDING.value or not row.dependency_pending:
                    decided.add(row.id)  # cancelled or started meanwhile: nothing to do
                    continue
                spec = specs.get(row.id)
                if spec is not None:
                    clear = not spec.singleton or self._singleton_clear(session, row)
                    verdict = judge(spec, states, clear)
                    if verdict is Verdict.NEVER:
                        transition(
                            session,
                            row.id,
                            [JobState.PENDING],
                            JobState.CANCELLED,
                            at=now,
                            reason=f"dependency never satisfied: {_why(spec, states)}",
                            ended_at=now,
                        )
                        decided.add(row.id)
                        self._control.forget(row.id)
                        continue
                    if verdict is Verdict.WAIT:
                        continue
                ready.append(row)
            for row in _under_throttles(session, ready):
                done = session.execute(
                    update(orm.Job)
                    .where(orm.Job.id == row.id, orm.Job.state == JobState.PENDING.value)
                    .values(dependency_pending=False)
                    .execution_options(synchronize_session=False)
                )
                if done.rowcount == 1:  # type: ignore[attr-defined]
                    released.append(replace(pending_from_row(row), dependent=False))
                decided.add(row.id)
        with self._lock:
            self._waiting -= decided
        for job in released:
            self._control.forget(job.id)
        if released:
            self._control.submitted(released)

    @staticmethod
    def _singleton_clear(session: Session, row: orm.Job) -> bool:
        """No earlier job of the same user and name is still to end (Slurm's singleton)."""
        earlier = session.scalar(
            select(func.count())
            .select_from(orm.Job)
            .where(
                orm.Job.user_id == row.user_id,
                orm.Job.name == row.name,
                orm.Job.id < row.id,
                orm.Job.state.not_in(_ENDED),
            )
        )
        return not earlier


def _why(spec: Dependency, states: dict[str, str]) -> str:
    for kind, job in spec.after:
        state = states.get(job)
        if kind == "afterok" and state in _ENDED and state != JobState.SUCCEEDED.value:
            return f"{job} {state} (afterok)"
        if kind == "afternotok" and state == JobState.SUCCEEDED.value:
            return f"{job} succeeded (afternotok)"
    return "a job it depends on ended the other way"


def _under_throttles(session: Session, ready: list[orm.Job]) -> list[orm.Job]:
    """Of the jobs free to go, those an array's ``%`` throttle lets start now: per array,
    as many as it has places (tasks started and not ended below the throttle), lowest
    index first. Jobs of no throttled array all go."""
    free = [r for r in ready if r.array_throttle is None or r.array_id is None]
    by_array: dict[str, list[orm.Job]] = {}
    for row in ready:
        if row.array_throttle is not None and row.array_id is not None:
            by_array.setdefault(row.array_id, []).append(row)
    for array_id, tasks in by_array.items():
        active = session.scalar(
            select(func.count())
            .select_from(orm.Job)
            .where(
                orm.Job.array_id == array_id,
                orm.Job.state.not_in(_ENDED),
                orm.Job.dependency_pending.is_(False),
            )
        )
        places = (tasks[0].array_throttle or 0) - int(active or 0)
        free += sorted(tasks, key=lambda r: r.array_index or 0)[: max(places, 0)]
    return free
