"""The control loop's batches (``HoldBook``, ``settle_jobs``) write what the one-job
functions (``check_hold`` + ``record_hold``, ``settle_job``) write, on both databases.

Two twin projects get the same allocation; the jobs of one are held and settled one at
a time, those of the other in batches; every hold, refusal, charge and balance must be
the same, and the running balances must equal the ledger's sums.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from axcenter.accounting.ledger import (
    HoldBook,
    InsufficientFunds,
    balance,
    check_hold,
    current_allocation,
    record_hold,
    settle_job,
    settle_jobs,
)
from axcenter.model.access import Role
from axcenter.store import orm
from axcenter.store.accounts import create_user
from axcenter.store.db import Store
from tests.accounting import (
    allocation,
    at,
    job,
    ledger_sums,
    organization,
    price,
    program,
    project,
    running_sums,
)

START = at("2025-03-01")
LIMIT_S = 3_600
_names = itertools.count()

JOBS = st.lists(
    st.tuples(
        st.sampled_from([0, 1, 2, 4]),  # GPUs (0: a CPU job, held nothing)
        st.integers(0, 7_200),  # seconds after START it started (sets the price)
        st.integers(-5, 5_000),  # seconds it ran (negative: clock skew, ended before start)
        st.booleans(),  # whether it has a started_at
    ),
    min_size=1,
    max_size=12,
)


def twin(s: Session, n: int, gpu_type: str, won: int, secs: int) -> tuple[orm.Project, orm.User]:
    prog = program(s, f"program-{n}", 10**9, public_share_bp=6_543)
    org = organization(s, f"org-{n}")
    prj = project(s, f"project-{n}", org, prog)
    user = create_user(s, f"user-{n}", org.id, Role.MEMBER)
    allocation(s, prj, prog, START, START + timedelta(days=30), {gpu_type: (secs, won)})
    return prj, user


def ledger_of(s: Session, job_ids: list[str]) -> list[tuple[object, ...]]:
    e = orm.LedgerEntry
    rows = s.execute(
        select(e.job_id, e.kind, e.gpu_type, e.gpu_seconds, e.amount_won, e.public_won, e.copay_won)
        .where(e.job_id.in_(job_ids))
        .order_by(e.id)
    ).all()
    index = {j: i for i, j in enumerate(job_ids)}
    return [(index[r[0]], *r[1:]) for r in rows]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    # envelopes: tight (holds are refused on the way) or ample (every job is held)
    won=st.one_of(st.integers(0, 40_000), st.just(10**9)),
    secs=st.one_of(
        st.integers(1, 10).map(lambda n: n * LIMIT_S), st.integers(0, 40_000), st.just(10**9)
    ),
    prices=st.lists(st.integers(0, 9_000), min_size=1, max_size=3),
    jobs=JOBS,
    batch=st.integers(1, 5),
)
def test_batches_write_what_one_job_at_a_time_writes(
    store: Store,
    won: int,
    secs: int,
    prices: list[int],
    jobs: list[tuple[int, int, int, bool]],
    batch: int,
) -> None:
    n = next(_names)
    gpu_type = f"B{n}"
    with store.write() as s:
        for i, won_per_hour in enumerate(prices):  # a new price every 40 minutes
            price(s, gpu_type, won_per_hour, START + timedelta(minutes=40 * i))
        one, one_user = twin(s, 2 * n, gpu_type, won, secs)
        many, many_user = twin(s, 2 * n + 1, gpu_type, won, secs)
        ids_one = [job(s, one, one_user, START, gpu_type=gpu_type, gpus=g).id for g, *_ in jobs]
        ids_many = [job(s, many, many_user, START, gpu_type=gpu_type, gpus=g).id for g, *_ in jobs]
    hold_at = START + timedelta(seconds=1)
    held_one: list[int | None] = []
    with store.write() as s:  # one at a time
        for job_id, (gpus, *_) in zip(ids_one, jobs, strict=True):
            current = current_allocation(s, one.id, gpu_type, hold_at)
            assert current is not None
            try:
                won_held, gpu_secs = check_hold(s, current, gpu_type, gpus, LIMIT_S, hold_at)
            except InsufficientFunds:
                held_one.append(None)
                continue
            record_hold(s, current, job_id, gpu_type, gpu_secs, won_held, hold_at)
            held_one.append(won_held)
    held_many: list[int | None] = []
    for first in range(0, len(jobs), batch):  # in batches, one transaction each
        with store.write() as s:
            book = HoldBook(s, hold_at)
            for job_id, (gpus, *_) in list(zip(ids_many, jobs, strict=True))[first : first + batch]:
                funding = book.allocation(many.id, gpu_type)
                assert funding is not None
                try:
                    held_many.append(book.hold(funding, job_id, gpu_type, gpus, LIMIT_S))
                except InsufficientFunds:
                    held_many.append(None)
            book.write()
    assert held_many == held_one
    # the runs: started_at set (or not), then ended
    with store.write() as s:
        for ids in (ids_one, ids_many):
            for job_id, (_, start_s, _, has_start) in zip(ids, jobs, strict=True):
                row = s.get(orm.Job, job_id)
                assert row is not None
                row.started_at = START + timedelta(seconds=start_s) if has_start else None
    ends = [START + timedelta(seconds=start_s + ran) for _, start_s, ran, _ in jobs]
    charged_one = []
    with store.write() as s:
        for job_id, end in zip(ids_one, ends, strict=True):
            charged_one.append(settle_job(s, job_id, end))
    charged_many: list[int | None] = []
    for first in range(0, len(jobs), batch):
        with store.write() as s:
            done = settle_jobs(s, list(zip(ids_many, ends, strict=True))[first : first + batch])
            charged_many += [done[j] for j in ids_many[first : first + batch]]
    assert charged_many == charged_one
    with store.read() as s:
        assert ledger_of(s, ids_many) == ledger_of(s, ids_one)
        a_one = current_allocation(s, one.id, gpu_type, hold_at)
        a_many = current_allocation(s, many.id, gpu_type, hold_at)
        assert a_one is not None and a_many is not None
        assert balance(s, a_many.id) == balance(s, a_one.id)
        assert balance(s, a_many.id).held_won == 0
        assert running_sums(s, a_many.id) == ledger_sums(s, a_many.id)


def test_settling_unknown_or_unheld_jobs_charges_nothing(store: Store) -> None:
    with store.write() as s:
        prj, user = twin(s, 10_000, "Z1", 1_000, 1_000)
        unheld = job(s, prj, user, START, gpu_type="Z1").id
        assert settle_jobs(s, [(unheld, START), ("job_missing", START)]) == {
            unheld: None,
            "job_missing": None,
        }
        assert settle_jobs(s, []) == {}
        assert ledger_of(s, [unheld]) == []


def test_a_job_ended_twice_in_a_batch_settles_its_next_hold(store: Store) -> None:
    """As two ``settle_job`` calls would: the first end takes the first open hold."""
    with store.write() as s:
        price(s, "Z2", 3_600, START - timedelta(days=1))
        prj, user = twin(s, 10_001, "Z2", 10**6, 10**6)
        job_id = job(s, prj, user, START, START, gpu_type="Z2").id
        book = HoldBook(s, START)
        funding = book.allocation(prj.id, "Z2")
        assert funding is not None
        book.hold(funding, job_id, "Z2", 1, 100)
        book.hold(funding, job_id, "Z2", 1, 200)
        book.write()
        done = settle_jobs(s, [(job_id, START + timedelta(seconds=10))])
        assert done == {job_id: 10}
        kinds = [(k, secs) for _, k, _, secs, *_ in ledger_of(s, [job_id])]
        assert kinds == [("hold", 100), ("hold", 200), ("release", 100), ("charge", 10)]


def test_no_price_or_no_grant_of_the_type_refuses_the_hold(store: Store) -> None:
    with store.write() as s:
        prj, _ = twin(s, 10_002, "Z3", 10**6, 10**6)
        book = HoldBook(s, START)
        funding = book.allocation(prj.id, "Z3")
        assert funding is not None
        try:
            book.hold(funding, "job_x", "Z3", 1, 100)
        except InsufficientFunds as exc:
            assert "no price for Z3" in str(exc)
        else:
            raise AssertionError("held without a price")
        assert book.allocation(prj.id, "Z4") is None  # the allocation grants no Z4
        price(s, "Z5", 100, START - timedelta(days=1))
        book = HoldBook(s, START)
        assert book.hold(funding, "job_x", "Z5", 0, 100) == 0  # nothing of Z5 asked: fits
