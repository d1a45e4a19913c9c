"""Accrual charges: long runs charged as they run, settled exactly at their end
(docs/accounting.md, "Accrual"), on both stores."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, true
from sqlalchemy.exc import IntegrityError

from axcenter.accounting.accrual import accrual, boundaries, post_accruals
from axcenter.accounting.burndown import burndown, project_burndown
from axcenter.accounting.ledger import balance, cumulative, hold, settle_job, settle_jobs
from axcenter.accounting.settlement import statement
from axcenter.model.access import Role
from axcenter.model.ids import new_id
from axcenter.model.terms import Modifier, ProgramRules, Terms
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

SEOUL = ZoneInfo("Asia/Seoul")
START = at("2025-03-01", "09:17:23")
PRICE = 3_001  # won per GPU-hour: odd, so that every period rounds


def _center(store: Store, rules: ProgramRules | None = None, gpus: int = 3) -> dict[str, str]:
    """A program (80% public) with ``rules``, a grant and a running job ``run``; and its
    ``twin``: the same job in a program of the same terms that does not accrue, whose one
    charge is what the run's accruals and final charge must add up to."""
    ids: dict[str, str] = {}
    with store.write() as s:
        org = organization(s, "Hanbit", "SME", "Gwangju")
        user = create_user(s, "hana", org.id, Role.MEMBER)
        price(s, "H100", PRICE, START - timedelta(days=30))
        ids["org"] = org.id
        twin_rules = replace(rules or ProgramRules(), accrual_period="off")
        for name, r in (("run", rules), ("twin", twin_rules)):
            prog = program(s, f"Gwangju AI {name}", 10**10, public_share_bp=8_000)
            if r is not None:
                s.add(
                    orm.ProgramRule(
                        id=new_id("rul"),
                        program_id=prog.id,
                        effective_from=START - timedelta(days=1),
                        rules=r.to_json(),
                        created_at=START,
                    )
                )
            prj = project(s, f"hanbit-{name}", org, prog)
            alloc = allocation(
                s,
                prj,
                prog,
                START - timedelta(days=1),
                START + timedelta(days=90),
                {"H100": (10**9, 10**10)},
            )
            j = job(s, prj, user, START, START, state="running", gpus=gpus, alloc=alloc)
            hold(s, alloc, j.id, "H100", gpus, 40 * 86_400, START)
            ids[name] = j.id
            if name == "run":
                ids["program"], ids["alloc"] = prog.id, alloc.id
    return ids


def _entries(store: Store, job_id: str) -> list[orm.LedgerEntry]:
    with store.read() as s:
        return list(
            s.scalars(
                select(orm.LedgerEntry)
                .where(orm.LedgerEntry.job_id == job_id)
                .order_by(orm.LedgerEntry.id)
            )
        )


def _charged(rows: list[orm.LedgerEntry]) -> tuple[int, int, int, int, int]:
    """(GPU-seconds, list won, won, public, company) of a job's charges and accruals."""
    charges = [r for r in rows if r.kind in ("charge", "accrual")]
    return (
        sum(r.gpu_seconds for r in charges),
        sum(r.list_won or 0 for r in charges),
        sum(r.amount_won for r in charges),
        sum(r.public_won for r in charges),
        sum(r.copay_won for r in charges),
    )


