"""Group commit: batches share a transaction, a bad piece fails alone, the loop never waits."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from axcenter.store import orm
from axcenter.store.accounts import create_organization
from axcenter.store.db import Store
from axcenter.store.group_commit import GroupCommit


@pytest.fixture
def writes(store: Store) -> Iterator[GroupCommit]:
    gc = GroupCommit(store)
    gc.start()
    yield gc
    gc.close()


def add_org(name: str) -> Callable[[Connection], str]:
    def work(conn: Connection) -> str:
        with Session(bind=conn) as session:
            org = create_organization(session, name)
            session.flush()
            return org.id

    return work


def fail_after_writing(name: str) -> Callable[[Connection], str]:
    def work(conn: Connection) -> str:
        with Session(bind=conn) as session:
            create_organization(session, name)
            session.flush()
        raise ValueError(f"{name} is refused")

    return work


def org_names(store: Store) -> set[str]:
    with store.read() as s:
        return set(s.scalars(select(orm.Organization.name)))


def test_requests_of_one_loop_turn_share_one_commit(store: Store, writes: GroupCommit) -> None:
    async def burst() -> list[str]:
        return await asyncio.gather(*(writes.arun(add_org(f"org-{i}")) for i in range(40)))

    ids = asyncio.run(burst())
    assert len(set(ids)) == 40
    assert org_names(store) >= {f"org-{i}" for i in range(40)}
    assert writes.committed == 40
    # SQLite: written on the loop at the end of its turn; PostgreSQL: the writer thread
    # takes what is queued, so a burst needs far fewer commits than requests either way
    assert writes.commits <= (1 if store.is_sqlite else 20)


def test_a_failing_piece_fails_alone_and_leaves_nothing(store: Store, writes: GroupCommit) -> None:
    async def burst() -> list[str | BaseException]:
        works = [add_org("good-1"), fail_after_writing("bad"), add_org("good-2")]
        return await asyncio.gather(*(writes.arun(w) for w in works), return_exceptions=True)

    good_1, bad, good_2 = asyncio.run(burst())
    assert isinstance(bad, ValueError) and "bad is refused" in str(bad)
    assert isinstance(good_1, str) and isinstance(good_2, str)
    names = org_names(store)
    assert {"good-1", "good-2"} <= names
    assert "bad" not in names  # its flushed row was rolled back with it


def test_the_loop_hands_over_instead_of_waiting_for_a_busy_writer(
    store: Store, writes: GroupCommit
) -> None:
    """While another thread holds a write transaction, the loop keeps running."""
    if not store.is_sqlite:
        pytest.skip("PostgreSQL batches always go to the writer thread")
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.write():
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(30)

    async def scenario() -> tuple[str, int]:
        write = asyncio.ensure_future(writes.arun(add_org("after-busy")))
        ticks = 0
        while not write.done() and ticks < 5:
            await asyncio.sleep(0)  # the loop turns: nothing blocked it
            ticks += 1
        assert not write.done()  # still waiting for the holder, off the loop
        release.set()
        return await write, ticks

    org_id, ticks = asyncio.run(scenario())
    holder.join()
    assert ticks == 5 and org_id
    assert "after-busy" in org_names(store)


def test_what_queues_while_the_writer_commits_goes_in_its_next_batch(
    store: Store, writes: GroupCommit
) -> None:
    running, proceed = threading.Event(), threading.Event()

    def slow(conn: Connection) -> str:
        running.set()
        proceed.wait(30)
        return add_org("slow")(conn)

    with ThreadPoolExecutor(11) as pool:
        first = pool.submit(writes.run, slow)
        running.wait(30)
        rest = [pool.submit(writes.run, add_org(f"t-{i}")) for i in range(10)]
        while writes._queue.qsize() < 10:  # all ten are queued behind the slow one
            threading.Event().wait(0.001)
        proceed.set()
        ids = [first.result(), *(f.result() for f in rest)]
    assert len(set(ids)) == 11
    assert {f"t-{i}" for i in range(10)} <= org_names(store)
    assert (writes.commits, writes.committed) == (2, 11)


def test_run_reports_the_error_of_its_own_work(writes: GroupCommit) -> None:
    with pytest.raises(ValueError, match="solo is refused"):
        writes.run(fail_after_writing("solo"))


def test_a_stopped_writer_refuses_work(store: Store) -> None:
    gc = GroupCommit(store)
    with pytest.raises(RuntimeError, match="not running"):
        gc.run(add_org("never"))
