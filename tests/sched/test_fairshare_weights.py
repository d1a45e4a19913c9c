"""Fair share across GPU types weighted by price (issue 23, point 6; docs/scheduling.md,
"Fair share across GPU types")."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from axcenter.model.snapshot import SchedulerConfig
from axcenter.sched import plan
from axcenter.sched.fairshare import held_weighted, usage_weights
from axcenter.service.center import scheduler_config
from axcenter.settings import Settings, parse_weights
from tests.builders import node, pending, running, snapshot


def test_weights_are_prices_relative_to_the_cheapest_unless_configured() -> None:
    prices = {"A100": 2000, "H100": 5000, "free": 0}
    assert usage_weights(SchedulerConfig(), prices) == {"A100": 1.0, "H100": 2.5}
    configured = SchedulerConfig(usage_weights=(("H100", 3.0),))
    assert usage_weights(configured, prices) == {"H100": 3.0}
    assert usage_weights(SchedulerConfig(), {}) == {}


def test_held_gpus_are_weighted_by_type() -> None:
    held = {("a", "H100"): 2, ("a", "A100"): 1, ("b", "A100"): 4, ("c", "L4"): 0}
    assert held_weighted(held, {"H100": 2.5}) == {"a": 6.0, "b": 4.0}


def contest(weights: dict[str, float]) -> str:
    """Project a holds 2 H100s, b holds 4 A100s; one free L4 that both heads accept:
    who gets it."""
    snap = snapshot(
        nodes=[node("h", "H100", gpus=2), node("g", "A100", gpus=4), node("l", "L4", gpus=1)],
        running=[
            running("ra", on=[("h", (0, 1))], project="prj_a"),
            running("rb", on=[("g", (0, 1, 2, 3))], project="prj_b"),
        ],
        pending=[pending("a", project="prj_a"), pending("b", project="prj_b")],
        config=SchedulerConfig(preemption=False),
    )
    (admitted,) = plan(replace(snap, usage_weights=weights), 10.0).admissions
    return admitted.job_id


def test_a_dear_type_weighs_more_in_the_order() -> None:
    assert contest({}) == "a"  # 2 GPUs held against 4: a goes first, counting GPUs
    assert contest({"H100": 3.0}) == "b"  # 2 H100s weigh 6 A100s: b goes first


def test_a_malformed_weight_setting_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="usage weight 'H100': write TYPE=WEIGHT"):
        Settings(sched_usage_weights="H100,A100=1")
    settings = Settings(sched_usage_weights="H100=2.5")
    assert scheduler_config(settings).usage_weights == (("H100", 2.5),)


def test_usage_weights_setting_is_checked() -> None:
    assert parse_weights(" H100=2.5, A100=1 ") == {"H100": 2.5, "A100": 1.0}
    assert parse_weights("") == {}
    for bad in ("H100", "H100=x", "H100=-1", "=2", "H100=inf"):
        with pytest.raises(ValueError, match="TYPE=WEIGHT"):
            parse_weights(bad)
