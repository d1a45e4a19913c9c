"""Money as it accrues: a running job's usage so far, rated exactly as its end will be."""

from __future__ import annotations

from datetime import timedelta

from axcenter.accounting.accrual import accrual
from axcenter.accounting.ledger import hold, settle
from axcenter.model.access import Role
from axcenter.store.accounts import create_user
from axcenter.store.db import Store
from tests.accounting import allocation, at, job, organization, price, program, project

START = at("2025-03-01", "09:00:00")


def test_a_running_job_accrues_what_settle_will_charge(store: Store) -> None:
    with store.write() as s:
        org = organization(s, "Acme")
        prog = program(s, "Voucher", 10**9)
        other = program(s, "Other", 10**9)
        prj = project(s, "acme", org, prog)
        user = create_user(s, "alice", org.id, Role.MEMBER)
        price(s, "H100", 3_000, START - timedelta(days=30))
        price(s, "H100", 9_000, START + timedelta(minutes=10))  # after the run started
        alloc = allocation(
            s,
            prj,
            prog,
            START - timedelta(days=1),
            START + timedelta(days=30),
            {"H100": (10**7, 10**8)},
        )
        run = job(s, prj, user, START, START, state="running", gpus=2, alloc=alloc)
        held = hold(s, alloc, run.id, "H100", 2, 3600, START)  # 2 GPU-hours at 3,000
        waiting = job(s, prj, user, START, None, state="admitted", alloc=alloc)
        hold(s, alloc, waiting.id, "H100", 1, 3600, START)
        run_id, waiting_id, program_id, other_id = run.id, waiting.id, prog.id, other.id
    assert held == 6_000
    now = START + timedelta(minutes=30)
    with store.read() as s:
        one = accrual(s, now, job_id=run_id)
        everything = accrual(s, now, program_id=program_id)
        assert accrual(s, now, program_id=other_id).runs == 0
        late = accrual(s, START + timedelta(hours=5), job_id=run_id)
    # 2 GPUs x 30 minutes at the price when the run started (3,000 won per GPU-hour)
    assert (one.held_won, one.accrued_won, one.runs) == (6_000, 3_000, 1)
    # the admitted job holds its worst case but has used nothing yet
    assert (everything.held_won, everything.accrued_won, everything.runs) == (9_000, 3_000, 2)
    assert late.accrued_won == 6_000  # never more than the hold
    with store.write() as s:
        charged = settle(s, run_id, 2, START, now, now)
    assert charged == one.accrued_won  # what accrued is what the end charges
    with store.read() as s:
        assert accrual(s, now, job_id=run_id).runs == 0  # released: nothing open
        assert accrual(s, now, job_id=waiting_id).held_won == 3_000


def test_accrual_applies_the_programs_terms_as_settle_does(store: Store) -> None:
    from axcenter.model.ids import new_id
    from axcenter.model.terms import Modifier, ProgramRules
    from axcenter.store import orm

    with store.write() as s:
        org = organization(s, "Hanbit", "SME", "Gwangju")
        prog = program(s, "Gwangju AI", 10**9)
        s.add(
            orm.ProgramRule(
                id=new_id("rul"),
                program_id=prog.id,
                effective_from=START - timedelta(days=1),
                rules=ProgramRules(
                    self_paid_bp=2000, modifiers=(Modifier("region", 5000, "Gwangju"),)
                ).to_json(),
                created_at=START,
            )
        )
        prj = project(s, "hanbit", org, prog)
        user = create_user(s, "hana", org.id, Role.MEMBER)
        price(s, "H100", 3_001, START - timedelta(days=30))
        alloc = allocation(
            s,
            prj,
            prog,
            START - timedelta(days=1),
            START + timedelta(days=30),
            {"H100": (10**7, 10**8)},
        )
        run = job(s, prj, user, START, START, state="running", gpus=1, alloc=alloc)
        hold(s, alloc, run.id, "H100", 1, 3600, START)
        run_id = run.id
    now = START + timedelta(minutes=37, seconds=11)
    with store.read() as s:
        accrued = accrual(s, now, job_id=run_id).accrued_won
    with store.write() as s:
        charged = settle(s, run_id, 1, START, now, now)
    # 2,231 s at 3,001 won per GPU-hour: 1,859.8 -> 1,860 won list, 50% off -> 930
    assert (accrued, charged) == (930, 930)
