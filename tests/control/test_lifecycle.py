"""Batched job writes (``store.lifecycle``) follow the rules of ``store.jobs.transition``,
on both databases: a job moves only from the states given and along a legal transition,
each move writes its event, a stale job is left alone, and leases are taken and freed
for many jobs at once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from axcenter.model.cluster import Allocation
from axcenter.model.jobs import JobState
from axcenter.store.db import Store
from axcenter.store.jobs import NEXT_ATTEMPT, take_leases, transition
from axcenter.store.lifecycle import (
    Move,
    movable,
    move_jobs,
    release_leases_many,
    take_leases_many,
    write_moves,
)
from tests.store.test_jobs import T0, Seed, events, job_row, leases, seed, submit

__all__ = ["seed"]  # the fixture, used by name

S = JobState


def test_moves_write_each_jobs_row_and_event(store: Store, seed: Seed) -> None:
    a, b = submit(store, seed), submit(store, seed)
    with store.write() as session:
        left = move_jobs(
            session,
            [
                Move(
                    a, T0, "admitted on gpu-01:0", {"gpu_type": "H100", "placement": [["n", [0]]]}
                ),
                Move(
                    b,
                    T0 + timedelta(seconds=1),
                    "admitted on gpu-02:1",
                    {"gpu_type": "H100", "placement": None},
                ),
            ],
            [S.PENDING],
            S.ADMITTED,
        )
    assert left == {a: S.PENDING, b: S.PENDING}
    row = job_row(store, a)
    assert (row.state, row.reason, row.gpu_type, row.placement) == (
        "admitted",
        "admitted on gpu-01:0",
        "H100",
        [["n", [0]]],
    )
    assert job_row(store, b).reason == "admitted on gpu-02:1"
    assert events(store, a) == [(None, "pending"), ("pending", "admitted")]
    with store.write() as session:
        move_jobs(
            session,
            [
                Move(
                    j,
                    T0,
                    "started",
                    {"engine_ref": "r7", "started_at": T0, "attempts": NEXT_ATTEMPT},
                )
                for j in (a, b)
            ],
            [S.ADMITTED],
            S.RUNNING,
        )
        move_jobs(  # twice in one transaction: the attempts count once per move
            session,
            [Move(a, T0, "preempted")],
            [S.RUNNING],
            S.PREEMPTED,
        )
        move_jobs(session, [Move(a, T0, "requeued")], [S.PREEMPTED], S.PENDING)
        move_jobs(session, [Move(a, T0, "admitted again")], [S.PENDING], S.ADMITTED)
        move_jobs(
            session,
            [
                Move(
                    a,
                    T0,
                    "started",
                    {"engine_ref": "r8", "started_at": T0, "attempts": NEXT_ATTEMPT},
                )
            ],
            [S.ADMITTED],
            S.RUNNING,
        )
    assert (job_row(store, a).attempts, job_row(store, a).engine_ref) == (2, "r8")
    assert (job_row(store, b).attempts, job_row(store, b).engine_ref) == (1, "r7")


def test_stale_and_illegal_moves_write_nothing(store: Store, seed: Seed) -> None:
    a, b, c = submit(store, seed), submit(store, seed), submit(store, seed)
    with store.write() as session:
        transition(session, c, [S.PENDING], S.CANCELLED, at=T0, reason="cancelled")
    with store.write() as session:
        left = move_jobs(
            session,
            [Move(j, T0, "admitted") for j in (a, c, "job_unknown", a)],
            [S.PENDING],
            S.ADMITTED,
        )
        assert left == {a: S.PENDING}  # c was cancelled meanwhile; a moved once
        # pending -> running is not a legal transition: nothing moves
        assert move_jobs(session, [Move(b, T0, "x")], [S.PENDING], S.RUNNING) == {}
        assert move_jobs(session, [], [S.PENDING], S.ADMITTED) == {}
    assert events(store, a) == [(None, "pending"), ("pending", "admitted")]
    assert events(store, b) == [(None, "pending")]
    assert job_row(store, c).state == "cancelled"


def test_moves_with_different_columns_and_end_states(store: Store, seed: Seed) -> None:
    jobs = [submit(store, seed) for _ in range(4)]
    with store.write() as session:
        move_jobs(session, [Move(j, T0, "a") for j in jobs], [S.PENDING], S.ADMITTED)
        move_jobs(session, [Move(j, T0, "s") for j in jobs], [S.ADMITTED], S.RUNNING)
        done = move_jobs(
            session,
            [
                Move(
                    jobs[0], T0, "exit code 0", {"ended_at": T0, "exit_code": 0, "engine_ref": None}
                ),
                Move(jobs[1], T0, "launch failed", {"ended_at": T0}),
            ],
            [S.RUNNING],
            S.SUCCEEDED,
        )
        assert set(done) == {jobs[0], jobs[1]}
        move_jobs(
            session, [Move(jobs[2], T0, "exit code 3", {"exit_code": 3})], [S.RUNNING], S.FAILED
        )
    assert [job_row(store, j).state for j in jobs] == [
        "succeeded",
        "succeeded",
        "failed",
        "running",
    ]
    assert job_row(store, jobs[2]).exit_code == 3


def test_a_move_read_as_movable_that_no_longer_is_fails_the_batch(store: Store, seed: Seed) -> None:
    a = submit(store, seed)
    with pytest.raises(RuntimeError, match="moved under a batch"), store.write() as session:
        current = movable(session, [a], [S.PENDING], S.ADMITTED)
        transition(session, a, [S.PENDING], S.CANCELLED, at=T0, reason="cancelled")
        write_moves(session, [Move(a, T0, "admitted")], current, S.ADMITTED)
    assert events(store, a) == [(None, "pending")]  # the whole transaction rolled back


def test_only_the_shared_attempts_expression_is_accepted(store: Store, seed: Seed) -> None:
    a = submit(store, seed)
    with pytest.raises(ValueError, match="shared expression"), store.write() as session:
        move_jobs(session, [Move(a, T0, "a", {"attempts": 5})], [S.PENDING], S.ADMITTED)


def test_leases_for_many_jobs(store: Store, seed: Seed) -> None:
    n1, n2 = seed.node_ids
    a, b, c = submit(store, seed), submit(store, seed), submit(store, seed)
    with store.write() as session:
        take_leases_many(
            session,
            [
                (a, [Allocation(n1, (0, 1), 1, 1)]),
                (b, [Allocation(n1, (2,), 1, 1), Allocation(n2, (0,), 1, 1)]),
                (c, []),
            ],
        )
        take_leases(session, c, [Allocation(n2, (3,), 1, 1)])
    assert leases(store) == {(n1, 0, a), (n1, 1, a), (n1, 2, b), (n2, 0, b), (n2, 3, c)}
    with pytest.raises(IntegrityError), store.write() as session:
        take_leases_many(
            session, [(c, [Allocation(n2, (1,), 1, 1)]), (a, [Allocation(n1, (2,), 1, 1)])]
        )
    with store.write() as session:
        release_leases_many(session, [a, c, a])
        release_leases_many(session, [])
    assert leases(store) == {(n1, 2, b), (n2, 0, b)}


def test_a_concurrent_cancel_waits_for_the_batch_on_postgresql(store: Store, seed: Seed) -> None:
    """The rows ``movable`` read stay locked: a cancel of one of them in another
    transaction waits, then finds it admitted and changes nothing."""
    if store.is_sqlite:
        pytest.skip("SQLite writers are serialised by Store.write")
    a = submit(store, seed)
    result: list[JobState | None] = []

    def cancel() -> None:
        with store.write() as other:
            result.append(transition(other, a, [S.PENDING], S.CANCELLED, at=T0, reason="c"))

    with store.write() as session:
        current = movable(session, [a], [S.PENDING], S.ADMITTED)
        thread = threading.Thread(target=cancel)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive(), "the cancel did not wait for the locked row"
        write_moves(session, [Move(a, T0, "admitted")], current, S.ADMITTED)
    thread.join(10)
    assert result == [None]
    assert events(store, a) == [(None, "pending"), ("pending", "admitted")]
