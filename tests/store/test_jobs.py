"""Job writes on both backends: submission, the transition gate, device leases.

Every test runs on SQLite and PostgreSQL through the ``store`` fixture.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError, StatementError

from axcenter.model.access import Role
from axcenter.model.cluster import Allocation
from axcenter.model.ids import new_id
from axcenter.model.jobs import JobState, check_transition
from axcenter.store import orm
from axcenter.store.accounts import create_organization, create_user
from axcenter.store.db import Store
from axcenter.store.group_commit import GroupCommit
from axcenter.store.jobs import (
    NEXT_ATTEMPT,
    NewJob,
    insert_jobs,
    release_leases,
    take_leases,
    transition,
)

T0 = datetime(2026, 3, 1, 9, 0, 0, 123456, tzinfo=UTC)

S = JobState


@dataclass(frozen=True)
class Seed:
    organization_id: str
    user_id: str
    other_user_id: str
    project_id: str
    node_ids: tuple[str, str]


@pytest.fixture
def seed(store: Store) -> Seed:
    """An organization with two users, a project and two 4-GPU nodes."""
    with store.write() as session:
        org = create_organization(session, "Hanbit Motors")
        user = create_user(session, "kim", org.id, Role.MEMBER)
        other = create_user(session, "lee", org.id, Role.MEMBER)
        project = orm.Project(
            id=new_id("prj"), name="hanbit-adas", organization_id=org.id, sector="automotive"
        )
        session.add(project)
        node_ids = []
        for name in ("gpu-01", "gpu-02"):
            row = orm.Node(
                id=new_id("nod"),
                name=name,
                gpu_type="H100",
                gpu_count=4,
                cpus=64,
                memory_mb=512_000,
                state="up",
                logical=True,
            )
            session.add(row)
            node_ids.append(row.id)
        session.flush()
        return Seed(org.id, user.id, other.id, project.id, (node_ids[0], node_ids[1]))


def new_job(
    seed: Seed,
    *,
    user_id: str | None = None,
    key: str | None = None,
    submitted_at: datetime = T0,
) -> NewJob:
    return NewJob(
        id=new_id("job"),
        project_id=seed.project_id,
        user_id=user_id or seed.user_id,
        name="train",
        command=["python", "train.py"],
        workdir="/tmp",
        env={"A": "1"},
        gpus_per_node=2,
        nodes=1,
        cpus_per_node=4,
        memory_mb_per_node=8192,
        time_limit_s=600,
        priority=0,
        gpu_types=["H100"],
        idempotency_key=key,
        submitted_at=submitted_at,
    )


def submit(
    store: Store,
    seed: Seed,
    *,
    user_id: str | None = None,
    key: str | None = None,
    submitted_at: datetime = T0,
) -> str:
    job = new_job(seed, user_id=user_id, key=key, submitted_at=submitted_at)
    with store.write() as session:
        insert_jobs(session, [job])
    return job.id


def move(
    store: Store, job_id: str, from_states: list[JobState], to: JobState, **fields: object
) -> JobState | None:
    with store.write() as session:
        return transition(session, job_id, from_states, to, at=T0, reason=f"to {to}", **fields)


def events(store: Store, job_id: str) -> list[tuple[str | None, str]]:
    with store.read() as session:
        rows = session.execute(
            select(orm.JobEvent.from_state, orm.JobEvent.to_state)
            .where(orm.JobEvent.job_id == job_id)
            .order_by(orm.JobEvent.id)
        ).all()
    return [(r[0], r[1]) for r in rows]


def job_row(store: Store, job_id: str) -> orm.Job:
    with store.read() as session:
        row = session.get(orm.Job, job_id)
        assert row is not None
        return row


def stored_differences(store: Store, one: str, other: str) -> dict[str, tuple[Any, Any]]:
    """The columns (but id and idempotency key) whose stored values differ between two
    jobs, with both values."""
    a, b = job_row(store, one), job_row(store, other)
    return {
        c.key: (getattr(a, c.key), getattr(b, c.key))
        for c in orm.Job.__table__.columns
        if c.key not in ("id", "idempotency_key") and getattr(a, c.key) != getattr(b, c.key)
    }


def leases(store: Store) -> set[tuple[str, int, str]]:
    with store.read() as session:
        rows = session.execute(
            select(orm.DeviceLease.node_id, orm.DeviceLease.device_index, orm.DeviceLease.job_id)
        ).all()
    return {(r[0], r[1], r[2]) for r in rows}


# --- submission ---------------------------------------------------------------------


def test_insert_jobs_writes_pending_jobs_and_their_first_event(store: Store, seed: Seed) -> None:
    jobs = [new_job(seed), new_job(seed), new_job(seed)]
    with store.write() as session:
        insert_jobs(session, jobs)
    for job in jobs:
        row = job_row(store, job.id)
        assert (row.state, row.attempts, row.reason) == ("pending", 0, None)
        assert (row.command, row.env, row.gpu_types) == (job.command, job.env, job.gpu_types)
        assert events(store, job.id) == [(None, "pending")]


def test_insert_jobs_writes_what_sqlalchemy_would(store: Store, seed: Seed) -> None:
    """The precompiled driver insert (types' bind processors, column defaults) stores the
    same values as SQLAlchemy's own insert of the same row, on either database."""
    ours, theirs = new_job(seed, key="k1"), new_job(seed, key="k2")
    ours = replace(ours, array_id="arr_1", array_index=7, env={"B": "ü €"}, gpu_types=[])
    theirs = replace(theirs, array_id="arr_1", array_index=7, env={"B": "ü €"}, gpu_types=[])
    with store.write() as session:
        insert_jobs(session, [ours])
        session.add(
            orm.Job(
                **{f: getattr(theirs, f) for f in NewJob.__dataclass_fields__},
                state="pending",
            )
        )
        session.add(orm.JobEvent(job_id=theirs.id, at=T0, to_state="pending", reason="submitted"))
    assert stored_differences(store, ours.id, theirs.id) == {}
    a = job_row(store, ours.id)
    assert a.submitted_at == T0 and a.submitted_at.tzinfo is not None
    with store.read() as session:
        ats = session.scalars(
            select(orm.JobEvent.at).where(orm.JobEvent.job_id.in_([ours.id, theirs.id]))
        ).all()
    assert ats == [T0, T0]


def test_insert_no_jobs_is_a_no_op(store: Store, seed: Seed) -> None:
    with store.write() as session:
        insert_jobs(session, [])
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(orm.Job)) == 0


