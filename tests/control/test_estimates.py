"""The estimator: refreshed off the loop, once per burst of changes, on a view that
shares nothing with the loop's cache, and publishing only the starts that moved."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from axcenter.control.estimates import Estimator
from axcenter.control.live import Change, LiveState
from axcenter.control.state import ClusterState
from axcenter.model.snapshot import Snapshot
from tests.builders import node, pending, running

TIMEOUT_S = 10.0


def cache() -> ClusterState:
    state = ClusterState()
    state.nodes = {"n1": node("n1")}
    for job in (pending("j1", submitted=1), pending("j2", submitted=2, project="prj_b")):
        state.add_pending(job)
    state.start(running("r1", on=[("n1", (0,))]))
    return state


def test_the_view_shares_nothing_the_loop_changes_afterwards() -> None:
    state = cache()
    view = state.frozen()
    state.add_pending(pending("j3", submitted=3))
    state.forget("j1")
    state.forget("r1")
    state.usage.usage["prj_a"] = 5.0
    assert [j.id for q in view.queues.values() for j in q] == ["j1", "j2"]
    assert [r.id for r in view.running] == ["r1"]
    assert view.index is None and "prj_a" not in view.usage


def test_a_burst_of_changes_is_one_refresh_and_only_moved_starts_are_published() -> None:
    live = LiveState()
    state = cache()
    views: list[float] = []
    answers = iter([{"j1": 100.0, "j2": 200.0}, {"j1": 100.0, "j2": 900.0}])

    def view(deliver: Callable[[Snapshot, float], None]) -> None:
        views.append(0.0)
        threading.Thread(target=deliver, args=(state.frozen(), 50.0)).start()  # the loop

    def forecaster(snapshot: Snapshot, now: float, stop: Callable[[], bool]) -> Mapping[str, float]:
        return next(answers)

    published: list[Change] = []
    live.add_listener(published.append)
    estimator = Estimator(view, forecaster, live, debounce_s=0.3, cost_ratio=0.0)
    estimator.start()
    try:
        assert estimator.wait_refresh(0, TIMEOUT_S)  # the first, at start
        assert estimator.start_of("j2") == 200.0
        assert [c.jobs for c in published if c.estimates] == [{"j1": "prj_a", "j2": "prj_b"}]
        for n in range(20):  # a burst of the loop's changes
            live.publish({f"x{n}": "prj_a"})
        assert estimator.wait_refresh(1, TIMEOUT_S)
        assert len(views) == 2  # one view for the whole burst...
        assert estimator.start_of("j2") == 900.0
        # ...and only j2, whose start moved, is published as changed
        assert [c.jobs for c in published if c.estimates][-1] == {"j2": "prj_b"}
        # its own publication does not ask for another refresh
        assert not estimator._dirty.is_set()
    finally:
        estimator.stop()


def test_a_failing_listener_does_not_fail_the_publisher() -> None:
    live = LiveState()
    heard: list[int] = []

    def broken(change: Change) -> None:
        raise RuntimeError("event loop is closed")

    live.add_listener(broken)
    live.add_listener(lambda change: heard.append(change.version))
    assert live.publish({"j1": "prj_a"}).version == 1
    assert heard == [1]
