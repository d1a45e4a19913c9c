"""The chaos suite (issue 19): a real ``axc up`` under load from the real client, each
fault injected at random moments, on both stores; after each, every promise of
docs/reliability.md holds: every acknowledged job found, none run twice or lost, none
stuck, each charged its run time (accruals included), no hold left, balances equal to
the ledger, no key that made two jobs. Bounded: a round is about a minute.
``benchmarks/chaos.py`` runs many rounds and prints the counts."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.chaos.harness import chaos, run_round


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
@pytest.mark.parametrize(
    "faults",
    [["kill9", "kill9"], ["db_outage", "db_outage"], ["db_terminate"], ["second_controller"]],
    ids="+".join,
)
def test_promises_hold_under(store: str, faults: list[str], tmp_path: Path) -> None:
    rng = random.Random()
    with chaos(tmp_path, store, dict(os.environ)) as ctx:
        counts = run_round(ctx, faults, rng)
    print(store, faults, counts.row())  # shown with -s
    assert counts.acknowledged > 0
    assert counts.broken == {}, counts.row()


@pytest.mark.parametrize("faults", [["pg_restart", "pg_stop"]], ids="+".join)
def test_promises_hold_when_postgresql_restarts_and_stops(
    faults: list[str], tmp_path: Path
) -> None:
    """The server itself restarted (``-m fast``) and stopped for seconds, under load."""
    with chaos(tmp_path, "postgresql", dict(os.environ)) as ctx:
        counts = run_round(ctx, faults, random.Random())
    print(faults, counts.row())
    assert counts.acknowledged > 0
    assert counts.retries > 0, "the faults never reached a client"
    assert counts.broken == {}, counts.row()
