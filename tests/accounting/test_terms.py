"""Program rules at charge time: which discount applies, how a charge is rounded and
split, tranche splits that add up, and the ledger writing the same terms one job at a
time and in the control loop's batches, under the rules in force when the run started."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from axcenter.accounting.ledger import HoldBook, settle_job, settle_jobs
from axcenter.model.access import Role
from axcenter.model.ids import new_id
from axcenter.model.money import BP
from axcenter.model.terms import (
    Modifier,
    OrgFacts,
    ProgramRules,
    Terms,
    charge,
    terms,
    tranche_split,
)
from axcenter.store import orm
from axcenter.store.accounts import create_user
from axcenter.store.db import Store
from tests.accounting import allocation, at, job, organization, price, program, project

GWANGJU = Modifier("region", 5000, "Gwangju")
STARTUP = Modifier("startup", 3000)
SME = Modifier("size", 2000, "SME")
RULES = ProgramRules(self_paid_bp=2000, modifiers=(GWANGJU, STARTUP, SME))


@pytest.mark.parametrize(
    ("org", "discount", "label"),
    [
        (OrgFacts("Gwangju", "SME", True), 5000, "region Gwangju -50%; self-paid 20%"),
        (OrgFacts("gwangju", None, False), 5000, "region Gwangju -50%; self-paid 20%"),
        (OrgFacts("Seoul", "SME", True), 3000, "youth startup -30%; self-paid 20%"),
        (OrgFacts("Seoul", "SME", False), 2000, "size SME -20%; self-paid 20%"),
        (OrgFacts("Seoul", "large", False), 0, "self-paid 20%"),
        (OrgFacts(None, None, False), 0, "self-paid 20%"),
    ],
)
def test_the_largest_applicable_discount_counts(org: OrgFacts, discount: int, label: str) -> None:
    t = terms(RULES, 7000, org)
    assert (t.discount_bp, t.public_bp, t.label) == (discount, 8000, label)


def test_without_rules_the_programs_co_funding_applies() -> None:
    assert terms(None, 7000, OrgFacts("Gwangju")) == Terms(0, 7000, "")
    assert terms(ProgramRules(), 7000, OrgFacts()).public_bp == 7000


@pytest.mark.parametrize(
    ("list_won", "discount", "public_bp", "expected"),
    [
        (1001, 5000, 8000, (501, 400, 101)),  # discount 500.5 floored: 1001 - 500
        (1, 5000, 8000, (1, 0, 1)),
        (0, 5000, 8000, (0, 0, 0)),
        (1000, 10_000, 8000, (0, 0, 0)),
        (999, 0, 10_000, (999, 999, 0)),
    ],
)
def test_charge_rounding(
    list_won: int, discount: int, public_bp: int, expected: tuple[int, int, int]
) -> None:
    assert charge(list_won, Terms(discount, public_bp, "")) == expected


@given(
    st.integers(0, 10**12),
    st.integers(0, BP),
    st.integers(0, BP),
)
def test_a_charge_never_exceeds_its_list_price_and_its_parts_add_up(
    list_won: int, discount: int, public_bp: int
) -> None:
    won, public, company = charge(list_won, Terms(discount, public_bp, ""))
    assert 0 <= won <= list_won and public + company == won and public >= 0 and company >= 0


@given(
    st.integers(0, 10**12),
    st.lists(st.integers(1, 5000), min_size=1, max_size=12).filter(lambda xs: sum(xs) <= BP),
)
def test_tranches_add_up_to_the_grant(amount: int, head: list[int]) -> None:
    shares = (*head, BP - sum(head)) if sum(head) < BP else tuple(head)
    parts = tranche_split(amount, shares)
    assert sum(parts) == amount and all(p >= 0 for p in parts)


def test_rules_json_round_trip() -> None:
    assert ProgramRules.from_json(RULES.to_json()) == RULES
    assert ProgramRules.from_json({}) == ProgramRules()


START = at("2025-03-01")


def test_the_ledger_books_terms_in_force_at_the_runs_start(store: Store) -> None:
    """Rules change at 12:00: a run that started before is charged under the old ones,
    even though it ends after. One job at a time and in batches: the same rows."""
    change = START + timedelta(hours=12)
    with store.write() as s:
        prog = program(s, "Gwangju AI", 10**10, public_share_bp=10_000)
        price(s, "H100", 3_600, START - timedelta(days=1))
        for when, rules in (
            (START - timedelta(days=1), RULES),
            (change, ProgramRules(self_paid_bp=5000)),
        ):
            s.add(
                orm.ProgramRule(
                    id=new_id("rul"),
                    program_id=prog.id,
                    effective_from=when,
                    rules=rules.to_json(),
                    created_at=START,
                )
            )
        org = organization(s, "Hanbit", "SME", "Gwangju")
        user = create_user(s, "u", org.id, Role.MEMBER)
        ids: dict[str, list[str]] = {}
        for mode in ("one", "batch"):
            prj = project(s, f"p-{mode}", org, prog)
            alloc = allocation(
                s, prj, prog, START, START + timedelta(days=30), {"H100": (10**7, 10**7)}
            )
            runs = [
                (START + timedelta(hours=11), START + timedelta(hours=13)),  # before the change
                (START + timedelta(hours=13), START + timedelta(hours=14)),  # after it
            ]
            ids[mode] = []
            for started, ended in runs:
                j = job(s, prj, user, started, started, ended, gpus=2, state="running", alloc=alloc)
                book = HoldBook(s, started)
                funding = book.allocation(prj.id, "H100")
                assert funding is not None
                book.hold(funding, j.id, "H100", 2, 7200)
                book.write()
                ids[mode].append(j.id)
        for job_id, (_, ended) in zip(ids["one"], runs, strict=True):
            settle_job(s, job_id, ended)
        settle_jobs(s, list(zip(ids["batch"], [e for _, e in runs], strict=True)))
    with store.read() as s:
        rows = {
            mode: [
                s.execute(
                    select(
                        orm.LedgerEntry.amount_won,
                        orm.LedgerEntry.public_won,
                        orm.LedgerEntry.copay_won,
                        orm.LedgerEntry.list_won,
                        orm.LedgerEntry.terms,
                    ).where(orm.LedgerEntry.job_id == j, orm.LedgerEntry.kind == "charge")
                ).one()
                for j in ids[mode]
            ]
            for mode in ids
        }
    # 2 GPUs x 2 h at 3,600 won = 14,400 list; Gwangju -50% = 7,200; 20% self-paid
    # 2 GPUs x 1 h = 7,200 list; the new rules: no discount, 50% self-paid
    expected = [
        (7_200, 5_760, 1_440, 14_400, "region Gwangju -50%; self-paid 20%"),
        (7_200, 3_600, 3_600, 7_200, "self-paid 50%"),
    ]
    assert [tuple(r) for r in rows["one"]] == expected
    assert [tuple(r) for r in rows["batch"]] == expected