def test_accruals_and_the_final_charge_add_up_to_the_one_charge(store: Store) -> None:
    rules = ProgramRules(self_paid_bp=2_500, modifiers=(Modifier("region", 3_333, "Gwangju"),))
    ids = _center(store, rules)
    end = START + timedelta(hours=26, minutes=41, seconds=7, milliseconds=600)
    posted_at = [START + timedelta(minutes=50), START + timedelta(hours=5, minutes=3), end]
    held_before = None
    for now in posted_at[:2]:
        with store.write() as s:
            post_accruals(s, now, period="hour", zone=SEOUL)
            b = balance(s, ids["alloc"])
            if held_before is not None:
                assert b.held_won < held_before  # the hold shrinks as the run is charged
            held_before = b.held_won
    accruals = [r for r in _entries(store, ids["run"]) if r.kind == "accrual"]
    # the hours that ended after the start, up to 14:03: 10, 11, 12, 13, 14 (each entry
    # dated the last microsecond of the hour it charges)
    assert [(r.at + timedelta(microseconds=1)).hour for r in accruals] == [10, 11, 12, 13, 14]
    assert all(r.at.minute == 59 and r.at.microsecond == 999_999 for r in accruals)
    with store.write() as s:
        settle_jobs(s, [(ids["run"], end), (ids["twin"], end)])
        assert ledger_sums(s) == running_sums(s)
        assert balance(s, ids["alloc"]).held_won == 0
    run, twin = _entries(store, ids["run"]), _entries(store, ids["twin"])
    assert _charged(run) == _charged(twin)
    assert [r.kind for r in twin] == ["hold", "release", "charge"]
    t = Terms(3_333, 7_500, "")
    one = cumulative(3, START, end, 10**12, 10**12, PRICE, t)
    assert _charged(run)[:4] == (one.gpu_seconds, one.list_won, one.won, one.public_won)
    assert all(r.amount_won >= 0 and r.public_won >= 0 and r.copay_won >= 0 for r in run)
    assert [r.kind for r in run].count("charge") == 1  # one run, one final charge
    assert all(r.terms == "region Gwangju -33.33%; self-paid 25%" for r in run if r.list_won)


def test_many_short_periods_round_once(store: Store) -> None:
    """Every 7 seconds for an hour and a half: 772 entries of a few won each, whose sum
    is still the run's one charge to the won (each entry is a difference of totals)."""
    ids = _center(store, ProgramRules(modifiers=(Modifier("region", 5_000, "Gwangju"),)))
    end = START + timedelta(hours=1, minutes=30, seconds=2, milliseconds=500)
    with store.write() as s:
        post_accruals(s, START + timedelta(minutes=31), period="7s", zone=UTC)
    with store.write() as s:
        post_accruals(s, end, period="7s", zone=UTC)
        settle_jobs(s, [(ids["run"], end), (ids["twin"], end)])
    run = _entries(store, ids["run"])
    assert sum(r.kind == "accrual" for r in run) == 772
    assert _charged(run) == _charged(_entries(store, ids["twin"]))


def test_an_accrual_is_posted_once(store: Store) -> None:
    ids = _center(store)
    now = START + timedelta(hours=3, minutes=1)
    with store.write() as s:
        assert post_accruals(s, now, period="hour", zone=UTC) == 3  # 11:00, 12:00, 13:00
    with store.write() as s:  # again, as a restarted controller would: nothing new
        assert post_accruals(s, now, period="hour", zone=UTC) == 0
    first = next(r for r in _entries(store, ids["run"]) if r.kind == "accrual")
    # a second writer that ignored the watermark: the store itself refuses the entry
    with pytest.raises(IntegrityError), store.write() as s:
        s.add(
            orm.LedgerEntry(
                at=first.at,
                kind="accrual",
                allocation_id=first.allocation_id,
                program_id=first.program_id,
                project_id=first.project_id,
                job_id=first.job_id,
                gpu_type="H100",
                gpu_seconds=1,
                amount_won=1,
                public_won=1,
                copay_won=0,
                list_won=1,
            )
        )
    with store.read() as s:
        assert ledger_sums(s) == running_sums(s)


def test_an_end_learned_late_is_settled_by_a_negative_final_charge(store: Store) -> None:
    ids = _center(store)
    with store.write() as s:
        post_accruals(s, START + timedelta(hours=2, minutes=5), period="hour", zone=UTC)
    end = START + timedelta(hours=1, minutes=1)  # before the 11:00 accrual was posted
    with store.write() as s:
        settle_jobs(s, [(ids["run"], end), (ids["twin"], end)])
    run = _entries(store, ids["run"])
    assert run[-1].kind == "charge" and run[-1].amount_won < 0
    assert _charged(run) == _charged(_entries(store, ids["twin"]))
    with store.read() as s:
        assert balance(s, ids["alloc"]).held_won == 0


