"""Running balances (``allocation_balances``, migration 0007) against the ledger's sums:
filled from an existing ledger by the migration, kept by every later insert, also by
concurrent transactions on PostgreSQL; ``balance`` and the scheduler's budgets read them.

The property test (``test_ledger_property.py``) checks them after every step of random
sequences of admissions, preemptions, restarts and cancellations.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import insert, text
from sqlalchemy.orm import Session, load_only

from axcenter.accounting.budgets import load_budgets
from axcenter.accounting.ledger import balance
from axcenter.model.ids import new_id
from axcenter.store import orm
from axcenter.store.db import MIGRATIONS, Store
from tests.accounting import (
    allocation,
    at,
    ledger_sums,
    price,
    program,
    project,
    running_sums,
)

START = at("2025-03-01")


@pytest.fixture
def bare(db: tuple[str, str | None]) -> Iterator[Store]:
    """A store with no schema yet: each test migrates it as far as it needs."""
    url, schema = db
    s = Store(url, schema)
    yield s
    s.dispose()


def migrate(store: Store, revision: str, *, down: bool = False) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:
        if store.schema:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{store.schema}"'))
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def entry(a: orm.Allocation, kind: str, gpu_type: str, secs: int, won: int) -> orm.LedgerEntry:
    return orm.LedgerEntry(
        at=START,
        kind=kind,
        allocation_id=a.id,
        program_id=a.program_id,
        project_id=a.project_id,
        job_id=None,
        gpu_type=gpu_type,
        gpu_seconds=secs,
        amount_won=won,
        public_won=won if kind == "charge" else 0,
        copay_won=0,
    )


def legacy_organization(s: Session, name: str) -> orm.Organization:
    """An organization written with the columns revision 0006 has (a Core insert names
    only them; the ORM would also write the columns later revisions added)."""
    org_id = new_id("org")
    s.execute(insert(orm.Organization.__table__).values(id=org_id, name=name, created_at=START))
    org = s.get(orm.Organization, org_id, options=[load_only(orm.Organization.id)])
    assert org is not None
    return org


def legacy_book(s: Session, rows: list[orm.LedgerEntry]) -> None:
    """Ledger rows with the columns revision 0006 has (see ``legacy_organization``)."""
    s.flush()
    columns = ("at", "kind", "allocation_id", "program_id", "project_id", "job_id",
               "gpu_type", "gpu_seconds", "amount_won", "public_won", "copay_won")  # fmt: skip
    s.execute(
        insert(orm.LedgerEntry.__table__), [{c: getattr(r, c) for c in columns} for r in rows]
    )


def grants(s: Session) -> tuple[orm.Allocation, orm.Allocation, orm.Allocation]:
    prog = program(s, "voucher", 10**9, public_share_bp=10_000)
    org = legacy_organization(s, "org")
    end = START + timedelta(days=30)
    both = {"H100": (10**6, 10**6), "A100": (10**6, 10**6)}
    a = allocation(s, project(s, "a", org, prog), prog, START, end, both)
    b = allocation(s, project(s, "b", org, prog), prog, START, end, {"H100": (10**6, 10**6)})
    idle = allocation(s, project(s, "c", org, prog), prog, START, end, {"H100": (10**6, 10**6)})
    return a, b, idle


def book(s: Session, a: orm.Allocation, b: orm.Allocation, n: int) -> None:
    """Runs of several sizes on two allocations and GPU types, some still held."""
    rows = []
    for i in range(n):
        alloc, gpu_type = [(a, "H100"), (a, "A100"), (b, "H100")][i % 3]
        secs, won = 3_615 * (i % 4 + 1), 1_003 * (i % 5 + 1)
        rows.append(entry(alloc, "hold", gpu_type, secs, won))
        if i % 4 != 3:  # every fourth run is still running
            rows.append(entry(alloc, "release", gpu_type, secs, won))
            rows.append(entry(alloc, "charge", gpu_type, secs // (i % 3 + 1), won // (i % 3 + 1)))
    legacy_book(s, rows)


def test_migration_fills_the_balances_from_the_ledger_and_inserts_keep_them(
    bare: Store,
) -> None:
    migrate(bare, "0006")
    with bare.write() as s:
        a, b, idle = grants(s)
        book(s, a, b, 23)
    migrate(bare, "head")
    with bare.read() as s:
        sums = ledger_sums(s)
        assert set(sums) == {(a.id, "H100"), (a.id, "A100"), (b.id, "H100")}
        assert running_sums(s) == sums
        left = balance(s, a.id)
        types = ("H100", "A100")
        held = sum(sums[a.id, t][0] for t in types)
        charged = sum(sums[a.id, t][1] for t in types)
        assert (left.held_won, left.charged_won) == (held, charged)
        assert held > 0 and charged > 0
        assert left.used_gpu_seconds == {t: sums[a.id, t][2] + sums[a.id, t][3] for t in types}
        assert balance(s, idle.id).used_gpu_seconds == {}
    with bare.write() as s:  # the trigger carries on from the backfill
        book(s, a, b, 7)
    with bare.read() as s:
        assert running_sums(s) == ledger_sums(s)
    migrate(bare, "0006", down=True)  # and down and up again fills them again
    migrate(bare, "head")
    with bare.read() as s:
        assert running_sums(s) == ledger_sums(s)


def race(store: Store, a: orm.Allocation) -> None:
    """Two transactions book on ``a``'s H100 at once: the first has inserted (and holds the
    balance row) when the second inserts, and commits a moment later."""
    first_flushed, second_started = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with store.write() as s:
                s.add(entry(a, "hold", "H100", 100, 10))
                s.flush()
                first_flushed.set()
                assert second_started.wait(10)
                time.sleep(0.3)  # the second now waits for this row
        except BaseException as exc:
            errors.append(exc)
            first_flushed.set()

    def second() -> None:
        try:
            assert first_flushed.wait(10)
            with store.write() as s:
                second_started.set()
                s.add(entry(a, "charge", "H100", 7, 3))
                s.add(entry(a, "hold", "H100", 50, 5))
                s.flush()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors


def test_concurrent_transactions_add_up(store: Store) -> None:
    """On PostgreSQL the second waits for the first's row, then adds to what it committed:
    nothing is lost, whether the row is created by the race or already there."""
    if store.is_sqlite:
        pytest.skip("SQLite has one writer at a time (Store.write serialises them)")
    with store.write() as s:
        a, _, _ = grants(s)
    for n in (1, 2):
        race(store, a)
        with store.read() as s:
            assert running_sums(s, a.id) == {(a.id, "H100"): (15 * n, 3 * n, 150 * n, 7 * n)}
            assert running_sums(s) == ledger_sums(s)


def test_budgets_are_the_balances_of_the_current_allocations(store: Store) -> None:
    with store.write() as s:
        a, b, idle = grants(s)
        price(s, "H100", 2_750, START - timedelta(days=1))
        book(s, a, b, 11)
        budgets = load_budgets(s, START + timedelta(days=1), 15)
        for alloc in (a, b, idle):
            left = balance(s, alloc.id)
            budget = budgets[alloc.project_id]
            assert budget.won_left == left.won_left
            assert budget.gpu_seconds_left == left.gpu_seconds_left()
        assert budgets[a.project_id].prices == {"H100": 2_750}
