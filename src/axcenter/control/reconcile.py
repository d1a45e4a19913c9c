"""Make the store agree with reality, then rebuild the loop's cache from the store.

Run at start and after any failed cycle. Reality is what the executor reports: its nodes
and the jobs it is still running. An active job the executor does not run (the service
was killed, a launch never happened) goes back to pending with its history kept, after
any process it left behind is killed: a job is never running twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from axcenter.accounting.budgets import load_budgets
from axcenter.accounting.ledger import settle_job
from axcenter.control.convert import node_from_row, pending_from_row, running_from_row
from axcenter.control.state import ClusterState
from axcenter.control.usage import UsageTracker
from axcenter.executors.base import Executor, NodeInventory
from axcenter.model.cluster import NodeState
from axcenter.model.ids import new_id
from axcenter.model.jobs import ACTIVE, JobState
from axcenter.sched.fairshare import decay
from axcenter.store import orm
from axcenter.store.db import Store
from axcenter.store.jobs import release_leases, transition
from axcenter.store.policy import load_policy

__all__ = ["load_state", "reconcile", "requeue"]

log = logging.getLogger(__name__)


def reconcile(
    store: Store, executor: Executor, now: datetime, template: ClusterState
) -> ClusterState:
    inventory = {n.name: n for n in executor.inventory()}
    alive = executor.running()
    with store.write() as session:
        _sync_nodes(session, inventory, now)
        active_states = orm.Job.state.in_([s.value for s in ACTIVE])
        active = session.scalars(select(orm.Job).where(active_states))
        lost = [job for job in active if job.id not in alive]
        # admitted jobs may have a process without a recorded pid (killed mid-dispatch)
        executor.kill_orphans({job.id: job.pid or None for job in lost})
        for job in lost:
            requeue(session, job.id, JobState(job.state), now, "requeued: service restarted")
        session.execute(
            delete(orm.DeviceLease)
            .where(orm.DeviceLease.job_id.not_in(select(orm.Job.id).where(active_states)))
            .execution_options(synchronize_session=False)
        )
    return load_state(store, now, template)


def requeue(session: Session, job_id: str, current: JobState, at: datetime, reason: str) -> None:
    """Back to pending with history kept: running -> preempted -> pending, releasing devices
    and settling what the run used."""
    settle_job(session, job_id, at)
    if current is JobState.RUNNING:
        transition(session, job_id, [JobState.RUNNING], JobState.PREEMPTED, at=at, reason=reason)
        current = JobState.PREEMPTED
    transition(
        session,
        job_id,
        [current],
        JobState.PENDING,
        at=at,
        reason=reason,
        placement=None,
        gpu_type=None,
        pid=None,
    )
    release_leases(session, job_id)


def load_state(store: Store, now: datetime, template: ClusterState) -> ClusterState:
    """A fresh cache from the store, keeping the configuration of ``template``."""
    state = ClusterState(
        config=template.config, user_limits=template.user_limits, hold_grace_s=template.hold_grace_s
    )
    with store.read() as session:
        state.policy = load_policy(session, now)
        state.budgets = load_budgets(session, now, template.hold_grace_s)
        state.usage = UsageTracker(
            template.config.fair_share_half_life_s,
            now.timestamp(),
            _decayed_usage(session, now, template.config.fair_share_half_life_s),
        )
        for node in session.scalars(select(orm.Node)):
            state.nodes[node.id] = node_from_row(node)
        rows = session.scalars(
            select(orm.Job)
            .where(orm.Job.state.in_([JobState.PENDING.value, JobState.RUNNING.value]))
            .order_by(orm.Job.submitted_at)
        ).all()
        for row in rows:
            state.add_pending(pending_from_row(row))
            if row.state == JobState.RUNNING.value:
                state.start(running_from_row(row))
    return state


def _decayed_usage(session: Session, now: datetime, half_life_s: float) -> dict[str, float]:
    """GPU-seconds of finished jobs per project, each decayed from when it ended.

    Jobs that ended more than ten half-lives ago weigh under 0.1% and are skipped.
    """
    horizon = now - timedelta(seconds=10 * half_life_s)
    usage: dict[str, float] = {}
    rows = session.execute(
        select(
            orm.Job.project_id,
            orm.Job.gpus_per_node * orm.Job.nodes,
            orm.Job.started_at,
            orm.Job.ended_at,
        ).where(orm.Job.ended_at > horizon, orm.Job.started_at.is_not(None))
    )
    for project_id, gpus, started, ended in rows:
        seconds = (ended - started).total_seconds()
        weight = decay(1.0, (now - ended).total_seconds(), half_life_s)
        usage[project_id] = usage.get(project_id, 0.0) + gpus * seconds * weight
    return usage


def _sync_nodes(session: Session, inventory: dict[str, NodeInventory], now: datetime) -> None:
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
