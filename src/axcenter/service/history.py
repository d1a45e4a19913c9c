"""The cluster over time: GPU utilization per type, queue length and queue waits.

Everything is derived from the job events (the append-only lifecycle history), so the
figures need no sampler and cover any past window. A window reads only the events inside
it, plus the jobs still pending or running from before it (indexes on ``job_events.at``
and ``jobs.state``), so its cost grows with the activity in the window, not with the
length of the center's history.

Buckets before the center's first job event are left out (zeros there would be no
measurement), and the bucket holding that event is averaged over the time after it, so a
center an hour old does not show its busy hour spread thin over a longer bucket.

These are center-wide aggregates (like ``/cluster``'s summary): every signed-in caller
sees them, and they name no job, user or project. Being the same for everyone, a window's
figures are kept for a twentieth of a bucket (at most a minute), so a dashboard open on
many screens reads the events once, and a figure is never more than that stale.

A run's GPUs are counted under the job's GPU type (that of its latest run: a job
requeued onto another type is rare, and counted under the new one).
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from axcenter.model.access import Principal
from axcenter.model.jobs import JobState
from axcenter.service.errors import InvalidInput
from axcenter.service.schemas import HistoryOut, HistoryPointOut
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = ["MAX_BUCKETS", "MAX_HOURS", "Interval", "cluster_history", "intervals", "percentile"]

MAX_HOURS = 24 * 92
MAX_BUCKETS = 500
#: the longest a computed window is reused
MAX_REUSE_S = 60.0
_RUNNING = JobState.RUNNING.value
_PENDING = JobState.PENDING.value
#: ids per IN (...) list: below SQLite's and PostgreSQL's parameter limits
_CHUNK = 5_000


@dataclass(frozen=True, slots=True)
class Interval:
    """A job's stay in one state, clipped to the window."""

    job_id: str
    start: float
    end: float


def intervals(
    events: Iterable[tuple[str, float, str | None, str]],
    in_state_before: Iterable[str],
    state: str,
    start: float,
    end: float,
) -> list[Interval]:
    """Stays in ``state`` within ``[start, end)``.

    ``events`` are (job id, time, from, to) inside the window, in order per job;
    ``in_state_before`` are the jobs that were in ``state`` when the window opened and
    have no event inside it (they stay for the whole window). A job whose first event in
    the window leaves ``state`` entered it before the window: its stay starts at ``start``.
    """
    out = [Interval(job, start, end) for job in in_state_before]
    entered: dict[str, float] = {}
    seen: set[str] = set()
    for job, at, before, after in events:
        if job not in seen:
            seen.add(job)
            if before == state:
                entered[job] = start
        if before == state and job in entered:
            out.append(Interval(job, entered.pop(job), at))
        if after == state:
            entered[job] = at
    out.extend(Interval(job, at, end) for job, at in entered.items())
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of non-empty ``values`` (q in (0, 100])."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def _ts(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


#: center -> (hours, buckets) -> (monotonic time computed, result)
_recent: weakref.WeakKeyDictionary[Center, dict[tuple[int, int], tuple[float, HistoryOut]]] = (
    weakref.WeakKeyDictionary()
)
_recent_lock = threading.Lock()


def cluster_history(
    center: Center,
    who: Principal,  # center-wide aggregates: any signed-in caller may see them
    *,
    hours: int = 24,
    buckets: int = 48,
    until: datetime | None = None,
) -> HistoryOut:
    """GPU use per type, mean queue length and wait percentiles per bucket of the window
    ending at ``until`` (default now, possibly reused from a moment ago)."""
    if not 1 <= hours <= MAX_HOURS:
        raise InvalidInput("hours", "must be between 1 and {MAX_HOURS}", MAX_HOURS=MAX_HOURS)
    if not 1 <= buckets <= MAX_BUCKETS:
        raise InvalidInput(
            "buckets", "must be between 1 and {MAX_BUCKETS}", MAX_BUCKETS=MAX_BUCKETS
        )
    if until is not None:
        return _compute(center, hours, buckets, until.astimezone(UTC))
    key = (hours, buckets)
    reuse_s = min(MAX_REUSE_S, hours * 3600 / buckets / 20)
    with _recent_lock:
        hit = _recent.get(center, {}).get(key)
    if hit is not None and time.monotonic() - hit[0] < reuse_s:
        return hit[1]
    out = _compute(center, hours, buckets, utcnow())
    with _recent_lock:
        _recent.setdefault(center, {})[key] = (time.monotonic(), out)
    return out


