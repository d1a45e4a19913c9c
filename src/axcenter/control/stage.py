"""Staged runs: a waiting job handed to the engine before its devices are free.

An engine that runs its own queue (Slurm) starts a job already in that queue in the
scheduling pass that sees the job before it end; a job submitted only once axcenter has
seen that end (one poll later) waits for the next pass. So where the engine can
(``Engine.stages``), the loop plans one step ahead: after each full cycle it asks the
same policy what it would start if the running jobs expected to end within
``stage_ahead_s`` had ended, and stages each such admission that lands wholly on their
devices. A staged job is admitted (held in the store, its hold on its grant taken, its
run handed over with ``RunSpec.after``) but in the loop's cache it is neither pending
nor running (``ClusterState.staged``) until the last job it follows ends; then it holds
their devices (``ClusterState._stop``) and takes their leases.

Only the policy chooses: staging runs it on a view where those jobs have ended, so a
staged job is the one the next cycle would have started there. What may change after:

- a job it follows runs on past its expected end by ``stage_ahead_s`` (its estimate was
  wrong): the staged job is withdrawn (stopped before it starts, requeued at its place)
  and waits for any devices again (``overdue``);
- it is cancelled: its run is stopped as any other;
- the control plane restarts: ``reconcile`` withdraws staged runs that have not started.

What a tenant can reach: nothing more than before. A staged run is its own job's,
runs as its own user on the devices the policy gave it, and starts only after the runs
it follows have ended, however they end (Slurm's ``afterany``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from axcenter.control.state import ClusterState
from axcenter.executors.base import Engine
from axcenter.model.plan import Admission, Plan
from axcenter.model.snapshot import RunningJob, Snapshot

__all__ = ["Stage", "ending", "overdue", "plan_stages"]


@dataclass(frozen=True, slots=True)
class Stage:
    """One admission to stage: it starts once the running jobs ``after`` end, at about
    ``starts_at`` (the latest of their expected ends)."""

    admission: Admission
    after: frozenset[str]
    starts_at: float


def expected_end(state: ClusterState, job: RunningJob) -> float:
    """When a running job will likely end: its start plus what its user's recent runs of
    similar jobs took (``sched.history``, as it stands now), else its time limit."""
    spec = state.specs.get(job.id)
    expected = (state.history.estimate(spec) if spec is not None else 0) or job.time_limit_s
    return job.started_at + expected if expected > 0 else float("inf")


def ending(
    state: ClusterState,
    engine: Engine,
    now: float,
    ahead_s: float,
    accepted: Callable[[str], bool],
) -> dict[str, float]:
    """The running jobs a job may be staged behind, with their expected ends: on nodes
    where the engine stages, expected to end within ``ahead_s`` (and not overrunning
    their estimate by more: ``overdue``), followed by none yet, not being preempted.
    ``accepted``: whether the engine has accepted a job's run (a staged run follows its
    reference); a job staged itself, once it holds its devices, may be followed before
    it starts. Empty, at the cost of a look at the nodes, where no node stages."""
    if ahead_s <= 0 or not state.pending:
        return {}
    staging = {node_id for node_id, node in state.nodes.items() if engine.stages(node.name)}
    if not staging:
        return {}
    ends: dict[str, float] = {}
    for job in state.running.values():
        if (
            job.preempting
            or job.id in state.followers
            or not job.allocations
            or any(a.node_id not in staging for a in job.allocations)
            or not accepted(job.id)
        ):
            continue
        end = expected_end(state, job)
        if abs(end - now) <= ahead_s:
            ends[job.id] = end
    return ends


def plan_stages(
    state: ClusterState,
    ends: Mapping[str, float],
    policy: Callable[[Snapshot, float], Plan],
    now: float,
) -> list[Stage]:
    """The admissions the policy would make onto the devices of the running jobs
    ``ends`` names (``ending``), as if those had ended."""
    jobs = [state.running[job_id] for job_id in ends]
    freed = {(a.node_id, d): job.id for job in jobs for a in job.allocations for d in a.devices}
    for job in jobs:
        state.index.remove(job.id)
    try:
        snapshot = state.snapshot()
        snapshot = replace(snapshot, running=tuple(j for j in snapshot.running if j.id not in ends))
        decided = policy(snapshot, now)
    finally:
        for job in jobs:
            state.index.add(job)
    stages: list[Stage] = []
    for adm in decided.admissions:
        devices = [(a.node_id, d) for a in adm.placement for d in a.devices]
        # wholly on devices about to free: any other device may be given to another job
        # meanwhile, as the staged job is not in the index until it holds them
        if not devices or any(d not in freed for d in devices):
            continue
        after = frozenset(freed[d] for d in devices)
        stages.append(Stage(adm, after, max(now, *(ends[j] for j in after))))
    return stages


def overdue(state: ClusterState, now: float, ahead_s: float) -> list[str]:
    """Staged jobs to withdraw: a job they follow runs past its expected end by more than
    ``ahead_s`` (they were staged on an estimate that proved wrong)."""
    late = {
        job_id
        for job_id in state.followers
        if (job := state.running.get(job_id)) is not None
        and not job.preempting
        and expected_end(state, job) + ahead_s < now
    }
    return sorted({f for job_id in late for f in state.followers[job_id]})
