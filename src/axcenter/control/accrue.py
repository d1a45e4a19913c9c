"""The accrual hook of the control side: a thread that charges running jobs as they run.

At the end of each accrual period (plus ``lag_s``, so that the engines have reported the
runs that ended before it) it posts every running job's usage since its previous accrual
(``accounting.accrual.post_accruals``) in one fenced write transaction. It runs beside
the control loop, not in it: a cycle never waits for it, and between period ends a pass
costs nothing (it does not even read the store).
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import datetime, timedelta, tzinfo

from axcenter.accounting.accrual import boundaries, post_accruals
from axcenter.store.db import Store
from axcenter.store.types import utcnow

__all__ = ["Accruer"]

log = logging.getLogger(__name__)


class Accruer:
    """Posts accruals for ``store`` at the end of each ``period`` of ``zone``."""

    def __init__(self, store: Store, *, period: str, zone: tzinfo, lag_s: float) -> None:
        self.store = store
        self.period = period
        self.zone = zone
        self.lag_s = lag_s
        seconds = re.fullmatch(r"([0-9]+)s", period)
        #: how often the thread looks whether a period ended (programs may accrue hourly)
        self.every_s = min(30.0, max(0.2, int(seconds.group(1)) / 2)) if seconds else 30.0
        self._through: datetime | None = None  # accrued up to here by this process
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="axc-accrue", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def due(self, now: datetime) -> bool:
        """Whether a period (the center's, or an hour: a program's may be hourly or daily)
        ended since the last pass."""
        if self._through is None:
            return True
        through = now - timedelta(seconds=self.lag_s)
        return any(boundaries(p, self.zone, self._through, through) for p in {self.period, "hour"})

    def run_once(self, now: datetime | None = None) -> int:
        """One pass: the accruals due at ``now``; returns the entries posted."""
        at = now or utcnow()
        with self.store.write() as session:
            posted = post_accruals(
                session, at, period=self.period, zone=self.zone, lag_s=self.lag_s
            )
        self._through = at - timedelta(seconds=self.lag_s)
        return posted

    def _run(self) -> None:
        while not self._stop.is_set():
            now = utcnow()
            try:
                if self.due(now):
                    self.run_once(now)
            except Exception:  # the store away or fenced: the next pass tries again
                log.exception("posting accruals failed")
            self._stop.wait(self.every_s)
