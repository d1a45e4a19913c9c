"""What changed, for those who show live state: a sequence number and what it touched.

After each cycle that changed something the control loop publishes one ``Change``: the
next sequence number, the jobs it touched (submitted, admitted, started, ended, requeued,
preempted, cancelled) with their projects, or ``everything`` (nodes, policy, a rebuild).
The estimator publishes the jobs whose forecast start moved. Nothing else: no states, no
names, so a listener learns what it may show only by reading it again, as its reader
may (the dashboard's push, ``service/live.py``, filters by the projects a subscriber
sees).

Listeners run on the publishing thread (the loop's): each must only note the change and
return (set an event, hand it to an event loop). So the loop's cost of being watched is
one call per listener per changing cycle, whatever the number of pages open.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["Change", "LiveState"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Change:
    version: int
    #: job id -> project id of the jobs touched
    jobs: Mapping[str, str] = field(default_factory=dict)
    #: nodes, policy or the whole cache changed: every page may
    everything: bool = False
    #: published by the estimator (forecast starts moved), not by the loop
    estimates: bool = False

    @property
    def projects(self) -> frozenset[str]:
        return frozenset(self.jobs.values())


Listener = Callable[[Change], None]


class LiveState:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.version = 0
        self._listeners: tuple[Listener, ...] = ()

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = tuple(x for x in self._listeners if x is not listener)

    def publish(
        self, jobs: Mapping[str, str], *, everything: bool = False, estimates: bool = False
    ) -> Change:
        with self._lock:
            self.version += 1
            change = Change(self.version, dict(jobs), everything, estimates)
            listeners = self._listeners
        for listener in listeners:
            try:
                listener(change)
            except Exception:  # a listener's fault must not fail the loop's cycle
                log.exception("a listener of live changes failed")
        return change
