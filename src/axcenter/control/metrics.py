"""What the control loop reports about itself: Prometheus metrics and its health.

The loop calls a handful of hooks (``cycled``, ``cycle_failed``, ``admitted``,
``recorded``, ``engine_failed``, ``engine_answered``); everything else about metrics is
here. Each center has its own registry (tests run many centers in one process); the API
serves it at ``/metrics`` and judges readiness from ``LoopHealth``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from axcenter.executors.base import RunEnded, RunStarted
from axcenter.store.db import unavailable

__all__ = ["LoopHealth", "LoopMetrics"]

#: cycle times, seconds: a quick cycle takes about a millisecond, a full one at scale tens
_CYCLE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: from a run's exit to its record, seconds: a cycle's pacing, an outage's length
#: an engine call's failure makes the engine unhealthy this long, unless one succeeds
ENGINE_FAILURE_S = 60.0
_LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class LoopHealth:
    """When the loop last completed a cycle and how its engine calls went (monotonic
    seconds; 0.0 for never), read by ``/readyz`` from API threads."""

    def __init__(self) -> None:
        self.cycled_at = 0.0
        self.failing_since = 0.0  # the first of the failed cycles in a row; 0.0: none
        self.engine_failed_at = 0.0
        self.engine_ok_at = 0.0

    @property
    def engine_healthy(self) -> bool:
        """No engine call failed since the latest one that succeeded, within the last
        ``ENGINE_FAILURE_S`` (a failure that no call followed is not held forever)."""
        failed = self.engine_failed_at
        return failed <= self.engine_ok_at or time.monotonic() - failed > ENGINE_FAILURE_S


class LoopMetrics:
    """The loop's metrics, in ``registry``, and its ``health``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.health = LoopHealth()
        r = self.registry
        self.cycle_seconds = Histogram(
            "axc_cycle_seconds", "control loop cycle time", buckets=_CYCLE_BUCKETS, registry=r
        )
        self.cycles_failed = Counter(
            "axc_cycles_failed", "control loop cycles that failed", ["cause"], registry=r
        )
        self.pending = Gauge(
            "axc_pending_jobs", "jobs waiting in the scheduler's queue", registry=r
        )
        self.running = Gauge("axc_running_jobs", "jobs holding devices", registry=r)
        self.admitted_jobs = Counter("axc_jobs_admitted", "jobs admitted", registry=r)
        self.started_runs = Counter("axc_runs_started", "run starts recorded", registry=r)
        self.ended_runs = Counter("axc_runs_ended", "run ends recorded", ["outcome"], registry=r)
        self.store_errors = Counter(
            "axc_store_errors",
            "operations that failed because the store was unreachable, busy or full",
            ["where"],
            registry=r,
        )
        self.engine_errors = Counter(
            "axc_engine_errors", "engine calls that failed", ["call"], registry=r
        )
        self.record_lag = Histogram(
            "axc_exit_record_lag_seconds",
            "from a run's exit, as its engine reports it, to its end's record",
            buckets=_LAG_BUCKETS,
            registry=r,
        )

    def watch_queue(self, pending: Callable[[], int], running: Callable[[], int]) -> None:
        """Read the queue's length and the running jobs' count at each scrape."""
        self.pending.set_function(pending)
        self.running.set_function(running)

    # -- the loop's hooks ---------------------------------------------------------------

    def cycled(self, seconds: float) -> None:
        self.cycle_seconds.observe(seconds)
        self.health.cycled_at = time.monotonic()
        self.health.failing_since = 0.0

    def cycle_failed(self, exc: BaseException) -> None:
        cause = "store" if unavailable(exc) else "other"
        self.cycles_failed.labels(cause).inc()
        if cause == "store":
            self.store_errors.labels("control").inc()
        if not self.health.failing_since:
            self.health.failing_since = time.monotonic()

    def admitted(self, count: int) -> None:
        self.admitted_jobs.inc(count)

    def recorded(self, events: Sequence[RunStarted | RunEnded], now: float) -> None:
        """Starts and ends written by a cycle; ``now`` on the clock of their times."""
        for event in events:
            if isinstance(event, RunStarted):
                self.started_runs.inc()
            else:
                self.ended_runs.labels(event.outcome.value).inc()
                self.record_lag.observe(max(0.0, now - event.ended_at))

    def engine_failed(self, call: str) -> None:
        self.engine_errors.labels(call).inc()
        self.health.engine_failed_at = time.monotonic()

    def engine_answered(self) -> None:
        self.health.engine_ok_at = time.monotonic()
