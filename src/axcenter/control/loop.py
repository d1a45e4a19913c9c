"""The control loop: one thread that turns events into scheduling cycles.

Every cycle (ARCHITECTURE.md): take the events that arrived (submissions, exits, cancel
requests), snapshot the cache, ask ``sched.plan`` for a plan, apply it in one
transaction whose guards drop stale parts, dispatch admitted jobs to the executor, and
record what really started. Cycles are driven by events: a submission or an exit wakes
the loop at once, and events that arrive during a cycle are coalesced into the next one.
Under a stream of events cycles are paced (``MIN_CYCLE_GAP_S`` and after): each takes a
batch, and the API thread keeps its share of the GIL. A timer cycle (``safety_cycle_s``)
remains only as a safety net.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from axcenter.accounting.budgets import load_budgets
from axcenter.accounting.ledger import (
    InsufficientFunds,
    check_hold,
    current_allocation,
    record_hold,
    settle_job,
)
from axcenter.control.convert import allocations_to_json, utc
from axcenter.control.reconcile import reconcile, requeue
from axcenter.control.state import ClusterState
from axcenter.control.watch import JobWatch
from axcenter.executors.base import (
    Executor,
    ExitReport,
    Launch,
    LaunchError,
    Outcome,
    Started,
    StopReason,
)
from axcenter.model.jobs import JobState
from axcenter.model.plan import Admission, PendingReason, Plan, Preemption
from axcenter.model.snapshot import Limits, PendingJob, RunningJob, SchedulerConfig, Snapshot
from axcenter.store import orm
from axcenter.store.db import Store
from axcenter.store.jobs import NEXT_ATTEMPT, release_leases, take_leases, transition
from axcenter.store.policy import load_policy

__all__ = ["ControlLoop"]

log = logging.getLogger(__name__)

#: reload policy and budgets at least this often (seconds), events or not
POLICY_REFRESH_S = 60.0
#: jobs that may wait in a quick cycle (woken by submissions only) before it ends
QUICK_DEPTH = 32
#: jobs launched side by side (each fork waits for its child's exec)
LAUNCH_THREADS = 8
#: shortest pause between two cycles woken by events, so that events arriving together
#: (a wave of exits, a burst of submissions) are taken by one cycle
MIN_CYCLE_GAP_S = 0.005
#: after a cycle the loop pauses as long as it ran (so under a stream of events it holds
#: the GIL at most about half the time and API requests keep flowing), but at most this
#: long before a cycle woken by submissions (or by exits while no job waits)...
MAX_QUICK_GAP_S = 0.05
#: ...and this long before one that has devices to hand on (exits while jobs wait) or a
#: cancel or policy change to apply
MAX_URGENT_GAP_S = 0.02

Policy = Callable[[Snapshot, float], Plan]

_TERMINAL_OUTCOMES = {
    Outcome.SUCCEEDED: JobState.SUCCEEDED,
    Outcome.FAILED: JobState.FAILED,
    Outcome.CANCELLED: JobState.CANCELLED,
    Outcome.TIMED_OUT: JobState.TIMED_OUT,
}


@dataclass(frozen=True, slots=True)
class _Submitted:
    jobs: tuple[PendingJob, ...]


@dataclass(frozen=True, slots=True)
class _Forget:
    job_id: str


@dataclass(frozen=True, slots=True)
class _Cancel:
    job_id: str


@dataclass(frozen=True, slots=True)
class _Exited:
    report: ExitReport


@dataclass(frozen=True, slots=True)
class _PolicyChanged:
    pass


_Message = _Submitted | _Forget | _Cancel | _Exited | _PolicyChanged


class ControlLoop:
    def __init__(
        self,
        store: Store,
        executor_factory: Callable[[Callable[[ExitReport], None]], Executor],
        policy: Policy,
        *,
        logs_dir: Path,
        kill_grace_s: float,
        safety_cycle_s: float = 5.0,
        config: SchedulerConfig | None = None,
        user_limits: Limits | None = None,
        hold_grace_s: int = 0,
        watch: JobWatch | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.policy = policy
        self.logs_dir = logs_dir
        self.kill_grace_s = kill_grace_s
        self.safety_cycle_s = safety_cycle_s
        self.watch = watch or JobWatch()
        self.clock = clock
        self.state = ClusterState(
            config=config or SchedulerConfig(),
            user_limits=user_limits or Limits(),
            hold_grace_s=hold_grace_s,
        )
        self.cycles = 0
        self._policy_loaded_at = clock()
        self._full_next = True  # the first cycle looks at the whole backlog
        #: a write changed balances since budgets were read: read them before planning
        self._budgets_stale = False
        #: why each job being preempted is stopped, for its preempted event
        self._preempt_reasons: dict[str, str] = {}
        self._inbox: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        #: a cancel or a policy change is waiting (see MAX_URGENT_GAP_S)
        self._urgent = False
        #: an exit is waiting: urgent when jobs wait for the devices it frees
        self._exited = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.executor = executor_factory(self._on_exit)
        self._launcher = ThreadPoolExecutor(LAUNCH_THREADS, thread_name_prefix="axc-launch")

    # -- called from other threads ------------------------------------------------

    def submitted(self, jobs: Iterable[PendingJob]) -> None:
        """Jobs were committed as pending: consider them in the next cycle, now."""
        self._post(_Submitted(tuple(jobs)))

    def forget(self, job_id: str) -> None:
        """A pending job was cancelled in the store: drop it from the queue."""
        self._post(_Forget(job_id))

    def cancel(self, job_id: str) -> None:
        """Stop a running job; its exit is recorded as cancelled."""
        self._post(_Cancel(job_id))

    def policy_changed(self) -> None:
        """Quotas, cohorts, reservations, limits, grants or prices changed in the store:
        reload them (and the budgets they imply)."""
        self._post(_PolicyChanged())

    def _on_exit(self, report: ExitReport) -> None:
        self._post(_Exited(report))

    def _post(self, message: _Message) -> None:
        if isinstance(message, _Exited):
            self._exited = True
        elif not isinstance(message, _Submitted):
            self._urgent = True
        self._inbox.put(message)
        self._wake.set()

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self.state = reconcile(self.store, self.executor, utc(self.clock()), self.state)
        self._thread = threading.Thread(target=self._run, name="axc-control", daemon=True)
        self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """Stop cycling, stop the executor's jobs and requeue them (they were accepted)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self.executor.close(self.kill_grace_s)
        self._launcher.shutdown()
        self._cycle(plan=False)  # record the shutdown exits as requeues

    def _run(self) -> None:
        ran = 0.0  # how long the last cycle ran (see MAX_QUICK_GAP_S)
        ended = time.monotonic()
        while not self._stopping.is_set():
            woken = self._wake.wait(self.safety_cycle_s)
            if woken:
                urgent = self._urgent or (self._exited and bool(self.state.pending))
                owed = max(
                    MIN_CYCLE_GAP_S, min(ran, MAX_URGENT_GAP_S if urgent else MAX_QUICK_GAP_S)
                )
                if (pause := ended + owed - time.monotonic()) > 0:
                    self._stopping.wait(pause)  # more events arrive: one cycle takes them all
            self._wake.clear()
            self._urgent = self._exited = False
            if self._stopping.is_set():
                break
            began = time.monotonic()
            try:
                self._cycle(timer=not woken)
            except Exception:
                log.exception("control cycle failed; rebuilding state from the store")
                self.state = reconcile(self.store, self.executor, utc(self.clock()), self.state)
            ended = time.monotonic()
            ran = ended - began
            log.debug("cycle %d ran %.1f ms", self.cycles, ran * 1000.0)

    # -- one cycle ------------------------------------------------------------------

    def _cycle(self, *, plan: bool = True, timer: bool = False) -> None:
        """One cycle. A cycle woken only by submissions is *quick*: nothing was freed, so
        only the new jobs can start, and the scheduler examines few jobs (Slurm does the
        same on submit with ``default_queue_depth``); exits, cancels, policy changes and
        the timer run full cycles."""
        self.cycles += 1
        exits: list[ExitReport] = []
        new: list[PendingJob] = []
        full, self._full_next = timer or self._full_next, False
        while True:
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                break
            match message:
                case _Submitted(jobs):
                    for job in jobs:
                        self.state.add_pending(job)
                    new += jobs
                case _Forget(job_id):
                    self.state.forget(job_id)
                    full = True
                case _Cancel(job_id):
                    full = True
                    if job_id in self.state.running:
                        self.executor.stop(job_id, StopReason.CANCEL, self.kill_grace_s)
                case _Exited(report):
                    exits.append(report)
                    full = True
                case _PolicyChanged():
                    full = True
                    with self.store.read() as session:
                        self.state.policy = load_policy(session, utc(self.clock()))
                        self._refresh_budgets(session, utc(self.clock()))
        now = self.clock()
        if now - self._policy_loaded_at >= POLICY_REFRESH_S:
            # allocation windows open and close, reservations start and end, with no event
            self._policy_loaded_at = now
            self._post(_PolicyChanged())
        ended = self._record_exits(exits)
        if plan and (full or not self.state.cannot_start(new)):
            if self._budgets_stale:  # once per cycle, however many writes changed them
                with self.store.read() as session:
                    self._refresh_budgets(session, utc(now))
            self.state.usage.advance(now, self.state.index.held)
            snapshot = self.state.snapshot()
            if not full:
                depth = min(snapshot.config.bf_max_job_test, QUICK_DEPTH)
                snapshot = replace(snapshot, config=replace(snapshot.config, bf_max_job_test=depth))
            decided = self.policy(snapshot, now)
            if full:
                self.state.reasons = dict(decided.waiting)
                self.state.estimates = {e.job_id: e.at for e in decided.estimates}
            else:
                self.state.reasons.update(decided.waiting)
            self._preempt(decided.preemptions)
            admitted = self._apply(decided.admissions, now)
            if admitted:
                ended += self._dispatch(admitted)
        if ended:
            self.watch.notify(ended)

    def _record_exits(self, exits: Sequence[ExitReport]) -> list[str]:
        """Write exits; return the ids of jobs that ended for good."""
        if not exits:
            return []
        ended: list[str] = []
        with self.store.write() as session:
            for report in exits:
                at = utc(report.ended_at)
                terminal = _TERMINAL_OUTCOMES.get(report.outcome)
                if terminal is None:  # preempted or lost: back to the queue
                    reason = self._preempt_reasons.pop(report.job_id, report.message)
                    requeue(session, report.job_id, JobState.RUNNING, at, reason)
                    continue
                settle_job(session, report.job_id, at)
                transition(
                    session,
                    report.job_id,
                    [JobState.RUNNING],
                    terminal,
                    at=at,
                    reason=report.message,
                    ended_at=at,
                    exit_code=report.exit_code,
                    pid=None,
                )
                release_leases(session, report.job_id)
                ended.append(report.job_id)
        self._budgets_stale = True
        for report in exits:
            if report.job_id in ended:
                self.state.forget(report.job_id)
            else:
                self.state.requeue(report.job_id)
        return ended

    def _preempt(self, preemptions: Sequence[Preemption]) -> None:
        """Ask the executor to stop victims (SIGTERM, grace, SIGKILL); their exits requeue them."""
        for p in preemptions:
            if p.job_id in self.state.running and p.job_id not in self._preempt_reasons:
                self._preempt_reasons[p.job_id] = p.reason
                self.state.mark_preempting(p.job_id)
                self.executor.stop(p.job_id, StopReason.PREEMPT, self.kill_grace_s)

    def _apply(
        self, admissions: Sequence[Admission], now: float
    ) -> list[tuple[Admission, orm.Job]]:
        """Admit in one transaction; drop admissions whose job is no longer pending."""
        if not admissions:
            return []
        at = utc(now)
        admitted: list[Admission] = []
        with self.store.write() as session:
            for adm in admissions:
                fundable, funding = self._funding(session, adm, at)
                if not fundable:
                    continue
                applied = transition(
                    session,
                    adm.job_id,
                    [JobState.PENDING],
                    JobState.ADMITTED,
                    at=at,
                    reason=f"admitted on {_where(adm, self.state)}"
                    + (" (borrowed capacity)" if adm.borrowed else ""),
                    gpu_type=adm.gpu_type or None,
                    placement=allocations_to_json(adm.placement),
                    borrowed=adm.borrowed,
                    allocation_id=funding[0].id if funding else None,
                )
                if applied is None:
                    self.state.forget(adm.job_id)
                    continue
                if funding:
                    allocation, won, gpu_secs = funding
                    record_hold(session, allocation, adm.job_id, adm.gpu_type, gpu_secs, won, at)
                take_leases(session, adm.job_id, adm.placement)
                admitted.append(adm)
            rows = {
                row.id: row
                for row in session.scalars(
                    select(orm.Job).where(orm.Job.id.in_([a.job_id for a in admitted]))
                )
            }
        if admitted:
            self._budgets_stale = True
        for adm in admitted:
            spec = self.state.pending[adm.job_id]
            self.state.start(
                RunningJob(
                    id=spec.id,
                    project_id=spec.project_id,
                    user_id=spec.user_id,
                    started_at=now,
                    time_limit_s=spec.time_limit_s,
                    allocations=adm.placement,
                    priority=spec.priority,
                    gpu_type=adm.gpu_type,
                    borrowed=adm.borrowed,
                )
            )
        return [(adm, rows[adm.job_id]) for adm in admitted]

    def _funding(
        self, session: Session, adm: Admission, at: datetime
    ) -> tuple[bool, tuple[orm.Allocation, int, int] | None]:
        """(may it start, (allocation, won, GPU-seconds) to hold). No hold: it is not
        charged (unfunded, or its project is not under allocation control). It may not
        start if the store says the allocation cannot pay after all (stale cache)."""
        spec = self.state.pending.get(adm.job_id)
        if not adm.funded or spec is None or not spec.gpus_per_node:
            return True, None
        if spec.project_id not in self.state.budgets:
            return True, None
        allocation = current_allocation(session, spec.project_id, adm.gpu_type, at)
        try:
            if allocation is None:
                raise InsufficientFunds("no current allocation")
            won, gpu_secs = check_hold(
                session,
                allocation,
                adm.gpu_type,
                spec.total_gpus,
                spec.time_limit_s + self.state.hold_grace_s,
                at,
            )
        except InsufficientFunds:
            self.state.reasons[adm.job_id] = PendingReason.BUDGET
            return False, None
        return True, (allocation, won, gpu_secs)

    def _refresh_budgets(self, session: Session, at: datetime) -> None:
        session.flush()
        self.state.budgets = load_budgets(session, at, self.state.hold_grace_s)
        self._budgets_stale = False

    def _dispatch(self, admitted: Sequence[tuple[Admission, orm.Job]]) -> list[str]:
        """Start admitted jobs; record starts and launch failures. Returns failed ids.

        Launches run side by side (``LAUNCH_THREADS``): a fork returns only once the child
        has exec'd, milliseconds each, and a wave of exits admits many jobs at once.
        """
        started: list[Started] = []
        failed: list[tuple[str, str]] = []
        launches = [self._launch(adm, row) for adm, row in admitted]
        for launch, outcome in zip(launches, self._start_all(launches), strict=True):
            if isinstance(outcome, LaunchError):
                failed.append((launch.job_id, f"launch failed: {outcome}"))
            else:
                started.append(outcome)
        with self.store.write() as session:
            for s in started:
                transition(
                    session,
                    s.job_id,
                    [JobState.ADMITTED],
                    JobState.RUNNING,
                    at=utc(s.started_at),
                    reason="started",
                    started_at=utc(s.started_at),
                    pid=s.pid,
                    attempts=NEXT_ATTEMPT,
                )
            for job_id, message in failed:
                at = utc(self.clock())
                settle_job(session, job_id, at)
                transition(
                    session,
                    job_id,
                    [JobState.ADMITTED],
                    JobState.FAILED,
                    at=at,
                    reason=message,
                    ended_at=at,
                )
                release_leases(session, job_id)
        if failed:
            self._budgets_stale = True
        for s in started:
            running = self.state.running.get(s.job_id)
            if running is not None:
                self.state.update_running(replace(running, started_at=s.started_at))
        for job_id, _ in failed:
            self.state.forget(job_id)
        return [job_id for job_id, _ in failed]

    def _start_all(self, launches: Sequence[Launch]) -> list[Started | LaunchError]:
        """``executor.start`` for each launch, in parallel; a LaunchError is returned."""

        def start(launch: Launch) -> Started | LaunchError:
            try:
                return self.executor.start(launch)
            except LaunchError as exc:
                return exc

        if len(launches) == 1:
            return [start(launches[0])]
        return list(self._launcher.map(start, launches))

    def _launch(self, adm: Admission, row: orm.Job) -> Launch:
        names = {node_id: node.name for node_id, node in self.state.nodes.items()}
        return Launch(
            job_id=row.id,
            command=tuple(row.command),
            workdir=row.workdir,
            env=dict(row.env),
            node_devices=tuple((names[a.node_id], a.devices) for a in adm.placement),
            time_limit_s=row.time_limit_s,
            log_path=str(self.logs_dir / f"{row.id}.log"),
            extra_env=(
                {"AXC_ARRAY_ID": row.array_id, "AXC_ARRAY_INDEX": str(row.array_index)}
                if row.array_id is not None
                else {}
            ),
        )


def _where(adm: Admission, state: ClusterState) -> str:
    parts = []
    for a in adm.placement:
        node = state.nodes.get(a.node_id)
        name = node.name if node else a.node_id
        parts.append(f"{name}:{','.join(map(str, a.devices))}" if a.devices else name)
    return " ".join(parts)
