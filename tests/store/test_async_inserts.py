"""PostgreSQL's submission write: new jobs committed from the event loop, one statement
per batch (``store.async_inserts``). Runs on PostgreSQL only (SQLite has no such path)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError

from axcenter.store import orm
from axcenter.store.async_inserts import AsyncJobInserts
from axcenter.store.db import Store
from axcenter.store.group_commit import GroupCommit
from axcenter.store.jobs import NewJob, insert_jobs
from tests.conftest import PG_URL, _pg_dsn
from tests.store.test_jobs import T0, Seed, new_job, seed, stored_differences

__all__ = ["seed"]  # the fixture, used by name


@pytest.fixture(params=["postgresql"])
def db(request: pytest.FixtureRequest) -> Iterator[tuple[str, str | None]]:
    """Overrides the shared fixture: PostgreSQL alone."""
    schema = f"axc_test_{secrets.token_hex(6)}"
    with psycopg.connect(_pg_dsn(PG_URL), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield PG_URL, schema
    with psycopg.connect(_pg_dsn(PG_URL), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def count(store: Store, model: type[orm.Job] | type[orm.JobEvent]) -> int:
    with store.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


async def insert_all(inserts: AsyncJobInserts, batches: list[list[NewJob]]) -> list[object]:
    """Each batch as its own submission, all at once; their results (None or the error)."""
    try:
        return await asyncio.gather(*(inserts.insert(b) for b in batches), return_exceptions=True)
    finally:
        await inserts.aclose()


def test_it_writes_what_the_transaction_path_writes(store: Store, seed: Seed) -> None:
    ours = replace(new_job(seed, key="k1"), env={"B": "ü €"}, array_id="arr_1", array_index=7)
    theirs = replace(new_job(seed, key="k2"), env={"B": "ü €"}, array_id="arr_1", array_index=7)
    inserts = AsyncJobInserts(store)
    assert asyncio.run(insert_all(inserts, [[ours]])) == [None]
    with store.write() as session:
        insert_jobs(session, [theirs])
    assert stored_differences(store, ours.id, theirs.id) == {}
    with store.read() as session:
        first = session.execute(
            select(orm.JobEvent.at, orm.JobEvent.to_state, orm.JobEvent.reason).where(
                orm.JobEvent.job_id == ours.id
            )
        ).all()
    assert [tuple(r) for r in first] == [(T0, "pending", "submitted")]


def test_submissions_that_arrive_together_share_one_statement(store: Store, seed: Seed) -> None:
    inserts = AsyncJobInserts(store)
    batches = [[new_job(seed) for _ in range(n)] for n in (1, 3, 2, 1)]
    before = store.version(["jobs"])
    assert asyncio.run(insert_all(inserts, batches)) == [None] * 4
    assert (inserts.statements, inserts.written) == (1, 7)
    assert count(store, orm.Job) == count(store, orm.JobEvent) == 7
    assert store.version(["jobs"]) > before  # caches of what was read from jobs drop


def test_a_batch_is_split_at_max_rows_without_splitting_a_submission(
    store: Store, seed: Seed
) -> None:
    inserts = AsyncJobInserts(store, max_rows=3)
    batches = [[new_job(seed) for _ in range(2)] for _ in range(3)]  # 2 + 2 > 3
    assert asyncio.run(insert_all(inserts, batches)) == [None] * 3
    assert (inserts.statements, inserts.written) == (3, 6)
    assert not inserts.fits([new_job(seed) for _ in range(4)]) and not inserts.fits([])
    (too_many,) = asyncio.run(insert_all(inserts, [[new_job(seed) for _ in range(4)]]))
    assert isinstance(too_many, ValueError) and "4 jobs do not fit" in str(too_many)


def test_a_reused_key_fails_alone_and_the_others_are_committed(store: Store, seed: Seed) -> None:
    with store.write() as session:
        insert_jobs(session, [new_job(seed, key="used")])
    inserts = AsyncJobInserts(store)
    good = [[new_job(seed, key="fresh")], [new_job(seed)]]
    results = asyncio.run(insert_all(inserts, [good[0], [new_job(seed, key="used")], good[1]]))
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], IntegrityError)  # as SQLAlchemy raises it: the service replays
    assert count(store, orm.Job) == count(store, orm.JobEvent) == 3


def test_a_bad_value_fails_its_submission_only(store: Store, seed: Seed) -> None:
    inserts = AsyncJobInserts(store)
    naive = replace(new_job(seed), submitted_at=T0.replace(tzinfo=None))
    results = asyncio.run(insert_all(inserts, [[new_job(seed)], [naive]]))
    assert results[0] is None and isinstance(results[1], StatementError)
    assert count(store, orm.Job) == 1


def test_a_lost_connection_fails_the_write_and_the_next_one_reconnects(
    store: Store, seed: Seed
) -> None:
    inserts = AsyncJobInserts(store)

    async def scenario() -> object:
        await inserts.insert([new_job(seed)])
        with psycopg.connect(_pg_dsn(PG_URL), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND query LIKE 'WITH j AS (INSERT INTO%%'"
            )
        try:
            await inserts.insert([new_job(seed)])
        except OperationalError as exc:
            lost: object = exc
        else:
            lost = None
        await inserts.insert([new_job(seed)])
        await inserts.aclose()
        return lost

    assert isinstance(asyncio.run(scenario()), OperationalError)
    assert count(store, orm.Job) == 2


def test_a_cancelled_writer_leaves_no_submission_waiting_forever(store: Store, seed: Seed) -> None:
    """When the loop closes and cancels the writer mid-statement, every submission it
    carried or had queued is cancelled too, rather than left waiting for an answer."""
    inserts = AsyncJobInserts(store)

    async def scenario() -> list[bool]:
        loop = asyncio.get_running_loop()
        first = loop.create_task(inserts.insert([new_job(seed)]))
        await asyncio.sleep(0)  # the writer starts its statement
        queued = loop.create_task(inserts.insert([new_job(seed)]))
        await asyncio.sleep(0)
        inserts._writers[loop].cancel()
        done, _ = await asyncio.wait([first, queued], timeout=10)
        await inserts.aclose()
        return [t in done and t.cancelled() for t in (first, queued)]

    assert asyncio.run(scenario()) == [True, True]


def test_group_commit_takes_this_path_on_postgresql_and_the_batch_path_beyond_it(
    store: Store, seed: Seed
) -> None:
    writes = GroupCommit(store)
    writes.start()
    assert writes.job_inserts is not None
    writes.job_inserts.max_rows = 2

    async def scenario() -> None:
        await writes.ainsert_jobs([new_job(seed)])
        await writes.ainsert_jobs([new_job(seed) for _ in range(3)])  # beyond: a transaction
        await writes.aclose()

    try:
        asyncio.run(scenario())
    finally:
        writes.close()
    assert (writes.job_inserts.written, writes.committed) == (1, 1)
    assert count(store, orm.Job) == 4


def test_it_is_for_postgresql_only(tmp_path: object) -> None:
    sqlite = Store(f"sqlite:///{tmp_path}/a.db")
    with pytest.raises(ValueError, match="PostgreSQL"):
        AsyncJobInserts(sqlite)
    assert GroupCommit(sqlite).job_inserts is None
