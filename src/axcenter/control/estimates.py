"""Estimated starts of every pending job, kept fresh off the control loop.

"When will my job start?" The answer is the scheduler's own ``plan`` run forward over the
queue with every job lasting its time limit (``sim/forecast.py``, wired in by the
``Center``). That costs tens of cycles to hundreds, so it never runs on the loop's
thread or an API request's: this thread does it, on an immutable view the loop hands it
(``ControlLoop.view``: the queues and running jobs copied at the end of a cycle), and
publishes a new table of starts that readers take as a whole (one attribute: no lock).

When: after the loop published a change (a submission, a start, an end...), once the
changes have settled for ``DEBOUNCE_S``, and never sooner after the previous refresh
than ``COST_RATIO`` times what that refresh cost, so the thread uses at most about
1 / (1 + ``COST_RATIO``) of a core whatever the churn. A refresh whose forecast moved
jobs' starts publishes them (``LiveState``), so the pages that show them refresh.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from axcenter.control.live import Change, LiveState
from axcenter.model.snapshot import Snapshot

__all__ = ["Estimates", "Estimator"]

log = logging.getLogger(__name__)

#: a refresh waits until the queue has been still this long (a burst is one refresh)
DEBOUNCE_S = 0.5
#: ...and this many times as long as the previous refresh took
COST_RATIO = 4.0
#: how long to wait for the loop's view before trying again at the next change
VIEW_WAIT_S = 10.0
#: a forecast start that moved less than this is not published as a change
MOVED_S = 60.0

#: (snapshot, now, should_stop) -> forecast start of each pending job (epoch seconds)
Forecaster = Callable[[Snapshot, float, Callable[[], bool]], Mapping[str, float]]
ViewSource = Callable[[Callable[[Snapshot, float], None]], None]


class Estimates:
    """One refresh's answer: read as a whole, never changed."""

    __slots__ = ("at", "cost_s", "starts")

    def __init__(self, starts: Mapping[str, float], at: float, cost_s: float) -> None:
        self.starts = starts
        #: the moment of the view it was computed from (epoch seconds)
        self.at = at
        self.cost_s = cost_s


class Estimator:
    def __init__(
        self,
        view: ViewSource,
        forecaster: Forecaster,
        live: LiveState,
        *,
        debounce_s: float = DEBOUNCE_S,
        cost_ratio: float = COST_RATIO,
    ) -> None:
        self._view = view
        self._forecaster = forecaster
        self._live = live
        self.debounce_s = debounce_s
        self.cost_ratio = cost_ratio
        self.latest = Estimates({}, 0.0, 0.0)
        #: refreshes done (tests and the benchmark wait on it)
        self.refreshes = 0
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        #: set when the loop delivered the view asked for (or to stop waiting for it)
        self._ready = threading.Event()
        self._changed_at = 0.0
        self._thread: threading.Thread | None = None
        self._done = threading.Condition()

    def start(self) -> None:
        if self._thread is not None:  # a standby's retried takeover
            return
        self._live.add_listener(self._on_change)
        self._dirty.set()  # the first view: whatever the loop rebuilt at start
        self._thread = threading.Thread(target=self._run, name="axc-estimates", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._live.remove_listener(self._on_change)
        self._stopping.set()
        self._dirty.set()
        self._ready.set()
        if self._thread is not None:
            self._thread.join()

    def start_of(self, job_id: str) -> float | None:
        """The forecast start of a pending job (None: none yet, or beyond the horizon)."""
        return self.latest.starts.get(job_id)

    def wait_refresh(self, after: int, timeout: float) -> bool:
        """Wait until more than ``after`` refreshes were done (tests, benchmarks)."""
        with self._done:
            return self._done.wait_for(lambda: self.refreshes > after, timeout)

    def _on_change(self, change: Change) -> None:
        """On the loop's thread: note it, nothing more."""
        if not change.estimates:
            self._changed_at = time.monotonic()
            self._dirty.set()

    def _run(self) -> None:
        cost = 0.0
        finished = 0.0
        while not self._stopping.is_set():
            self._dirty.wait()
            # settle: a burst of submissions is one refresh; pace by the last one's cost
            while not self._stopping.is_set():
                now = time.monotonic()
                due = max(self._changed_at + self.debounce_s, finished + self.cost_ratio * cost)
                if now >= due:
                    break
                self._stopping.wait(due - now)
            if self._stopping.is_set():
                break
            self._dirty.clear()
            try:
                cost = self._refresh()
            except Exception:
                log.exception("estimating start times failed; trying again at the next change")
            finished = time.monotonic()

    def _refresh(self) -> float:
        got: list[tuple[Snapshot, float]] = []
        ready = self._ready = threading.Event()

        def deliver(snapshot: Snapshot, now: float) -> None:
            got.append((snapshot, now))
            ready.set()

        self._view(deliver)
        if not ready.wait(VIEW_WAIT_S) or not got or self._stopping.is_set():
            return 0.0
        snapshot, now = got[0]
        began = time.perf_counter()
        starts = dict(self._forecaster(snapshot, now, self._stopping.is_set))
        cost = time.perf_counter() - began
        before = self.latest.starts
        self.latest = Estimates(starts, now, cost)
        projects = {job.id: job.project_id for q in snapshot.queues.values() for job in q}
        moved = {
            job_id: projects[job_id]
            for job_id in projects
            if _moved(before.get(job_id), starts.get(job_id))
        }
        with self._done:
            self.refreshes += 1
            self._done.notify_all()
        if moved:
            self._live.publish(moved, estimates=True)
        return cost


def _moved(old: float | None, new: float | None) -> bool:
    if old is None or new is None:
        return old is not new
    return abs(old - new) >= MOVED_S
