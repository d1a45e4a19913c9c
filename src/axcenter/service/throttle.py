"""Abuse limits that live in memory: failed authentications, and how fast and how much
one user or one project may submit.

- ``FailureLimiter``: failed authentications in the last minute, per client address and
  per token prefix (``api.guard`` and the dashboard's sign-in count them); past the
  limit every attempt with that key is refused until the minute has passed.
- ``SubmissionThrottle``: per user and per project, a cap on pending jobs and on
  submissions per second (a token bucket holding one second's worth, refilled
  continuously), each refused with 429 naming the limit and its setting
  (``Settings.max_pending_jobs_per_user`` and the others).

Pending jobs are counted from the control loop's queues (``ClusterState``), which see a
submission when the loop next drains its inbox: a burst can pass the cap by what is
accepted before then, which the rate bounds. Both are per process, as the center is.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from axcenter.model.access import Principal
from axcenter.service.errors import TooManyRequests

__all__ = ["FailureLimiter", "SubmissionLimits", "SubmissionThrottle", "token_prefix"]

#: what of a token identifies it for the failure count: ``axc_`` and 8 characters
PREFIX_CHARS = 12
WINDOW_S = 60.0
#: keys remembered at most (a flood of addresses forgets the oldest half)
MAX_KEYS = 100_000


def token_prefix(token: str) -> str:
    return token[:PREFIX_CHARS]


class FailureLimiter:
    """Failed authentications in the last minute, per key (an address, a token prefix).

    Thread-safe: the API's event loop and the dashboard's threads both count.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - WINDOW_S:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, *keys: str) -> int:
        """Whole seconds until every one of ``keys`` is below the limit (0: now)."""
        if not self._failures:  # the common case, without the lock
            return 0
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if times is not None and len(times) >= self.per_minute:
                    wait = max(wait, times[-self.per_minute] + WINDOW_S - now)
        return int(wait) + 1 if wait > 0 else 0

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._failures) >= MAX_KEYS:
                for key in list(self._failures)[: MAX_KEYS // 2]:
                    del self._failures[key]
            for key in keys:
                times = self._failures.setdefault(key, deque())
                times.append(now)
                while len(times) > self.per_minute:  # only the newest ones decide
                    times.popleft()


@dataclass(frozen=True, slots=True)
class SubmissionLimits:
    """None: no limit."""

    pending_per_user: int | None = None
    pending_per_project: int | None = None
    per_s_per_user: float | None = None
    per_s_per_project: float | None = None


class _Bucket:
    __slots__ = ("at", "tokens")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at


class SubmissionThrottle:
    """Admits a submission or raises ``TooManyRequests`` naming the limit it passed.

    ``pending_of(user id, project ids)`` answers (the user's pending jobs, pending jobs
    per project id) as the control loop knows them.
    """

    def __init__(
        self,
        limits: SubmissionLimits,
        pending_of: Callable[[str, Iterable[str]], tuple[int, Mapping[str, int]]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self.pending_of = pending_of
        self.clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def admit(self, who: Principal, jobs_per_project: Mapping[str, tuple[str, int]]) -> None:
        """``jobs_per_project``: project id -> (its name, how many jobs this submission
        adds). Rates count submissions (requests), caps count jobs."""
        limits = self.limits
        if limits.pending_per_user is not None or limits.pending_per_project is not None:
            mine, per_project = self.pending_of(who.user_id, jobs_per_project)
            adding = sum(n for _, n in jobs_per_project.values())
            cap = limits.pending_per_user
            if cap is not None and mine + adding > cap:
                raise TooManyRequests(
                    (
                        "too many pending jobs: {name} has {mine} and this would add {adding}; "
                        "the limit is {cap} per user (max_pending_jobs_per_user)"
                    ),
                    name=who.name,
                    mine=mine,
                    adding=adding,
                    cap=cap,
                )
            cap = limits.pending_per_project
            for project_id, (name, n) in jobs_per_project.items():
                have = per_project.get(project_id, 0)
                if cap is not None and have + n > cap:
                    raise TooManyRequests(
                        (
                            "too many pending jobs: project {name} has {have} and this would add "
                            "{n}; the limit is {cap} per project (max_pending_jobs_per_project)"
                        ),
                        name=name,
                        have=have,
                        n=n,
                        cap=cap,
                    )
        with self._lock:
            now = self.clock()
            if len(self._buckets) >= MAX_KEYS:
                self._buckets.clear()
            taken: list[_Bucket] = []
            try:
                if limits.per_s_per_user is not None:
                    bucket = self._take(("user", who.user_id), limits.per_s_per_user, now)
                    if bucket is None:
                        raise TooManyRequests(
                            "too many submissions: {user} submits faster than {rate:g} per "
                            "second (max_submissions_per_s_per_user); retry in a moment",
                            user=who.name,
                            rate=limits.per_s_per_user,
                        )
                    taken.append(bucket)
                if limits.per_s_per_project is not None:
                    for project_id, (name, _) in jobs_per_project.items():
                        bucket = self._take(("project", project_id), limits.per_s_per_project, now)
                        if bucket is None:
                            raise TooManyRequests(
                                "too many submissions: project {project} is submitted to faster "
                                "than {rate:g} per second (max_submissions_per_s_per_project); "
                                "retry in a moment",
                                project=name,
                                rate=limits.per_s_per_project,
                            )
                        taken.append(bucket)
            except TooManyRequests:
                for bucket in taken:  # a refused submission spends nothing
                    bucket.tokens += 1
                raise

    def _take(self, key: tuple[str, str], rate: float, now: float) -> _Bucket | None:
        """The key's bucket less one token; None (nothing taken) when it has none left."""
        capacity = max(rate, 1.0)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(capacity, now)
        else:
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
        if bucket.tokens < 1:
            return None
        bucket.tokens -= 1
        return bucket