def test_a_requeued_run_settles_its_own_accruals(store: Store) -> None:
    """A job preempted after accruing, then run again: each run's charges are its own."""
    ids = _center(store, gpus=1)
    first_end = START + timedelta(hours=2, minutes=30)
    with store.write() as s:
        post_accruals(s, first_end, period="hour", zone=UTC)
        settle_job(s, ids["run"], first_end)
        s.execute(
            orm.Job.__table__.update()
            .where(orm.Job.id == ids["run"])
            .values(started_at=first_end + timedelta(minutes=10))
        )
        alloc = s.get(orm.Allocation, ids["alloc"])
        assert alloc is not None
        hold(s, alloc, ids["run"], "H100", 1, 86_400, first_end)
    second_end = first_end + timedelta(hours=3)
    with store.write() as s:
        post_accruals(s, second_end, period="hour", zone=UTC)
        settle_job(s, ids["run"], second_end)
        assert ledger_sums(s) == running_sums(s)
    rows = _entries(store, ids["run"])
    assert [r.kind for r in rows].count("charge") == 2
    secs = sum(r.gpu_seconds for r in rows if r.kind in ("charge", "accrual"))
    assert secs == 2 * 3600 + 30 * 60 + 2 * 3600 + 50 * 60


def test_a_programs_period_overrides_the_centers(store: Store) -> None:
    ids = _center(store, ProgramRules(accrual_period="off"))
    with store.write() as s:
        assert post_accruals(s, START + timedelta(days=3), period="hour", zone=UTC) == 0
    with store.write() as s:
        s.add(
            orm.ProgramRule(
                id=new_id("rul"),
                program_id=ids["program"],
                effective_from=START - timedelta(hours=1),
                rules=ProgramRules(accrual_period="day").to_json(),
                created_at=START,
            )
        )
    with store.write() as s:  # daily in Seoul: midnights of March 2, 3 and 4 (KST)
        assert post_accruals(s, START + timedelta(days=3), period="hour", zone=SEOUL) == 3
    days = [
        r.at + timedelta(microseconds=1) for r in _entries(store, ids["run"]) if r.kind == "accrual"
    ]
    assert [d.astimezone(SEOUL).strftime("%d %H:%M") for d in days] == [
        "02 00:00",
        "03 00:00",
        "04 00:00",
    ]


def test_balances_burndown_and_accrued_are_right_while_jobs_run(store: Store) -> None:
    ids = _center(store, gpus=2)
    now = START + timedelta(hours=4, minutes=20)
    with store.write() as s:
        post_accruals(s, now, period="hour", zone=UTC)
    with store.read() as s:
        b = balance(s, ids["alloc"])
        live = accrual(s, now, program_id=ids["program"])
        down = burndown(s, ids["program"], now)
    # 2 GPUs accrued through 13:00: 3 h 42 m 37 s
    through = cumulative(
        2, START, at("2025-03-01", "13:00:00"), 10**12, 10**12, PRICE, Terms(0, 8_000, "")
    )
    assert b.charged_won == through.won == down.charged_won
    # what is not posted yet (20 minutes): what settling it now adds
    whole = cumulative(2, START, now, 10**12, 10**12, PRICE, Terms(0, 8_000, ""))
    assert live.accrued_won == whole.won - through.won
    assert live.runs == 1
    with store.read() as s:
        holds = s.scalar(
            select(func.sum(orm.LedgerEntry.amount_won)).where(
                orm.LedgerEntry.kind == "hold", orm.LedgerEntry.job_id == ids["run"]
            )
        )
    assert live.held_won == b.held_won == holds - through.list_won