# --- transitions --------------------------------------------------------------------


def test_lifecycle_to_success(store: Store, seed: Seed) -> None:
    job_id = submit(store, seed)
    assert move(store, job_id, [S.PENDING], S.ADMITTED, gpu_type="H100") is S.PENDING
    started = T0 + timedelta(seconds=5)
    assert (
        move(store, job_id, [S.ADMITTED], S.RUNNING, started_at=started, engine_ref="r42")
        is S.ADMITTED
    )
    assert move(store, job_id, [S.RUNNING], S.SUCCEEDED, exit_code=0) is S.RUNNING

    row = job_row(store, job_id)
    assert (row.state, row.reason, row.gpu_type, row.engine_ref, row.exit_code) == (
        "succeeded",
        "to succeeded",
        "H100",
        "r42",
        0,
    )
    assert row.started_at == started
    assert events(store, job_id) == [
        (None, "pending"),
        ("pending", "admitted"),
        ("admitted", "running"),
        ("running", "succeeded"),
    ]


def test_transitions_set_json_values_and_count_attempts(store: Store, seed: Seed) -> None:
    """Prebuilt statements bind each column with its type (JSON, UTC datetimes), and the
    shared ``NEXT_ATTEMPT`` as well as an expression of the caller's own add up."""
    job_id = submit(store, seed)
    placement = [{"node_id": "n1", "devices": [0, 1]}]
    assert move(store, job_id, [S.PENDING], S.ADMITTED, placement=placement) is S.PENDING
    assert move(store, job_id, [S.ADMITTED], S.RUNNING, attempts=NEXT_ATTEMPT) is S.ADMITTED
    assert move(store, job_id, [S.RUNNING], S.PREEMPTED) is S.RUNNING
    assert move(store, job_id, [S.PREEMPTED], S.PENDING) is S.PREEMPTED
    assert move(store, job_id, [S.PENDING], S.ADMITTED) is S.PENDING
    own = orm.Job.attempts + 10
    assert move(store, job_id, [S.ADMITTED], S.RUNNING, attempts=own) is S.ADMITTED
    row = job_row(store, job_id)
    assert (row.placement, row.attempts) == (placement, 11)


