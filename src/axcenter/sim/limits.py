"""The time limits replayed jobs ask for: as users give them, not as an oracle would.

The scheduler orders and backfills by requested time limits, so a replay that derives a
job's limit from its true duration (say, twice it) hands the policy knowledge no live
center has, and its waits look better than any center would see. Users ask for coarse
limits: the next of a few round values (1 h, 4 h, 12 h, 1 d, 3 d, 7 d) above what they
expect, and some always ask for the most the center allows.

A ``LimitRule`` says which limit each replayed job gets; every replay states the rule it
used in its notes (``describe``):

- ``buckets`` (the default): the smallest of ``BUCKETS_S`` that covers the job's run
  (users who know roughly how long their work takes, rounding up); a share ``max_share``
  of jobs (default 30%) asks the maximum, 7 days, whatever it runs. A run longer than
  7 days asks whole multiples of 7 days (it would have needed an operator's exception).
  Which jobs ask the maximum is a seeded draw per job id, so a trace, a seed and a rule
  always give the same limits, and every policy of a comparison sees the same ones.
- ``trace``: the limit the trace records; jobs without one get the ``buckets`` rule.
- ``oracle``: ``ceil(duration x factor)`` (the simulator's rule before issue 23, kept for
  comparison only: it knows every job's duration).

The draw is per job rather than per user: the shared traces have few real users (ITP and
OpenB have none), so a per-user draw would make a whole tenant ask the maximum or not.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Literal

from axcenter.sim.workload import TraceJob

__all__ = ["BUCKETS_S", "KINDS", "MAX_LIMIT_S", "LimitRule", "bucket_limit", "draw"]

HOUR = 3600
DAY = 24 * HOUR
#: the round limits users ask for
BUCKETS_S = (HOUR, 4 * HOUR, 12 * HOUR, DAY, 3 * DAY, 7 * DAY)
#: the most a center allows (``AXC_MAX_TIME_LIMIT_S``'s default)
MAX_LIMIT_S = 7 * DAY

Kind = Literal["buckets", "trace", "oracle"]
KINDS: tuple[Kind, ...] = ("buckets", "trace", "oracle")


def bucket_limit(duration_s: float) -> int:
    """The smallest round limit that covers ``duration_s`` (multiples of 7 d beyond)."""
    for limit in BUCKETS_S:
        if duration_s <= limit:
            return limit
    return MAX_LIMIT_S * math.ceil(duration_s / MAX_LIMIT_S)


@dataclass(frozen=True, slots=True)
class LimitRule:
    kind: Kind = "buckets"
    #: share of jobs that ask the maximum (``buckets``, and ``trace`` jobs without one)
    max_share: float = 0.3
    #: ``oracle`` only: limit = duration x factor
    factor: float = 2.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown limit rule {self.kind!r} (known: {', '.join(KINDS)})")
        if not 0.0 <= self.max_share <= 1.0:
            raise ValueError(f"max_share must be within 0..1, not {self.max_share}")
        if self.factor <= 0:
            raise ValueError(f"factor must be positive, not {self.factor}")

    def limit(self, job: TraceJob, seed: int) -> int:
        """The time limit ``job`` asks for, in whole seconds."""
        if self.kind == "oracle":
            return max(1, math.ceil(job.duration * self.factor))
        if self.kind == "trace" and job.time_limit is not None:
            return max(1, math.ceil(job.time_limit))
        covering = bucket_limit(job.duration)
        if self.max_share > 0 and draw(job.id, seed) < self.max_share:
            return max(MAX_LIMIT_S, covering)
        return covering

    def describe(self) -> str:
        """The rule in one sentence, for a replay's notes."""
        buckets = "the smallest of 1 h, 4 h, 12 h, 1 d, 3 d, 7 d covering the run"
        asking = f"{self.max_share:.0%} of jobs (a seeded draw) ask the maximum, 7 d"
        if self.kind == "oracle":
            return (
                f"time limits: duration x {self.factor:g} (oracle: the replay knows every "
                "job's duration; not what users give)"
            )
        if self.kind == "trace":
            return f"time limits: as the trace records; jobs without one: {buckets}; {asking}"
        return f"time limits as users give them: {buckets}; {asking}"


def draw(job_id: str, seed: int, purpose: str = "limit") -> float:
    """A uniform number in [0, 1) fixed by the job id, the seed and what it decides."""
    digest = hashlib.blake2b(f"{purpose}:{seed}:{job_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
