"""Make the store agree with the engine, then rebuild the loop's cache from the store.

Run at start and after any failed cycle. Reality is what the engine reports
(``Engine.recover``): the nodes it offers, the runs it still runs (adopted: the job stays
running, or becomes running with its real start), and the runs that ended while nobody
listened (recorded once, with their real times and exit status: a job that finished
while the service was down is never run again). An active job whose current run the
engine has no record of (the service died before handing it over) goes back to pending
with its history kept; the engine reports a run it cannot account for as lost only once
its processes are proven gone, so a job is never running twice.

A staged job (``control/stage.py``) holds no device leases until the jobs it follows
end, and what it follows is known only to the loop that staged it: one whose run has
not started is withdrawn (stopped in the engine, back to pending at its place); one
whose run started takes its leases now (those jobs have ended, or Slurm would not have
started it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from axcenter.accounting.budgets import load_budgets
from axcenter.control.convert import (
    allocations_from_json,
    node_from_row,
    pending_from_row,
    running_from_row,
)
from axcenter.control.runs import record_runs, requeue
from axcenter.control.state import ClusterState
from axcenter.control.usage import UsageTracker, usage_weights
from axcenter.executors.base import (
    Engine,
    NodeInventory,
    RunEnded,
    RunStarted,
    StopReason,
    run_id_of,
)
from axcenter.model.cluster import NodeState
from axcenter.model.ids import new_id
from axcenter.model.jobs import ACTIVE, JobState
from axcenter.sched.fairshare import decay, weight_of
from axcenter.sched.history import RunHistory
from axcenter.store import orm
from axcenter.store.db import Store
from axcenter.store.jobs import take_leases
from axcenter.store.policy import load_policy

__all__ = ["load_state", "reconcile"]

log = logging.getLogger(__name__)


def reconcile(
    store: Store, engine: Engine, now: datetime, template: ClusterState
) -> tuple[ClusterState, dict[str, str]]:
    """Returns the rebuilt cache and the current run of each job holding devices."""
    inventory = {n.name: n for n in engine.inventory() if n.up}
    recovery = engine.recover()
    ended = {e.run_id: e for e in recovery.ended}
    with store.write() as session:
        sync_nodes(session, inventory, now)
        active_states = orm.Job.state.in_([s.value for s in ACTIVE])
        active = session.execute(
            select(orm.Job.id, orm.Job.state, orm.Job.attempts).where(active_states)
        ).all()
        events: list[RunStarted | RunEnded] = []
        missing: list[tuple[str, JobState, int]] = []
        for job_id, state, attempts in active:
            run_id = run_id_of(job_id, attempts)
            if run_id in ended:
                events.append(ended[run_id])
            elif run_id in recovery.running:
                events.append(recovery.running[run_id])
            elif run_id not in recovery.queued:
                missing.append((job_id, JobState(state), attempts))
        recorded = record_runs(session, events, {}, {})
        for job_id, state, attempts in missing:
            reason = f"requeued: run {attempts} never reached the engine"
            requeue(session, job_id, [state], now, reason)
        withdrawn = _unstage(session, recovery.queued, now)
        session.execute(
            delete(orm.DeviceLease)
            .where(orm.DeviceLease.job_id.not_in(select(orm.Job.id).where(active_states)))
            .execution_options(synchronize_session=False)
        )
        runs = {
            job_id: run_id_of(job_id, attempts)
            for job_id, attempts in session.execute(
                select(orm.Job.id, orm.Job.attempts).where(active_states)
            ).tuples()
        }
    if recorded.ended or recorded.requeued or missing:
        log.info(
            "reconcile: %d run(s) adopted, %d ended while away, %d requeued, %d never started",
            len(recovery.running),
            len(recorded.ended),
            len(recorded.requeued),
            len(missing),
        )
    for run_id in withdrawn:  # after the commit: the job waits again whatever comes
        engine.stop(run_id, StopReason.PREEMPT, 0.0)
    if ended:
        engine.acknowledge(list(ended))
    return load_state(store, now, template), runs


def _unstage(session: Session, queued: frozenset[str], now: datetime) -> list[str]:
    """Active jobs with devices but no leases (staged): withdraw those whose run has not
    started (returns those runs, to stop), lease the devices of those whose run did."""
    leased = set(session.scalars(select(orm.DeviceLease.job_id).distinct()))
    rows = session.execute(
        select(orm.Job.id, orm.Job.state, orm.Job.attempts, orm.Job.placement).where(
            orm.Job.state.in_([JobState.ADMITTED.value, JobState.RUNNING.value])
        )
    ).all()
    withdrawn: list[str] = []
    for job_id, state, attempts, placement in rows:
        allocations = allocations_from_json(placement or [])
        if job_id in leased or not any(a.devices for a in allocations):
            continue
        run_id = run_id_of(job_id, attempts)
        if state == JobState.ADMITTED.value and run_id in queued:
            reason = "requeued: its staged run was withdrawn at a restart of the service"
            requeue(session, job_id, [JobState.ADMITTED], now, reason)
            withdrawn.append(run_id)
            continue
        try:
            with session.begin_nested():
                take_leases(session, job_id, allocations)
        except IntegrityError:  # a job it followed is still recorded running
            log.warning("reconcile: job %s runs on devices still leased to another", job_id)
    return withdrawn


def load_state(store: Store, now: datetime, template: ClusterState) -> ClusterState:
    """A fresh cache from the store, keeping the configuration of ``template``."""
    state = ClusterState(
        config=template.config, user_limits=template.user_limits, hold_grace_s=template.hold_grace_s
    )
    with store.read() as session:
        state.policy = load_policy(session, now)
        state.budgets = load_budgets(session, now, template.hold_grace_s)
        weights = usage_weights(session, now, template.config)
        state.usage = UsageTracker(
            template.config.fair_share_half_life_s,
            now.timestamp(),
            _decayed_usage(session, now, template.config.fair_share_half_life_s, weights),
            weights,
        )
        state.history = _run_history(session, now, template.config.history_min_runs)
        for node in session.scalars(select(orm.Node)):
            state.nodes[node.id] = node_from_row(node)
        rows = session.scalars(
            select(orm.Job)
            .where(orm.Job.state.in_([s.value for s in _CACHED]))
            .order_by(orm.Job.submitted_at)
        ).all()
        for row in rows:
            state.add_pending(pending_from_row(row))
            if row.state != JobState.PENDING.value:  # holds its devices
                state.start(running_from_row(row))
    return state


#: jobs the cache holds: waiting, or holding devices (admitted: queued in the engine)
_CACHED = (JobState.PENDING, JobState.ADMITTED, JobState.RUNNING)


def _run_history(session: Session, now: datetime, min_runs: int) -> RunHistory:
    """The run times of the jobs that succeeded in the last ``HISTORY_DAYS``, oldest
    first, as the loop would have recorded them (``ClusterState.ended``)."""
    history = RunHistory(min_runs)
    if min_runs <= 0:
        return history
    rows = session.execute(
        select(
            orm.Job.user_id,
            orm.Job.project_id,
            orm.Job.time_limit_s,
            orm.Job.gpus_per_node * orm.Job.nodes,
            orm.Job.started_at,
            orm.Job.ended_at,
        )
        .where(
            orm.Job.state == JobState.SUCCEEDED.value,
            orm.Job.ended_at > now - timedelta(days=HISTORY_DAYS),
            orm.Job.started_at.is_not(None),
        )
        .order_by(orm.Job.ended_at)
    )
    for user_id, project_id, limit_s, gpus, started, ended in rows:
        history.record(user_id, project_id, limit_s, gpus, (ended - started).total_seconds())
    return history


#: how far back the run history behind estimates reaches at start
HISTORY_DAYS = 30


def _decayed_usage(
    session: Session, now: datetime, half_life_s: float, weights: Mapping[str, float]
) -> dict[str, float]:
    """Weighted GPU-seconds of finished jobs per project, each decayed from when it ended.

    Jobs that ended more than ten half-lives ago weigh under 0.1% and are skipped.
    """
    horizon = now - timedelta(seconds=10 * half_life_s)
    usage: dict[str, float] = {}
    rows = session.execute(
        select(
            orm.Job.project_id,
            orm.Job.gpus_per_node * orm.Job.nodes,
            orm.Job.gpu_type,
            orm.Job.started_at,
            orm.Job.ended_at,
        ).where(orm.Job.ended_at > horizon, orm.Job.started_at.is_not(None))
    )
    for project_id, gpus, gpu_type, started, ended in rows:
        seconds = (ended - started).total_seconds()
        weight = decay(1.0, (now - ended).total_seconds(), half_life_s)
        weight *= weight_of(weights, gpu_type or "")
        usage[project_id] = usage.get(project_id, 0.0) + gpus * seconds * weight
    return usage


def sync_nodes(session: Session, inventory: dict[str, NodeInventory], now: datetime) -> None:
    """The store's nodes as the engine offers them: new ones added, changed ones updated,
    missing (or down) ones marked down."""
    known = {n.name: n for n in session.scalars(select(orm.Node))}
    for name, inv in inventory.items():
        row = known.get(name)
        if row is None:
            session.add(
                orm.Node(
                    id=new_id("nod"),
                    name=name,
                    gpu_type=inv.gpu_type,
                    gpu_count=inv.gpu_count,
                    cpus=inv.cpus,
                    memory_mb=inv.memory_mb,
                    state=NodeState.UP.value,
                    logical=inv.logical,
                    updated_at=now,
                )
            )
            continue
        changed = (row.gpu_type, row.gpu_count, row.cpus, row.memory_mb, row.logical) != (
            inv.gpu_type,
            inv.gpu_count,
            inv.cpus,
            inv.memory_mb,
            inv.logical,
        )
        if changed or row.state == NodeState.DOWN.value:
            row.gpu_type, row.gpu_count = inv.gpu_type, inv.gpu_count
            row.cpus, row.memory_mb, row.logical = inv.cpus, inv.memory_mb, inv.logical
            if row.state == NodeState.DOWN.value:
                row.state = NodeState.UP.value
            row.updated_at = now
    for name, row in known.items():
        if name not in inventory and row.state != NodeState.DOWN.value:
            log.warning("node %s is no longer offered by the executor: marked down", name)
            row.state = NodeState.DOWN.value
            row.updated_at = now
    session.flush()
