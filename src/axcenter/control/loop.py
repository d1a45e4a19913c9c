"""The control loop: one thread that turns events into scheduling cycles.

Every cycle (ARCHITECTURE.md): take the events that arrived (submissions, exits, cancel
requests), snapshot the cache, ask ``sched.plan`` for a plan, apply it in one
transaction whose guards drop stale parts, dispatch admitted jobs to the executor, and
record what really started. Cycles are driven by events: a submission or an exit wakes
the loop at once, and events that arrive during a cycle are coalesced into the next one.
A submission that can neither start nor reclaim GPUs (``StartHint``, from the latest
cycle) joins the next cycle without waking the loop: only an exit, a cancel or a policy
change could let it start, and each of those wakes the loop.
Under a stream of events cycles are paced (``MIN_CYCLE_GAP_S`` and after): each takes a
batch, and the API thread keeps its share of the GIL. A timer cycle (``safety_cycle_s``)
remains only as a safety net.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from axcenter.accounting.budgets import load_budgets
from axcenter.accounting.ledger import Funding, HoldBook, InsufficientFunds, settle_jobs
from axcenter.control.convert import allocations_to_json, utc
from axcenter.control.reconcile import reconcile, requeue
from axcenter.control.state import ClusterState, StartHint
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
from axcenter.model.jobs import JobOutput, JobState
from axcenter.model.plan import Admission, PendingReason, Plan, Preemption
from axcenter.model.snapshot import Limits, PendingJob, RunningJob, SchedulerConfig, Snapshot
from axcenter.store.db import Store
from axcenter.store.jobs import JOBS, NEXT_ATTEMPT
from axcenter.store.lifecycle import (
    Move,
    movable,
    move_jobs,
    release_leases_many,
    take_leases_many,
    write_moves,
)
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


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    job_id: str
    at: float


_Message = _Submitted | _Forget | _Cancel | _Exited | _PolicyChanged | _Checkpoint


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
        #: from the latest cycle: whether a submission needs a cycle (read by API threads)
        self._hint: StartHint | None = None
        #: submitted jobs that joined the inbox without waking the loop, until a cycle
        #: takes them (their reason meanwhile: no GPUs for them)
        self._deferred: set[str] = set()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.executor = executor_factory(self._on_exit)
        self._launcher = ThreadPoolExecutor(LAUNCH_THREADS, thread_name_prefix="axc-launch")

    # -- called from other threads ------------------------------------------------

    def submitted(self, jobs: Iterable[PendingJob]) -> None:
        """Jobs were committed as pending: consider them in a cycle, now if any of them
        could start or reclaim GPUs, else in the next one something else wakes."""
        message = _Submitted(tuple(jobs))
        hint = self._hint
        if hint is None or any(hint.could_start(job) for job in message.jobs):
            self._post(message)
            return
        self._deferred.update(job.id for job in message.jobs)
        self._inbox.put(message)
        if self._hint is not hint:  # a cycle ended meanwhile and may not have seen them
            self._wake.set()

    @property
    def start_hint(self) -> StartHint | None:
        """The latest cycle's hint (None before the first cycle or after a failed one)."""
        return self._hint

    def reason(self, job_id: str) -> PendingReason | None:
        """Why a pending job waits (None if it is not pending, as far as the loop knows)."""
        found = self.state.reason(job_id)
        if found is None and job_id in self._deferred:
            return PendingReason.RESOURCES
        return found

    def forget(self, job_id: str) -> None:
        """A pending job was cancelled in the store: drop it from the queue."""
        self._post(_Forget(job_id))

    def cancel(self, job_id: str) -> None:
        """Stop a running job; its exit is recorded as cancelled."""
        self._post(_Cancel(job_id))

    def checkpointed(self, job_id: str, at: float) -> None:
        """A running job reported a checkpoint at ``at``: the next cycle weighs it as a
        preemption victim from there. It starts nothing, so it wakes nothing."""
        self._inbox.put(_Checkpoint(job_id, at))

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
                waiting = bool(self.state.pending or self._deferred)
                urgent = self._urgent or (self._exited and waiting)
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
                self._hint = None  # every submission wakes the loop until a cycle succeeds
                self.state = reconcile(self.store, self.executor, utc(self.clock()), self.state)
                self._deferred.clear()  # the rebuilt state holds every committed job
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
                case _Checkpoint(job_id, at):
                    self.state.checkpointed(job_id, at)
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
        self._publish_hint(new)

    def _publish_hint(self, taken: Sequence[PendingJob]) -> None:
        """After a cycle: the hint for the submissions to come; jobs it took are no longer
        deferred; and if submissions arrived during it (judged by the previous hint), one
        more cycle looks at them."""
        self._hint = self.state.start_hint()
        self._deferred.difference_update(job.id for job in taken)
        if not self._inbox.empty():
            self._wake.set()

    def _record_exits(self, exits: Sequence[ExitReport]) -> list[str]:
        """Write exits; return the ids of jobs that ended for good."""
        if not exits:
            return []
        ended: list[_End] = []
        with self.store.write() as session:
            for report in exits:
                at = utc(report.ended_at)
                terminal = _TERMINAL_OUTCOMES.get(report.outcome)
                if terminal is None:  # preempted or lost: back to the queue
                    reason = self._preempt_reasons.pop(report.job_id, report.message)
                    requeue(session, report.job_id, JobState.RUNNING, at, reason)
                    continue
                values = {"ended_at": at, "exit_code": report.exit_code, "pid": None}
                ended.append(_End(report.job_id, at, terminal, report.message, values))
            _end_runs(session, JobState.RUNNING, ended)
        self._budgets_stale = True
        ids = {e.job_id for e in ended}
        for report in exits:
            if report.job_id in ids:
                self.state.forget(report.job_id)
            else:
                self.state.requeue(report.job_id)
        return [e.job_id for e in ended]

    def _preempt(self, preemptions: Sequence[Preemption]) -> None:
        """Ask the executor to stop victims (SIGTERM, grace, SIGKILL); their exits requeue them."""
        for p in preemptions:
            if p.job_id in self.state.running and p.job_id not in self._preempt_reasons:
                self._preempt_reasons[p.job_id] = p.reason
                self.state.mark_preempting(p.job_id)
                self.executor.stop(p.job_id, StopReason.PREEMPT, self.kill_grace_s)

    def _apply(self, admissions: Sequence[Admission], now: float) -> list[tuple[Admission, _Spec]]:
        """Admit in one transaction; drop admissions whose job is no longer pending.

        A few statements for the whole batch: the jobs still pending are read (and
        locked, on PostgreSQL) first, then funded in turn (``HoldBook``), then moved,
        held and leased with one statement each.
        """
        if not admissions:
            return []
        at = utc(now)
        admitted: list[Admission] = []
        stale: list[str] = []
        with self.store.write() as session:
            pending = movable(
                session, [a.job_id for a in admissions], [JobState.PENDING], JobState.ADMITTED
            )
            book = HoldBook(session, at)
            moves: list[Move] = []
            for adm in admissions:
                if adm.job_id not in pending:
                    stale.append(adm.job_id)
                    continue
                fundable, funding = self._funding(book, adm)
                if not fundable:
                    continue
                reason = f"admitted on {_where(adm, self.state)}" + (
                    " (borrowed capacity)" if adm.borrowed else ""
                )
                values = {
                    "gpu_type": adm.gpu_type or None,
                    "placement": allocations_to_json(adm.placement),
                    "borrowed": adm.borrowed,
                    "allocation_id": funding.id if funding else None,
                }
                moves.append(Move(adm.job_id, at, reason, values))
                admitted.append(adm)
            write_moves(session, moves, pending, JobState.ADMITTED)
            book.write()
            take_leases_many(session, [(a.job_id, a.placement) for a in admitted])
            specs = (
                {
                    row.id: _Spec(*row)
                    for row in session.execute(_SELECT_SPECS, {"ids": [a.job_id for a in admitted]})
                }
                if admitted
                else {}
            )
        for job_id in stale:
            self.state.forget(job_id)
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
        return [(adm, specs[adm.job_id]) for adm in admitted]

    def _funding(self, book: HoldBook, adm: Admission) -> tuple[bool, Funding | None]:
        """(may it start, the allocation it is held on). No hold: it is not charged
        (unfunded, or its project is not under allocation control). It may not start if
        the store says the allocation cannot pay after all (stale cache); else its hold
        is made in ``book``."""
        spec = self.state.pending.get(adm.job_id)
        if not adm.funded or spec is None or not spec.gpus_per_node:
            return True, None
        if spec.project_id not in self.state.budgets:
            return True, None
        allocation = book.allocation(spec.project_id, adm.gpu_type)
        try:
            if allocation is None:
                raise InsufficientFunds("no current allocation")
            book.hold(
                allocation,
                adm.job_id,
                adm.gpu_type,
                spec.total_gpus,
                spec.time_limit_s + self.state.hold_grace_s,
            )
        except InsufficientFunds:
            self.state.reasons[adm.job_id] = PendingReason.BUDGET
            return False, None
        return True, allocation

    def _refresh_budgets(self, session: Session, at: datetime) -> None:
        session.flush()
        self.state.budgets = load_budgets(session, at, self.state.hold_grace_s)
        self._budgets_stale = False

    def _dispatch(self, admitted: Sequence[tuple[Admission, _Spec]]) -> list[str]:
        """Start admitted jobs; record starts and launch failures. Returns failed ids.

        Launches run side by side (``LAUNCH_THREADS``): a fork returns only once the child
        has exec'd, milliseconds each, and a wave of exits admits many jobs at once.
        """
        started: list[Started] = []
        failed: list[_End] = []
        names = {node_id: node.name for node_id, node in self.state.nodes.items()}
        launches = [self._launch(adm, spec, names) for adm, spec in admitted]
        for launch, outcome in zip(launches, self._start_all(launches), strict=True):
            if isinstance(outcome, LaunchError):
                at = utc(self.clock())
                message = f"launch failed: {outcome}"
                failed.append(_End(launch.job_id, at, JobState.FAILED, message, {"ended_at": at}))
            else:
                started.append(outcome)
        with self.store.write() as session:
            move_jobs(
                session,
                [
                    Move(
                        s.job_id,
                        utc(s.started_at),
                        "started",
                        {"started_at": utc(s.started_at), "pid": s.pid, "attempts": NEXT_ATTEMPT},
                    )
                    for s in started
                ],
                [JobState.ADMITTED],
                JobState.RUNNING,
            )
            _end_runs(session, JobState.ADMITTED, failed)
        if failed:
            self._budgets_stale = True
        for s in started:
            running = self.state.running.get(s.job_id)
            if running is not None:
                self.state.update_running(replace(running, started_at=s.started_at))
        for end in failed:
            self.state.forget(end.job_id)
        return [end.job_id for end in failed]

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

    def _launch(self, adm: Admission, spec: _Spec, names: dict[str, str]) -> Launch:
        return Launch(
            job_id=spec.id,
            command=tuple(spec.command),
            workdir=spec.workdir,
            env=dict(spec.env),
            node_devices=tuple((names[a.node_id], a.devices) for a in adm.placement),
            time_limit_s=spec.time_limit_s,
            log_path=(
                str(self.logs_dir / f"{spec.id}.log") if spec.output == JobOutput.LOG else None
            ),
            extra_env=(
                {"AXC_ARRAY_ID": spec.array_id, "AXC_ARRAY_INDEX": str(spec.array_index)}
                if spec.array_id is not None
                else {}
            ),
        )