def test_preempted_job_is_requeued_with_its_history(store: Store, seed: Seed) -> None:
    job_id = submit(store, seed)
    for before, after in [
        (S.PENDING, S.ADMITTED),
        (S.ADMITTED, S.RUNNING),
        (S.RUNNING, S.PREEMPTED),
        (S.PREEMPTED, S.PENDING),
        (S.PENDING, S.ADMITTED),
    ]:
        assert move(store, job_id, [before], after) is before
    assert job_row(store, job_id).state == "admitted"
    assert [to for _, to in events(store, job_id)] == [
        "pending",
        "admitted",
        "running",
        "preempted",
        "pending",
        "admitted",
    ]


def test_several_from_states_match_the_current_one(store: Store, seed: Seed) -> None:
    job_id = submit(store, seed)
    move(store, job_id, [S.PENDING], S.ADMITTED)
    cancel_from = [S.PENDING, S.ADMITTED, S.RUNNING, S.PREEMPTED]
    assert move(store, job_id, cancel_from, S.CANCELLED) is S.ADMITTED
    assert events(store, job_id)[-1] == ("admitted", "cancelled")


def test_guard_from_the_wrong_state_changes_nothing(store: Store, seed: Seed) -> None:
    job_id = submit(store, seed)
    # A stale decision: the caller believes the job is running; it is still pending.
    assert move(store, job_id, [S.RUNNING], S.SUCCEEDED, exit_code=0) is None
    row = job_row(store, job_id)
    assert (row.state, row.reason, row.exit_code) == ("pending", None, None)
    assert events(store, job_id) == [(None, "pending")]


def test_cancelled_job_cannot_be_admitted_by_a_stale_plan(store: Store, seed: Seed) -> None:
    job_id = submit(store, seed)
    assert move(store, job_id, [S.PENDING], S.CANCELLED) is S.PENDING
    assert move(store, job_id, [S.PENDING], S.ADMITTED, gpu_type="H100") is None
    row = job_row(store, job_id)
    assert (row.state, row.gpu_type) == ("cancelled", None)
    assert events(store, job_id) == [(None, "pending"), ("pending", "cancelled")]


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        pytest.param([S.ADMITTED, S.RUNNING, S.SUCCEEDED], S.RUNNING, id="succeeded -> running"),
        pytest.param([S.CANCELLED], S.ADMITTED, id="cancelled -> admitted skips pending"),
        pytest.param([], S.RUNNING, id="pending -> running skips admitted"),
        pytest.param([S.ADMITTED, S.RUNNING], S.PENDING, id="running -> pending skips preempted"),
        pytest.param([S.ADMITTED, S.RUNNING, S.FAILED], S.FAILED, id="failed -> failed"),
    ],
)
def test_illegal_transition_returns_none_and_writes_nothing(
    store: Store, seed: Seed, path: list[JobState], illegal: JobState
) -> None:
    job_id = submit(store, seed)
    current = S.PENDING
    for state in path:
        assert move(store, job_id, [current], state) is current
        current = state
    before = events(store, job_id)

    # The caller names the true current state: only the lifecycle can refuse.
    assert move(store, job_id, [current], illegal) is None
    assert job_row(store, job_id).state == current.value
    assert events(store, job_id) == before


def test_unknown_job_returns_none(store: Store, seed: Seed) -> None:
    assert move(store, "job_missing", [S.PENDING], S.ADMITTED) is None
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(orm.JobEvent)) == 0


def _legal(current: JobState, target: JobState) -> bool:
    try:
        check_transition(current, target)
    except ValueError:
        return False
    return True


attempts = st.lists(
    st.tuples(
        st.sets(st.sampled_from(list(JobState)), min_size=1), st.sampled_from(list(JobState))
    ),
    max_size=8,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=attempts)
