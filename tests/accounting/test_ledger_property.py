"""Holds and charges under any sequence of admissions, preemptions, restarts, cancellations,
launch failures, timeouts and price changes, on the real store (both databases).

The test keeps its own model of every run (GPUs, start, end, whether it was funded, the
price in force when it started) and checks the ledger against it:

- after every step, no allocation's won or GPU-seconds left is below zero, and the running
  balances (``allocation_balances``, which ``balance`` reads) equal the ledger's sums;
- every funded run is charged exactly ``rate(gpu_seconds(gpus, run seconds), price)``,
  split so that public + co-pay = amount; unfunded runs are charged nothing;
- at the end every hold is released: nothing stays held.

Each example builds its own program, project, allocation and GPU type (so its own price
book), so examples share the store but nothing they are checked on.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from axcenter.accounting.ledger import (
    InsufficientFunds,
    balance,
    current_allocation,
    hold,
    settle,
)
from axcenter.model.access import Role
from axcenter.model.money import gpu_seconds, rate
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

TIME_LIMIT_S = 3_600
GRACE_S = 15  # the hold covers the time limit plus this
GPUS = (1, 2, 4)  # one job of each size
START = at("2025-03-01")
_names = itertools.count()


@dataclass
class Run:
    started: datetime
    funded: bool
    price: int


@dataclass
class World:
    s: Session
    alloc: orm.Allocation
    jobs: list[str]
    project_id: str
    gpu_type: str
    clock: datetime = START
    prices: dict[datetime, int] = field(default_factory=dict)
    running: dict[int, Run] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    expected: int = 0  # won the funded runs must have been charged
    charged: int = 0  # won ``settle`` said it charged

    def price_now(self) -> int:
        return self.prices[max(t for t in self.prices if t <= self.clock)]

    def admit(self, j: int, *, launch_fails: bool = False) -> None:
        if j in self.running or j in self.done:
            return
        current = current_allocation(self.s, self.project_id, self.gpu_type, self.clock)
        funded = True
        try:
            if current is None:
                raise InsufficientFunds("no allocation")
            secs = TIME_LIMIT_S + GRACE_S
            hold(self.s, current, self.jobs[j], self.gpu_type, GPUS[j], secs, self.clock)
        except InsufficientFunds:
            if self.alloc.on_exhaustion != "preemptible":
                event("a job waits for budget")
                return  # it waits (reason: budget)
            funded = False  # it runs unfunded, as a preemptible borrower
        self.s.flush()
        self.running[j] = Run(self.clock, funded, self.price_now())
        if launch_fails:
            self.end(j, self.clock, terminal=True)

    def end(self, j: int, ended: datetime, *, terminal: bool) -> None:
        """The run of ``j`` ends at ``ended`` (finished, cancelled, timed out, failed:
        ``terminal``; preempted or lost in a restart: requeued)."""
        run = self.running.pop(j)
        won = settle(self.s, self.jobs[j], GPUS[j], run.started, ended, ended)
        self.s.flush()
        seconds = (ended - run.started).total_seconds()
        event("funded run" if run.funded else "unfunded run")
        if run.funded:
            assert won is not None
            self.expected += rate(gpu_seconds(GPUS[j], seconds), run.price)
            self.charged += won
        else:
            assert won is None, "an unfunded run must not be charged"
        if terminal:
            self.done.add(j)

    def tick(self, seconds: float) -> None:
        """Time passes; the executor ends runs at their time limit (plus up to the kill
        grace, which the hold covers)."""
        self.clock += timedelta(seconds=seconds)
        for j, run in list(self.running.items()):
            limit = run.started + timedelta(seconds=TIME_LIMIT_S + GRACE_S * 0.6)
            if self.clock >= limit:
                self.end(j, limit, terminal=True)

    def set_price(self, won: int) -> None:
        """A new price from the next second on (prices are never retroactive)."""
        effective = self.clock + timedelta(seconds=1)
        if effective not in self.prices:
            price(self.s, self.gpu_type, won, effective)
            self.prices[effective] = won

    def check_envelopes(self) -> None:
        self.s.flush()
        assert running_sums(self.s, self.alloc.id) == ledger_sums(self.s, self.alloc.id)
        left = balance(self.s, self.alloc.id)
        assert left.won_left >= 0, left
        assert all(v >= 0 for v in left.gpu_seconds_left().values()), left


#: operations, the common ones listed more than once so that sequences do something
NAMES = (
    ("admit",) * 4
    + ("tick",) * 4
    + ("finish",) * 2
    + (
        "preempt",
        "restart",
        "cancel",
        "fail_launch",
        "price",
    )
)
#: (operation, job index, seconds (whole or half) for a tick, won per GPU-hour for a price)
OPS = st.tuples(
    st.sampled_from(NAMES),
    st.integers(0, len(GPUS) - 1),
    st.integers(0, 2_500).map(lambda s: s / 2),
    st.integers(0, 9_000),
)


def build(s: Session, won: int, secs: int, on_exhaustion: str, first_price: int) -> World:
    n = next(_names)
    prog = program(s, f"program-{n}", 10**9, public_share_bp=7_777)
    org = organization(s, f"org-{n}")
    prj = project(s, f"project-{n}", org, prog)
    user = create_user(s, f"user-{n}", org.id, Role.MEMBER)
    gpu_type = f"T{n}"
    alloc = allocation(
        s, prj, prog, START, START + timedelta(days=30), {gpu_type: (secs, won)}, on_exhaustion
    )
    jobs = [job(s, prj, user, START, gpu_type=gpu_type, state="pending").id for _ in GPUS]
    price(s, gpu_type, first_price, START - timedelta(days=1))
    world = World(s, alloc, jobs, prj.id, gpu_type)
    world.prices[START - timedelta(days=1)] = first_price
    return world


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    # envelopes: often whole multiples of a 1-GPU hold (exact fits), else anything
    won=st.one_of(st.integers(1, 12).map(lambda n: n * 9_037), st.integers(0, 60_000)),
    secs=st.one_of(st.integers(1, 12).map(lambda n: n * 3_615), st.integers(0, 60_000)),
    on_exhaustion=st.sampled_from(["stop", "preemptible"]),
    first_price=st.integers(0, 9_000),
    ops=st.lists(OPS, min_size=5, max_size=40),
)
def test_charges_equal_rated_usage_and_envelopes_never_go_negative(
    store: Store,
    won: int,
    secs: int,
    on_exhaustion: str,
    first_price: int,
    ops: list[tuple[str, int, float, int]],
) -> None:
    with store.write() as s:
        w = build(s, won, secs, on_exhaustion, first_price)
        for op, j, seconds, won_per_hour in ops:
            if op == "admit":
                w.admit(j)
            elif op == "fail_launch":
                w.admit(j, launch_fails=True)
            elif op == "tick":
                w.tick(seconds)
            elif op == "restart":  # the service restarts: every run is lost and requeued
                for k in list(w.running):
                    w.end(k, w.clock, terminal=False)
            elif op == "price":
                w.set_price(won_per_hour)
            elif j in w.running:
                w.end(j, w.clock, terminal=op != "preempt")
            elif op == "cancel":
                w.done.add(j)  # a pending job is cancelled without touching the ledger
            w.check_envelopes()
        for k in list(w.running):  # the world ends: every run finishes now
            w.end(k, w.clock, terminal=True)
        w.check_envelopes()
        rows = s.execute(
            select(
                orm.LedgerEntry.kind,
                func.coalesce(func.sum(orm.LedgerEntry.amount_won), 0),
                func.coalesce(func.sum(orm.LedgerEntry.gpu_seconds), 0),
                func.count(),
            )
            .where(orm.LedgerEntry.allocation_id == w.alloc.id)
            .group_by(orm.LedgerEntry.kind)
        ).all()
        sums = {kind: (int(won_), int(secs_), n) for kind, won_, secs_, n in rows}
        charged = sums.get("charge", (0, 0, 0))
        assert charged[0] == w.expected == w.charged
        assert sums.get("hold", (0, 0, 0)) == sums.get("release", (0, 0, 0)), "a hold is open"
        left = balance(s, w.alloc.id)
        assert left.held_won == 0
        assert left.charged_won == charged[0]
        assert left.used_gpu_seconds.get(w.gpu_type, 0) == charged[1]
        bad = s.scalar(
            select(func.count()).where(
                orm.LedgerEntry.allocation_id == w.alloc.id,
                orm.LedgerEntry.kind == "charge",
                orm.LedgerEntry.public_won + orm.LedgerEntry.copay_won
                != orm.LedgerEntry.amount_won,
            )
        )
        assert bad == 0


def test_two_holds_in_one_transaction_see_each_other(store: Store) -> None:
    with store.write() as s:
        w = build(s, won=9_038, secs=2 * 3_615, on_exhaustion="stop", first_price=9_000)
        hold(s, w.alloc, w.jobs[0], w.gpu_type, 1, TIME_LIMIT_S + GRACE_S, w.clock)
        # no flush here, as between two admissions of one control cycle
        try:
            hold(s, w.alloc, w.jobs[1], w.gpu_type, 1, TIME_LIMIT_S + GRACE_S, w.clock)
        except InsufficientFunds:
            return
        s.flush()
        left = balance(s, w.alloc.id)
    assert left.won_left >= 0, f"two holds fit in one allocation that pays for one: {left}"