@dataclass(frozen=True, slots=True)
class _Spec:
    """What a launch needs of a job's row (``_SELECT_SPECS``)."""

    id: str
    command: list[str]
    workdir: str
    env: dict[str, str]
    time_limit_s: int
    array_id: str | None
    array_index: int | None
    output: str


_SELECT_SPECS = select(
    JOBS.c.id,
    JOBS.c.command,
    JOBS.c.workdir,
    JOBS.c.env,
    JOBS.c.time_limit_s,
    JOBS.c.array_id,
    JOBS.c.array_index,
    JOBS.c.output,
).where(JOBS.c.id.in_(bindparam("ids", expanding=True)))


@dataclass(frozen=True, slots=True)
class _End:
    """A run that ends for good: its job, when, in which state, why, and the columns set."""

    job_id: str
    at: datetime
    state: JobState
    reason: str
    values: Mapping[str, object]


def _end_runs(session: Session, from_state: JobState, ends: Sequence[_End]) -> None:
    """Settle the runs, move their jobs to their end states and free their devices: as
    ``settle_job``, ``transition`` and ``release_leases`` for each, in a few statements."""
    if not ends:
        return
    settle_jobs(session, [(e.job_id, e.at) for e in ends])
    by_state: dict[JobState, list[Move]] = {}
    for e in ends:
        by_state.setdefault(e.state, []).append(Move(e.job_id, e.at, e.reason, e.values))
    for state, moves in by_state.items():
        move_jobs(session, moves, [from_state], state)
    release_leases_many(session, [e.job_id for e in ends])


def _where(adm: Admission, state: ClusterState) -> str:
    parts = []
    for a in adm.placement:
        node = state.nodes.get(a.node_id)
        name = node.name if node else a.node_id
        parts.append(f"{name}:{','.join(map(str, a.devices))}" if a.devices else name)
    return " ".join(parts)