def test_a_run_across_months_is_split_by_the_statements(store: Store) -> None:
    """Daily accrual in Seoul: a run from 20:00 on March 31 to 10:00 on April 1 (KST) is
    in March's statement for 4 hours and April's for 10."""
    ids = _center(store, gpus=1)
    started = datetime(2025, 3, 31, 20, tzinfo=SEOUL).astimezone(UTC)
    end = datetime(2025, 4, 1, 10, tzinfo=SEOUL).astimezone(UTC)
    with store.write() as s:
        s.execute(
            orm.Job.__table__.update().where(orm.Job.id == ids["run"]).values(started_at=started)
        )
    with store.write() as s:
        post_accruals(s, end, period="day", zone=SEOUL)
        settle_jobs(s, [(ids["run"], end)])

    def month(first: datetime, last: datetime) -> tuple[int, int]:
        with store.read() as s:
            rows = statement(s, ids["org"], first, last, true())
        return sum(r.gpu_seconds for r in rows), sum(r.runs for r in rows)

    march = month(datetime(2025, 3, 1, tzinfo=SEOUL), datetime(2025, 4, 1, tzinfo=SEOUL))
    april = month(datetime(2025, 4, 1, tzinfo=SEOUL), datetime(2025, 5, 1, tzinfo=SEOUL))
    assert march == (4 * 3600, 0)  # accrued, the run not ended: no run counted
    assert april == (10 * 3600, 1)


def test_period_ends() -> None:
    after = datetime(2025, 3, 1, 13, 30, tzinfo=UTC)  # 22:30 in Seoul
    through = after + timedelta(days=2)
    days = boundaries("day", SEOUL, after, through)
    assert [d.astimezone(SEOUL).isoformat() for d in days] == [
        "2025-03-02T00:00:00+09:00",
        "2025-03-03T00:00:00+09:00",
    ]
    india = ZoneInfo("Asia/Kolkata")  # +05:30: its hours end at half past, UTC
    hours = boundaries("hour", india, after, after + timedelta(hours=2))
    assert [h.strftime("%H:%M") for h in hours] == ["14:30", "15:30"]
    assert boundaries("off", UTC, after, through) == []
    assert len(boundaries("300s", UTC, after, after + timedelta(hours=1))) == 12
    assert boundaries("hour", UTC, after, after) == []


def test_the_forecast_band_on_a_hand_computed_example(store: Store) -> None:
    """Charges of 10,000 won on March 1, 7,000 on the 5th and 9th; now March 10, noon.
    The 7-day windows ending on each day (rated on the days the program has had) run
    from 10,000 won a day (March 1 alone) down to 1,000 (March 2-8): 76,000 won left
    last 7.6 days at the fastest, 76 at the slowest. A project's grants in force burn
    the same way, their won granted being the budget."""
    from tests.accounting import charge

    hour = 3600
    with store.write() as s:
        prog = program(s, "Small", 100_000, 8000, starts_at=at("2025-03-01"))
        org = organization(s, "Org")
        prj = project(s, "p", org, prog)
        a = allocation(
            s, prj, prog, at("2025-03-01"), at("2025-06-01"), {"H100": (99 * hour, 99_000)}
        )
        for day, won in (("2025-03-01", 10_000), ("2025-03-05", 7_000), ("2025-03-09", 7_000)):
            charge(s, a, "H100", hour, won, at(day, "10:00:00"))
        prog_id, prj_id = prog.id, prj.id
    now = at("2025-03-10", "12:00:00")
    with store.read() as s:
        b = burndown(s, prog_id, now)
        p = project_burndown(s, prj_id, now)
        none = project_burndown(s, prj_id, at("2025-07-01"))
    assert b.forecast == date(2025, 4, 17)  # 2,000 a day, as before
    assert (b.forecast_early, b.forecast_late) == (date(2025, 3, 18), date(2025, 5, 25))
    assert p is not None and none is None
    assert (p.budget_won, p.charged_won, p.remaining_won) == (99_000, 24_000, 75_000)
    assert p.forecast == date(2025, 4, 17)  # 75,000 at 2,000 a day: 37.5 days, to midnight