def _compute(center: Center, hours: int, buckets: int, end_at: datetime) -> HistoryOut:
    start_at = end_at - timedelta(hours=hours)
    start, end = start_at.timestamp(), end_at.timestamp()
    width = (end - start) / buckets

    with center.store.read() as session:
        capacity: dict[str, int] = {
            gpu_type: int(total)
            for gpu_type, total in session.execute(
                select(orm.Node.gpu_type, func.sum(orm.Node.gpu_count)).group_by(orm.Node.gpu_type)
            ).tuples()
        }
        events = [
            (job, _ts(at), before, after)
            for job, at, before, after in session.execute(
                select(
                    orm.JobEvent.job_id,
                    orm.JobEvent.at,
                    orm.JobEvent.from_state,
                    orm.JobEvent.to_state,
                )
                .where(orm.JobEvent.at >= start_at, orm.JobEvent.at < end_at)
                .order_by(orm.JobEvent.job_id, orm.JobEvent.id)
            ).tuples()
        ]
        touched = {e[0] for e in events}
        # jobs pending or running now with no event in the window were so all along
        steady = [
            (job, state)
            for job, state in session.execute(
                select(orm.Job.id, orm.Job.state).where(
                    orm.Job.state.in_([_PENDING, _RUNNING]), orm.Job.submitted_at < start_at
                )
            ).tuples()
            if job not in touched
        ]
        running = intervals(events, [j for j, s in steady if s == _RUNNING], _RUNNING, start, end)
        sizes: dict[str, tuple[int, str | None]] = {}
        ids = sorted({i.job_id for i in running})
        for chunk in _chunks(ids):
            for job, per_node, nodes, gpu_type in session.execute(
                select(orm.Job.id, orm.Job.gpus_per_node, orm.Job.nodes, orm.Job.gpu_type).where(
                    orm.Job.id.in_(chunk)
                )
            ).tuples():
                sizes[job] = (per_node * nodes, gpu_type)
        waits = _waits(session, events, start_at)
        first_event = session.scalar(
            select(func.min(orm.JobEvent.at)).where(orm.JobEvent.at < end_at)
        )

    pending = intervals(events, [j for j, s in steady if s == _PENDING], _PENDING, start, end)
    gpu_seconds: list[dict[str, float]] = [defaultdict(float) for _ in range(buckets)]
    for run in running:
        gpus, gpu_type = sizes.get(run.job_id, (0, None))
        if gpus and gpu_type is not None:
            for b, overlap in _overlaps(run, start, width, buckets):
                gpu_seconds[b][gpu_type] += gpus * overlap
    pending_seconds = [0.0] * buckets
    for stay in pending:
        for b, overlap in _overlaps(stay, start, width, buckets):
            pending_seconds[b] += overlap
    started: list[list[float]] = [[] for _ in range(buckets)]
    for at, wait in waits:
        started[min(buckets - 1, int((at - start) // width))].append(wait)

    types = sorted(capacity)
    # no point before the center's first event: zeros there would be no measurement, and
    # the bucket it falls in is averaged over the part after it
    born = end if first_event is None else max(start, _ts(first_event))
    points = []
    for b in range(buckets):
        lo = start + b * width
        span = min(width, lo + width - born)
        if span <= 0:
            continue
        used = {t: round(gpu_seconds[b].get(t, 0.0) / span, 3) for t in types}
        points.append(
            HistoryPointOut(
                at=datetime.fromtimestamp(start + b * width, UTC),
                gpus_used=used,
                utilization={
                    t: round(used[t] / capacity[t], 4) if capacity[t] else 0.0 for t in types
                },
                pending_jobs=round(pending_seconds[b] / span, 3),
                starts=len(started[b]),
                wait_p50_s=round(percentile(started[b], 50), 3) if started[b] else None,
                wait_p90_s=round(percentile(started[b], 90), 3) if started[b] else None,
            )
        )
    return HistoryOut(
        since=start_at,
        until=end_at,
        bucket_s=round(width, 3),
        capacity={t: capacity[t] for t in types},
        points=points,
    )


def _overlaps(
    stay: Interval, start: float, width: float, buckets: int
) -> Iterable[tuple[int, float]]:
    """(bucket, seconds) of ``stay`` in each bucket it touches."""
    if stay.end <= stay.start:
        return
    first = max(0, int((stay.start - start) // width))
    last = min(buckets - 1, int((stay.end - start) // width))
    for b in range(first, last + 1):
        lo, hi = start + b * width, start + (b + 1) * width
        overlap = min(hi, stay.end) - max(lo, stay.start)
        if overlap > 0:
            yield b, overlap


def _waits(
    session: Session,
    events: Sequence[tuple[str, float, str | None, str]],
    start_at: datetime,
) -> list[tuple[float, float]]:
    """(start time, seconds queued) of every run that started in the window: from the
    job's latest entry into ``pending`` (its submission, or its requeue) to its start."""
    seen_queued: set[str] = set()
    missing: set[str] = set()
    for job, _, _, after in events:
        if after == _PENDING:
            seen_queued.add(job)
        elif after == _RUNNING and job not in seen_queued:
            missing.add(job)  # queued before the window: look its entry up
    before: dict[str, float] = {}
    for chunk in _chunks(sorted(missing)):
        for job, queued in session.execute(
            select(orm.JobEvent.job_id, func.max(orm.JobEvent.at))
            .where(
                orm.JobEvent.job_id.in_(chunk),
                orm.JobEvent.to_state == _PENDING,
                orm.JobEvent.at < start_at,
            )
            .group_by(orm.JobEvent.job_id)
        ).tuples():
            before[job] = _ts(queued)
    out = []
    latest = before
    for job, at, _, after in events:
        if after == _PENDING:
            latest[job] = at
        elif after == _RUNNING and job in latest:
            out.append((at, max(0.0, at - latest[job])))
    return out