def test_state_is_always_derived_from_events(
    store: Store, seed: Seed, steps: list[tuple[set[JobState], JobState]]
) -> None:
    """After any sequence of attempts, guarded or not, legal or not, the row's state is
    the ``to_state`` of its last event and the events form a legal chain."""
    job_id = submit(store, seed)  # a fresh job per example; the store is shared
    expected = S.PENDING
    for from_states, target in steps:
        moved = expected in from_states and _legal(expected, target)
        left = move(store, job_id, sorted(from_states), target)
        assert left == (expected if moved else None), (expected, from_states, target)
        if moved:
            expected = target

    chain = events(store, job_id)
    assert job_row(store, job_id).state == chain[-1][1] == expected.value
    assert chain[0] == (None, "pending")
    for (_, prev_to), (frm, to) in pairwise(chain):
        assert frm == prev_to
        check_transition(JobState(frm), JobState(to))


# --- device leases ------------------------------------------------------------------


def test_leases_record_each_device(store: Store, seed: Seed) -> None:
    n1, n2 = seed.node_ids
    job_id = submit(store, seed)
    with store.write() as session:
        take_leases(session, job_id, [Allocation(n1, (0, 1), 4, 8192), Allocation(n2, (0,), 4, 1)])
    assert leases(store) == {(n1, 0, job_id), (n1, 1, job_id), (n2, 0, job_id)}


def test_a_held_device_cannot_be_leased_again(store: Store, seed: Seed) -> None:
    n1, n2 = seed.node_ids
    holder = submit(store, seed)
    with store.write() as session:
        take_leases(session, holder, [Allocation(n1, (0, 1), 4, 8192)])
    latecomer = submit(store, seed)

    # Admission as the control loop applies it: transition and leases in one transaction.
    with pytest.raises(IntegrityError), store.write() as session:
        assert (
            transition(session, latecomer, [S.PENDING], S.ADMITTED, at=T0, reason="admitted")
            is S.PENDING
        )
        take_leases(
            session, latecomer, [Allocation(n2, (0,), 4, 8192), Allocation(n1, (1, 2), 4, 8192)]
        )

    # Rolled back as a whole: no lease, no state change, no event of the latecomer.
    assert leases(store) == {(n1, 0, holder), (n1, 1, holder)}
    assert job_row(store, latecomer).state == "pending"
    assert events(store, latecomer) == [(None, "pending")]


def test_one_placement_cannot_name_a_device_twice(store: Store, seed: Seed) -> None:
    n1, _ = seed.node_ids
    job_id = submit(store, seed)
    with pytest.raises(IntegrityError), store.write() as session:
        take_leases(session, job_id, [Allocation(n1, (3,), 1, 1), Allocation(n1, (3,), 1, 1)])
    assert leases(store) == set()


def test_same_index_on_another_node_is_a_different_device(store: Store, seed: Seed) -> None:
    n1, n2 = seed.node_ids
    a, b = submit(store, seed), submit(store, seed)
    with store.write() as session:
        take_leases(session, a, [Allocation(n1, (0,), 1, 1)])
    with store.write() as session:
        take_leases(session, b, [Allocation(n2, (0,), 1, 1)])
    assert leases(store) == {(n1, 0, a), (n2, 0, b)}


def test_release_frees_only_the_jobs_own_devices(store: Store, seed: Seed) -> None:
    n1, _ = seed.node_ids
    a, b, c = submit(store, seed), submit(store, seed), submit(store, seed)
    with store.write() as session:
        take_leases(session, a, [Allocation(n1, (0, 1), 1, 1)])
        take_leases(session, b, [Allocation(n1, (2,), 1, 1)])
    with store.write() as session:
        release_leases(session, a)
    assert leases(store) == {(n1, 2, b)}

    with store.write() as session:
        take_leases(session, c, [Allocation(n1, (0, 1), 1, 1)])
    assert leases(store) == {(n1, 0, c), (n1, 1, c), (n1, 2, b)}

    with store.write() as session:
        release_leases(session, a)  # nothing left to release: a no-op
    assert len(leases(store)) == 3


# --- idempotency --------------------------------------------------------------------


