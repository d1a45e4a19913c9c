"""Job writes: submission, state transitions (the one gate), device leases.

``transition`` is the only way a job's state changes. It updates the row with a guard on
the current state and appends the event in the same transaction, so the stored state
and the event history never disagree and a stale decision (a job cancelled while the
scheduler was admitting it) changes nothing.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, Update, bindparam, delete, insert, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from axcenter.model.cluster import Allocation
from axcenter.model.jobs import JobOutput, JobState, check_transition
from axcenter.store.db import driver_error, note_changed
from axcenter.store.orm import DeviceLease, Job, JobEvent

__all__ = [
    "NEXT_ATTEMPT",
    "NewJob",
    "insert_jobs",
    "release_leases",
    "take_leases",
    "transition",
]

JOBS = cast(Table, Job.__table__)
JOB_EVENTS = cast(Table, JobEvent.__table__)
LEASES = cast(Table, DeviceLease.__table__)
#: ``transition(..., attempts=NEXT_ATTEMPT)`` counts one more attempt (a shared value, so
#: that the statement setting it is built once)
NEXT_ATTEMPT = JOBS.c.attempts + 1
SHARED_EXPRESSIONS: dict[str, Any] = {"attempts": NEXT_ATTEMPT}
# built once: a statement object memoizes its compiled-cache key
INSERT_EVENTS = insert(JOB_EVENTS)


@dataclass(frozen=True, slots=True)
class NewJob:
    """A validated submission, ready to be written."""

    id: str
    project_id: str
    user_id: str
    name: str
    command: list[str]
    workdir: str
    env: dict[str, str]
    gpus_per_node: int
    nodes: int
    cpus_per_node: int
    memory_mb_per_node: int
    time_limit_s: int
    priority: int
    gpu_types: list[str]
    idempotency_key: str | None
    submitted_at: datetime
    output: JobOutput = JobOutput.LOG
    output_path: str | None = None
    error_path: str | None = None
    held: bool = False
    dependency: str | None = None
    #: waits for its dependency, or for a place under its array's throttle
    dependency_pending: bool = False
    array_id: str | None = None
    array_index: int | None = None
    #: the array's ``%`` throttle
    array_throttle: int | None = None
    #: a batch script's content, run as the job's command (``jobs.script``)
    script: str | None = None


def insert_jobs(target: Session | Connection, jobs: Sequence[NewJob]) -> None:
    """Insert pending jobs and their first event.

    Run as the driver's own SQL, compiled once per dialect (``DriverInsert``): on the
    submission path SQLAlchemy's statement execution cost more than the two inserts did.
    Both go to PostgreSQL in one round trip (``_pipelined``).
    """
    if not jobs:
        return
    conn = target.connection() if isinstance(target, Session) else target
    with _pipelined(conn):
        _insert_jobs_and_events(conn, jobs)
    note_changed(target, JOBS.name, JOB_EVENTS.name)


@contextlib.contextmanager
def _pipelined(conn: Connection) -> Iterator[None]:
    """Statements whose results nobody reads, sent together (psycopg's pipeline mode:
    with the transaction's BEGIN, one round trip instead of one each; other drivers: as
    they come). Their errors arrive at the end: raised as SQLAlchemy raises them from
    ``execute`` (``IntegrityError`` for a duplicate key), so callers see no difference."""
    driver = conn.connection.driver_connection
    pipeline = getattr(driver, "pipeline", None)
    if pipeline is None:
        yield
        return
    try:
        with pipeline():
            yield
    except conn.dialect.loaded_dbapi.Error as exc:
        raise driver_error(conn.dialect, exc) from exc


def _insert_jobs_and_events(conn: Connection, jobs: Sequence[NewJob]) -> None:
    dialect = conn.dialect
    driver_insert(JOBS, dialect).execute(conn, job_rows(jobs))
    driver_insert(JOB_EVENTS, dialect).execute(conn, event_rows(jobs))


def job_rows(jobs: Sequence[NewJob]) -> list[dict[str, Any]]:
    """The ``jobs`` rows of new jobs (state pending)."""
    return [
        {
            "id": j.id,
            "project_id": j.project_id,
            "user_id": j.user_id,
            "name": j.name,
            "command": j.command,
            "workdir": j.workdir,
            "env": j.env,
            "gpus_per_node": j.gpus_per_node,
            "nodes": j.nodes,
            "cpus_per_node": j.cpus_per_node,
            "memory_mb_per_node": j.memory_mb_per_node,
            "time_limit_s": j.time_limit_s,
            "priority": j.priority,
            "gpu_types": j.gpu_types,
            "output": j.output.value,
            "output_path": j.output_path,
            "error_path": j.error_path,
            "held": j.held,
            "dependency": j.dependency,
            "dependency_pending": j.dependency_pending,
            "idempotency_key": j.idempotency_key,
            "state": JobState.PENDING.value,
            "reason": None,
            "submitted_at": j.submitted_at,
            "attempts": 0,
            "array_id": j.array_id,
            "array_index": j.array_index,
            "array_throttle": j.array_throttle,
            "script": j.script,
        }
        for j in jobs
    ]


def event_rows(jobs: Sequence[NewJob]) -> list[dict[str, Any]]:
    """The first ``job_events`` row of each new job."""
    return [
        {
            "job_id": j.id,
            "at": j.submitted_at,
            "from_state": None,
            "to_state": JobState.PENDING.value,
            "reason": "submitted",
        }
        for j in jobs
    ]


@dataclass(frozen=True, slots=True)
class DriverInsert:
    """An INSERT of every column of a table, compiled for one dialect, with each column's
    bind processor (JSON, UTC datetimes): rows go to the driver as they are."""

    sql: str
    positional: bool  # parameters as tuples in column order (else as dicts)
    #: (column, the value when a row leaves it out), in the statement's order
    columns: tuple[tuple[str, Any], ...]
    #: (position, bind processor) of the columns whose values the driver cannot take as is
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]

    def execute(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        params: list[Any] = []
        for row in rows:
            values = self.values(row)
            params.append(
                tuple(values)
                if self.positional
                else {name: value for (name, _), value in zip(self.columns, values, strict=True)}
            )
        conn.exec_driver_sql(self.sql, params[0] if len(params) == 1 else params)

    def values(self, row: Mapping[str, Any]) -> list[Any]:
        """``row``'s values in the statement's column order, as the driver takes them."""
        values = [row.get(name, default) for name, default in self.columns]
        try:
            for i, bind in self.processors:
                values[i] = bind(values[i])
        except (TypeError, ValueError) as exc:  # as SQLAlchemy reports a bad value
            raise StatementError(str(exc), self.sql, dict(row), exc) from exc
        return values


@functools.lru_cache(maxsize=16)
def driver_insert(table: Table, dialect: Dialect) -> DriverInsert:
    """``table``'s INSERT for ``dialect`` (all columns but an autoincrementing key). A
    column a row may leave out must have a constant default (taken here, as SQLAlchemy
    would)."""
    keys = [c.key for c in table.c if c is not table.autoincrement_column]  # the database's
    compiled = insert(table).compile(dialect=dialect, column_keys=keys)
    names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.binds)
    columns, processors = [], []
    for i, name in enumerate(names):
        column = table.c[name]
        default = column.default
        if default is not None and not isinstance(default, ScalarElementColumnDefault):
            raise TypeError(f"{table.name}.{name}: only constant defaults can be precompiled")
        columns.append((name, default.arg if default is not None else None))
        bind = column.type.dialect_impl(dialect).bind_processor(dialect)
        if bind is not None:
            processors.append((i, bind))
    return DriverInsert(compiled.string, compiled.positional, tuple(columns), tuple(processors))


def transition(
    session: Session,
    job_id: str,
    from_states: Iterable[JobState],
    to_state: JobState,
    *,
    at: datetime,
    reason: str,
    **fields: Any,
) -> JobState | None:
    """Move ``job_id`` to ``to_state`` if it is in one of ``from_states``.

    Returns the state it left, or None when the guard failed (the job had moved on);
    callers treat None as "this decision is stale" and drop it.
    """
    legal = [s.value for s in from_states if allowed(s, to_state)]
    current = session.execute(_SELECT_STATE, {"b_id": job_id, "b_states": legal}).scalar()
    if current is None:
        return None
    values = {"state": to_state.value, "reason": reason, **fields}
    params = {"b_id": job_id, "b_current": current}
    plain = {k: v for k, v in values.items() if not isinstance(v, ClauseElement)}
    shared = tuple(sorted(k for k in values if k not in plain))
    if all(values[k] is SHARED_EXPRESSIONS.get(k) for k in shared):
        statement, params = update_setting(tuple(sorted(plain)), shared), {**params, **plain}
    else:  # an expression of the caller's own: built for this call
        statement = _GUARDED_UPDATE.values(**values)
    done = session.execute(statement, params)
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.execute(
        INSERT_EVENTS,
        {
            "job_id": job_id,
            "at": at,
            "from_state": current,
            "to_state": to_state.value,
            "reason": reason,
        },
    )
    return JobState(current)


# Statements built once with bound parameters: SQLAlchemy then reuses their compiled
# form without computing a cache key per call (the control loop runs thousands).
_SELECT_STATE = select(JOBS.c.state).where(
    JOBS.c.id == bindparam("b_id"), JOBS.c.state.in_(bindparam("b_states", expanding=True))
)
_GUARDED_UPDATE = update(JOBS).where(
    JOBS.c.id == bindparam("b_id"), JOBS.c.state == bindparam("b_current")
)


@functools.lru_cache(maxsize=64)
def update_setting(columns: tuple[str, ...], shared: tuple[str, ...] = ()) -> Update:
    """The guarded update that sets ``columns`` (each bound to the parameter of its name)
    and the ``shared`` expressions (``NEXT_ATTEMPT``)."""
    values: dict[str, Any] = {c: bindparam(c) for c in columns}
    values.update({c: SHARED_EXPRESSIONS[c] for c in shared})
    return _GUARDED_UPDATE.values(values)


INSERT_LEASES = insert(LEASES)
_DELETE_LEASES = delete(LEASES).where(LEASES.c.job_id == bindparam("b_job"))


def allowed(current: JobState, target: JobState) -> bool:
    """Whether a job may move from ``current`` to ``target``."""
    try:
        check_transition(current, target)
    except ValueError:
        return False
    return True


def take_leases(session: Session, job_id: str, placement: Sequence[Allocation]) -> None:
    """Record the devices ``job_id`` holds; fails (IntegrityError) if any is held already."""
    rows = lease_rows(job_id, placement)
    if rows:
        session.execute(INSERT_LEASES, rows)


def lease_rows(job_id: str, placement: Sequence[Allocation]) -> list[dict[str, Any]]:
    """The ``device_leases`` rows of ``job_id`` holding ``placement``."""
    return [
        {"node_id": a.node_id, "device_index": d, "job_id": job_id}
        for a in placement
        for d in a.devices
    ]


def release_leases(session: Session, job_id: str) -> None:
    session.execute(_DELETE_LEASES, {"b_job": job_id})
