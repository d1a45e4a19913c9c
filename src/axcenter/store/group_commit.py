"""Group commit: writes that arrive together share one transaction and one commit.

Accepting a job costs little next to committing it and to handing it between threads.
Requests are therefore gathered where they arrive:

- on the event loop (``arun``), every request that reaches the write within one turn of
  the loop joins one batch; at the end of the turn the batch is written and committed.
  On SQLite, when no other thread is writing, this happens right there on the loop: a
  commit in WAL mode is a write into the page cache and, with ``synchronous=FULL``, one
  sync of the WAL (about 0.5 ms on this project's test machine); requests that arrive
  meanwhile form the next batch, so under load one sync serves many submissions
  (benchmarks/sqlite_durability.py: FULL costs 26% of NORMAL's rate to one sequential
  client, 3% to eight). When another
  thread holds the write lock, and always on PostgreSQL (whose commit waits for the
  server's flush), the batch goes to the writer thread instead, so the loop never waits;
- from other threads (``run``), work goes to the writer thread, which takes everything
  queued since its last commit as one batch.

Each caller waits for its own result, so an acknowledgement still means *committed*.

A piece of work is a function of a Core connection in the batch's transaction (not of
an ORM session, whose bookkeeping would cost as much as a submission's inserts; a piece
that reads through the ORM opens a session on that connection). If one of a batch fails,
the batch is rolled back and each piece is run again in a transaction of its own, so a
bad request fails alone and the others' results are exactly what they would have been
alone. Work must therefore be safe to run again after a rollback: compute everything
from the connection, touch nothing outside it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy import Connection

from axcenter.store.async_inserts import AsyncJobInserts
from axcenter.store.db import Fenced, Store, WriteBusy
from axcenter.store.jobs import NewJob, insert_jobs

__all__ = ["GroupCommit"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[Connection], Any]
#: called with (result, None) once committed, or (None, error)
Settle = Callable[[Any, BaseException | None], None]
Entry = tuple[Work, Settle]

#: most pieces of work in one transaction (bounds the latency of the last one)
MAX_BATCH = 256


class GroupCommit:
    """Batches of writes, one transaction each (see the module doc)."""

    def __init__(self, store: Store, *, max_batch: int = MAX_BATCH) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Entry | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: per event loop, the batch gathered during its current turn
        self._gathering: dict[asyncio.AbstractEventLoop, list[Entry]] = {}
        #: PostgreSQL's cheaper way to commit new jobs (``ainsert_jobs``)
        self.job_inserts = None if store.is_sqlite else AsyncJobInserts(store)
        #: transactions committed, and pieces of work they carried
        self.commits = 0
        self.committed = 0

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="axc-group-commit", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        """Finish what is queued, then stop the writer thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    # -- callers ------------------------------------------------------------------------

    def run(self, work: Callable[[Connection], T]) -> T:
        """``work`` committed (with whatever else was queued); its result or its error."""
        future: Future[T] = Future()
        future.set_running_or_notify_cancel()
        self._hand_over([(work, _settle_future(future))])
        return future.result()

    async def arun(self, work: Callable[[Connection], T]) -> T:
        """``run`` for the event loop: joins this turn's batch; never blocks the loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        batch = self._gathering.get(loop)
        if batch is None:
            batch = self._gathering[loop] = []
            loop.call_soon(self._flush, loop)
        batch.append((work, _settle_async(loop, future)))
        return await future

    async def ainsert_jobs(self, jobs: Sequence[NewJob]) -> None:
        """Commit new jobs the cheapest way the database allows: on PostgreSQL one
        statement awaited on the loop (``store.async_inserts``), else this turn's batch."""
        if self.job_inserts is not None and self.job_inserts.fits(jobs):
            if self.store.fenced.is_set():  # this one statement has no fence of its own
                raise Fenced("another controller took over this store")
            await self.job_inserts.insert(jobs)
        else:
            await self.arun(lambda conn: insert_jobs(conn, jobs))

    async def aclose(self) -> None:
        """Close what this event loop holds (at the end of the API's lifespan)."""
        if self.job_inserts is not None:
            await self.job_inserts.aclose()

    # -- writing ------------------------------------------------------------------------

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """End of the loop's turn: write its batch here if that needs no waiting."""
        batch = self._gathering.pop(loop, [])
        if not batch:
            return
        if self.store.is_sqlite:
            self._commit(batch, busy=self._hand_over)
        else:
            self._hand_over(batch)

    def _hand_over(self, batch: list[Entry]) -> None:
        if self._thread is None:
            raise RuntimeError("the group-commit writer is not running (start the center)")
        for entry in batch:
            self._queue.put(entry)

    def _run(self) -> None:
        """The writer thread: everything queued since the last commit, in one batch."""
        while True:
            entry = self._queue.get()
            if entry is None:
                return
            batch = [entry]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._commit(batch, busy=None)
            if stop:
                return

    def _commit(self, batch: list[Entry], busy: Callable[[list[Entry]], None] | None) -> None:
        """Run ``batch`` in one transaction and settle each entry. ``busy``: what to do
        with the batch instead of waiting when another thread is writing (None: wait)."""
        try:
            with self.store.write_connection(wait=busy is None) as conn:
                results = [work(conn) for work, _ in batch]
        except WriteBusy:
            assert busy is not None
            busy(batch)
            return
        except Exception as exc:  # settled below: the caller gets it
            if len(batch) == 1:
                batch[0][1](None, exc)
                return
            log.debug("a batch of %d failed (%s): committing each alone", len(batch), exc)
            for entry in batch:
                self._commit([entry], busy)
            return
        self.commits += 1
        self.committed += len(batch)
        for (_, settle), result in zip(batch, results, strict=True):
            settle(result, None)


def _settle_future(future: Future[Any]) -> Settle:
    def settle(result: Any, exc: BaseException | None) -> None:
        if exc is None:
            future.set_result(result)
        else:
            future.set_exception(exc)

    return settle


def _settle_async(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> Settle:
    """Settle ``future`` on its own loop, from whichever thread committed."""

    def on_loop(result: Any, exc: BaseException | None) -> None:
        if future.cancelled():
            return  # the caller went away; its work is committed all the same
        if exc is None:
            future.set_result(result)
        else:
            future.set_exception(exc)

    def settle(result: Any, exc: BaseException | None) -> None:
        if _on_loop_thread(loop):
            on_loop(result, exc)
        else:
            loop.call_soon_threadsafe(on_loop, result, exc)

    return settle


def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
