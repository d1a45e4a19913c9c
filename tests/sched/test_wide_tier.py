"""A job that needs whole nodes keeps its place within its project's guarantee
(docs/scheduling.md, "Wide jobs within the guarantee").

One 8-GPU node; project A has a nominal quota of 8 and runs ``a0`` on one device until
3,000 s from now. A's queue: ``wide`` (the whole node) first, then ``narrow`` (1 GPU,
1 hour). ``wide`` does not fit what is left of A's guarantee (7), only because of A's
own ``a0``. Without the rule it is borrowing work (tier 1): ``narrow``, within the
guarantee, passes it (``LOOKAHEAD``) and takes a device for an hour, and ``wide``'s
start moves from 3,000 s to 3,600 s; the next narrow job does the same again. With it,
``wide`` is guaranteed work: it reserves the node for 3,000 s, and ``narrow``, which
would run past that, waits.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from axcenter.model.plan import PendingReason
from axcenter.model.quota import Quota, QuotaNode
from axcenter.model.snapshot import PendingJob, RunningJob, SchedulerConfig, Snapshot
from axcenter.sched import plan
from axcenter.service.center import scheduler_config
from axcenter.settings import Settings
from tests.builders import admitted_ids, node, pending, running, snapshot

H = "H100"
NOW = 10_000.0
A0_ENDS = NOW + 3000


def _snapshot(
    *jobs: PendingJob,
    nominal: int = 8,
    also_running: tuple[RunningJob, ...] = (),
    nodes: int = 1,
    config: SchedulerConfig | None = None,
) -> Snapshot:
    return snapshot(
        nodes=[node(f"n{i + 1}", H, gpus=8) for i in range(nodes)],
        running=[
            running("a0", on=[("n1", (0,))], started=NOW - 600, time_limit_s=3600),
            *also_running,
        ],
        pending=jobs or (pending("wide", gpus=8, submitted=1), pending("narrow", submitted=2)),
        projects=[QuotaNode("prj_a", quotas={H: Quota(nominal=nominal)})],
        config=config,
    )


def test_a_whole_node_job_within_the_guarantee_is_not_passed_by_narrow_jobs() -> None:
    """``wide`` reserves n1 for when ``a0`` ends; ``narrow`` would run past that."""
    result = plan(_snapshot(), NOW)
    assert admitted_ids(result) == []
    assert result.waiting["wide"] is PendingReason.RESOURCES
    assert result.waiting["narrow"] is PendingReason.PRIORITY
    assert {e.job_id: e.at for e in result.estimates} == {"wide": A0_ENDS}


def test_without_the_rule_the_narrow_job_passes_and_the_wide_start_moves() -> None:
    """The same snapshot before the rule (``wide_within_guarantee=False``)."""
    snap = _snapshot(config=SchedulerConfig(wide_within_guarantee=False))
    result = plan(snap, NOW)
    assert admitted_ids(result) == ["narrow"]
    assert {e.job_id: e.at for e in result.estimates} == {"wide": NOW + 3600}


def test_a_job_narrower_than_the_node_is_still_passed() -> None:
    """Only jobs that need whole nodes: a 7-GPU job, beyond the 6 GPUs left of the
    guarantee (``a0`` and ``a1`` hold 2), is borrowing work and ``narrow`` passes it."""
    a1 = running("a1", on=[("n1", (1,))], started=NOW - 600, time_limit_s=3600)
    snap = _snapshot(
        pending("seven", gpus=7, submitted=1), pending("narrow", submitted=2), also_running=(a1,)
    )
    assert admitted_ids(plan(snap, NOW)) == ["narrow"]


def test_a_project_already_borrowing_gets_no_such_place() -> None:
    """A uses 9 GPUs of its nominal 8 (``a1`` holds n2): its wide job is borrowing work,
    so B's job, borrowing too and with less fair-share usage, goes first and starts on
    n1 (with the rule applied to it, ``wide`` would reserve n1 first and ``b1``, asking
    an hour, would wait)."""
    a1 = running("a1", on=[("n2", tuple(range(8)))], started=NOW - 600, time_limit_s=3600)
    snap = _snapshot(
        pending("wide", gpus=8, submitted=1),
        pending("b1", project="prj_b", submitted=5),
        nodes=2,
        also_running=(a1,),
    )
    snap = replace(snap, usage={"prj_a": 1e6, "prj_b": 0.0})
    result = plan(snap, NOW)
    assert admitted_ids(result) == ["b1"]
    assert result.waiting["wide"] is PendingReason.RESOURCES


def test_a_job_wider_than_the_nominal_quota_is_borrowing_work() -> None:
    """Nominal 4: the 8-GPU job could never fit the guarantee; ``narrow`` passes it."""
    assert admitted_ids(plan(_snapshot(nominal=4), NOW)) == ["narrow"]


def test_the_rule_is_set_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert scheduler_config(Settings()).wide_within_guarantee is True
    monkeypatch.setenv("AXC_SCHED_WIDE_WITHIN_GUARANTEE", "false")
    assert scheduler_config(Settings()).wide_within_guarantee is False


def test_a_gang_of_whole_nodes_is_still_borrowing_work() -> None:
    """Two 8-GPU nodes, nominal 16: a gang of both, beyond what ``a0`` leaves of the
    guarantee, is passed by ``narrow`` as before (gangs holding nodes idle for their
    start cost more waiting than they save: docs/scheduling.md)."""
    snap = _snapshot(
        pending("gang", gpus=8, nodes=2, submitted=1),
        pending("narrow", submitted=2),
        nominal=16,
        nodes=2,
    )
    assert admitted_ids(plan(snap, NOW)) == ["narrow"]
