"""PostgreSQL: new jobs committed from the event loop, one statement per batch.

On PostgreSQL a submission used to be a transaction on the group-commit writer thread:
BEGIN, two INSERTs and COMMIT through SQLAlchemy and psycopg, handed to that thread and
back. Measured alone on the benchmark machine, such a transaction costs the client
about 230 µs of CPU and 480 µs of wall time (pipelined), while one data-modifying
statement in autocommit mode,

    WITH j AS (INSERT INTO jobs ...) INSERT INTO job_events ...

costs 74 µs and 280 µs. It is atomic on its own (both rows or neither), committed when
it returns, and awaited on an asyncio connection it needs no thread: the event loop
goes on serving requests while PostgreSQL flushes its WAL.

Batching follows the group commit's rule: submissions that arrive while a statement is
in flight go together in the next one (up to ``MAX_ROWS`` jobs). If a batch fails, each
submission in it is written alone, so a bad one (a reused idempotency key) fails alone.
Errors are raised as SQLAlchemy raises them (``db.driver_error``: ``IntegrityError``
for a duplicate key).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any

from axcenter.store.db import Store, driver_error
from axcenter.store.jobs import (
    JOB_EVENTS,
    JOBS,
    DriverInsert,
    NewJob,
    driver_insert,
    event_rows,
    job_rows,
)

__all__ = ["MAX_ROWS", "AsyncJobInserts"]

#: most jobs in one statement: bounds the statement's parameters (PostgreSQL allows
#: 65,535; a job takes 23) and the wait of the batch's first submission
MAX_ROWS = 500
#: statements kept per row count (a burst's batches take a few sizes; one is the rule)
STATEMENTS_KEPT = 32

_Entry = tuple[Sequence[NewJob], "asyncio.Future[None]"]


class AsyncJobInserts:
    """New jobs and their first events, written from the event loop (see the module doc).

    One connection per event loop that uses it, opened on first use and closed by
    ``aclose`` on that loop (the API's lifespan does it).
    """

    def __init__(self, store: Store, *, max_rows: int = MAX_ROWS) -> None:
        if store.is_sqlite:
            raise ValueError("AsyncJobInserts is for PostgreSQL (SQLite: GroupCommit)")
        self.store = store
        self.max_rows = max_rows
        dialect = store.engine.dialect
        self._dialect = dialect
        self._jobs = driver_insert(JOBS, dialect)
        self._events = driver_insert(JOB_EVENTS, dialect)
        self._statements: dict[int, str] = {}
        #: weak: a loop that ends without ``aclose`` (a test client's) takes its own along
        self._connections: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._pending: dict[asyncio.AbstractEventLoop, list[_Entry]] = {}
        #: the task writing each loop's batches, while it has any
        self._writers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}
        #: statements executed, and jobs they carried
        self.statements = 0
        self.written = 0

    def fits(self, jobs: Sequence[NewJob]) -> bool:
        """Whether ``jobs`` go in one statement (more go through ``GroupCommit``)."""
        return 0 < len(jobs) <= self.max_rows

    async def insert(self, jobs: Sequence[NewJob]) -> None:
        """Commit ``jobs`` (pending) with their first events; returns once committed."""
        if not self.fits(jobs):
            raise ValueError(f"{len(jobs)} jobs do not fit one statement (1..{self.max_rows})")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.setdefault(loop, []).append((jobs, done))
        if loop not in self._writers:
            self._writers[loop] = loop.create_task(self._write_pending(loop))
        await done

    async def aclose(self) -> None:
        """Close this loop's connection (after its writer has finished)."""
        loop = asyncio.get_running_loop()
        writer = self._writers.get(loop)
        if writer is not None:
            await asyncio.shield(writer)
        conn = self._connections.pop(loop, None)
        if conn is not None:
            await conn.close()

    # -- writing ------------------------------------------------------------------------

    async def _write_pending(self, loop: asyncio.AbstractEventLoop) -> None:
        """Batches of everything pending on ``loop``, one statement each, until none is."""
        batch: list[_Entry] = []
        try:
            while pending := self._pending.pop(loop, None):
                batch, rows = [], 0
                while pending and rows + len(pending[0][0]) <= self.max_rows:
                    entry = pending.pop(0)
                    batch.append(entry)
                    rows += len(entry[0])
                if pending:  # the rest waits for the next statement
                    self._pending.setdefault(loop, [])[:0] = pending
                await self._write(loop, batch)
        except BaseException:  # cancelled (the loop is closing): nobody waits forever
            for _, done in [*batch, *self._pending.pop(loop, [])]:
                done.cancel()
            raise
        finally:
            del self._writers[loop]

    async def _write(self, loop: asyncio.AbstractEventLoop, batch: list[_Entry]) -> None:
        try:
            await self._execute(loop, [job for jobs, _ in batch for job in jobs])
        except Exception as exc:  # settled below: the caller gets it
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            for entry in batch:  # each alone: a bad one fails alone
                await self._write(loop, [entry])
            return
        for _, done in batch:
            _settle(done, None)

    async def _execute(self, loop: asyncio.AbstractEventLoop, jobs: Sequence[NewJob]) -> None:
        params = [v for row in job_rows(jobs) for v in self._jobs.values(row)]
        params += [v for row in event_rows(jobs) for v in self._events.values(row)]
        sql = self._statement(len(jobs))
        try:
            conn = self._connections.get(loop)
            if conn is None:
                conn = self._connections[loop] = await self.store.connect_async()
            await conn.execute(sql, params)
        except self._dialect.loaded_dbapi.Error as exc:
            conn = self._connections.get(loop)
            if conn is not None and conn.closed:  # the server went away: connect again
                del self._connections[loop]
            raise driver_error(self._dialect, exc, sql) from exc
        self.store.count_changes((JOBS.name, JOB_EVENTS.name))
        self.statements += 1
        self.written += len(jobs)

    def _statement(self, rows: int) -> str:
        """The jobs' INSERT inside a CTE, the events' INSERT after it: ``rows`` of each."""
        sql = self._statements.get(rows)
        if sql is None:
            sql = f"WITH j AS ({self._values(JOBS.name, self._jobs, rows)}) " + self._values(
                JOB_EVENTS.name, self._events, rows
            )
            if len(self._statements) < STATEMENTS_KEPT:
                self._statements[rows] = sql
        return sql

    def _values(self, table: str, insert: DriverInsert, rows: int) -> str:
        quote = self._dialect.identifier_preparer.quote
        columns = ", ".join(quote(name) for name, _ in insert.columns)
        row = "(" + ", ".join(["%s"] * len(insert.columns)) + ")"
        # names from our own metadata, quoted; every value is a parameter
        values = ", ".join([row] * rows)
        return f"INSERT INTO {quote(table)} ({columns}) VALUES {values}"  # noqa: S608


def _settle(done: asyncio.Future[None], exc: BaseException | None) -> None:
    if done.done():  # the caller went away; its jobs are committed all the same
        return
    if exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)