def test_idempotency_key_is_unique_per_user(store: Store, seed: Seed) -> None:
    first = submit(store, seed, key="run-7")
    with pytest.raises(IntegrityError):
        submit(store, seed, key="run-7")
    with store.read() as session:
        ids = session.scalars(select(orm.Job.id).where(orm.Job.idempotency_key == "run-7")).all()
        assert ids == [first]
        assert session.scalar(select(func.count()).select_from(orm.JobEvent)) == 1


def test_same_key_for_another_user_is_fine(store: Store, seed: Seed) -> None:
    submit(store, seed, key="run-7")
    submit(store, seed, key="run-7", user_id=seed.other_user_id)
    submit(store, seed, key="run-8")
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(orm.Job)) == 3


def test_jobs_without_a_key_never_collide(store: Store, seed: Seed) -> None:
    submit(store, seed)
    submit(store, seed)
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(orm.Job)) == 2


def test_a_batch_with_a_duplicate_key_is_rejected_whole(store: Store, seed: Seed) -> None:
    batch = [new_job(seed, key="a"), new_job(seed, key="b"), new_job(seed, key="a")]
    with pytest.raises(IntegrityError), store.write() as session:
        insert_jobs(session, batch)
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(orm.Job)) == 0
        assert session.scalar(select(func.count()).select_from(orm.JobEvent)) == 0


def test_a_duplicate_key_in_a_group_commit_fails_alone(store: Store, seed: Seed) -> None:
    """Submissions sharing a group commit: the one whose key was taken gets SQLAlchemy's
    IntegrityError (the service replays the earlier job on it), even where the inserts'
    errors only arrive with the batch's end (PostgreSQL's pipeline); the others commit."""
    first = submit(store, seed, key="run-7")
    jobs = [new_job(seed, key="run-8"), new_job(seed, key="run-7"), new_job(seed)]

    def inserting(job: NewJob) -> Callable[[Connection], str]:
        def work(conn: Connection) -> str:
            insert_jobs(conn, [job])
            return job.id

        return work

    async def burst() -> list[str | BaseException]:
        works = [writes.arun(inserting(job)) for job in jobs]
        return await asyncio.gather(*works, return_exceptions=True)

    writes = GroupCommit(store)
    writes.start()
    try:
        ok_1, duplicate, ok_2 = asyncio.run(burst())
    finally:
        writes.close()
    assert isinstance(duplicate, IntegrityError), duplicate
    assert (ok_1, ok_2) == (jobs[0].id, jobs[2].id)
    with store.read() as session:
        assert set(session.scalars(select(orm.Job.id))) == {first, ok_1, ok_2}
        events = session.scalars(select(orm.JobEvent.job_id)).all()
        assert sorted(events) == sorted([first, ok_1, ok_2])


# --- timestamps ---------------------------------------------------------------------


def test_timestamps_come_back_timezone_aware_utc(store: Store, seed: Seed) -> None:
    seoul = timezone(timedelta(hours=9))
    submitted = datetime(2026, 3, 1, 18, 0, 0, 250_000, tzinfo=seoul)
    job_id = submit(store, seed, submitted_at=submitted)
    ended = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    move(store, job_id, [S.PENDING], S.CANCELLED, ended_at=ended)

    row = job_row(store, job_id)
    assert row.submitted_at == submitted  # the same instant
    assert row.submitted_at.utcoffset() == timedelta(0)
    assert row.submitted_at.replace(tzinfo=None) == datetime(2026, 3, 1, 9, 0, 0, 250_000)
    assert row.ended_at == ended and row.ended_at.utcoffset() == timedelta(0)
    with store.read() as session:
        at = session.scalars(select(orm.JobEvent.at).where(orm.JobEvent.job_id == job_id)).all()
        created = session.scalars(select(orm.Organization.created_at)).all()
    assert at and all(t.utcoffset() == timedelta(0) for t in at)
    assert created and all(t.utcoffset() == timedelta(0) for t in created)


def test_naive_datetimes_are_refused(store: Store, seed: Seed) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        submit(store, seed, submitted_at=datetime(2026, 3, 1, 9, 0))
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(orm.Job)) == 0
