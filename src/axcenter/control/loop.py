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
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from axcenter.accounting.budgets import load_budgets
from axcenter.accounting.ledger import Funding, HoldBook, InsufficientFunds
from axcenter.control.convert import allocations_to_json, utc
from axcenter.control.live import LiveState
from axcenter.control.metrics import LoopMetrics
from axcenter.control.reconcile import reconcile
from axcenter.control.runs import job_of, record_runs
from axcenter.control.stage import Stage, ending, overdue, plan_stages
from axcenter.control.state import ClusterState, StartHint
from axcenter.control.usage import usage_weights
from axcenter.control.watch import JobWatch
from axcenter.executors.base import (
    Engine,
    EngineEvent,
    EngineFactory,
    LaunchError,
    NodesChanged,
    Outcome,
    RunAs,
    RunEnded,
    RunSpec,
    RunStarted,
    StopReason,
)
from axcenter.model.jobs import JobOutput, JobState
from axcenter.model.logpath import LogNames, expand_log_pattern
from axcenter.model.plan import Admission, PendingReason, Plan, Preemption
from axcenter.model.snapshot import Limits, PendingJob, RunningJob, SchedulerConfig, Snapshot
from axcenter.store import orm
from axcenter.store.db import Store
from axcenter.store.jobs import JOBS, NEXT_ATTEMPT
from axcenter.store.lifecycle import Move, movable, take_leases_many, write_moves
from axcenter.store.policy import load_policy

__all__ = ["ControlLoop"]

log = logging.getLogger(__name__)

#: reload policy and budgets at least this often (seconds), events or not
POLICY_REFRESH_S = 60.0
#: jobs that may wait in a quick cycle (woken by submissions only) before it ends
QUICK_DEPTH = 32
#: engine calls (submissions, stops, acknowledgements) side by side, off the loop thread
ENGINE_THREADS = 8
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

#: a start the engine reported is recorded by the next cycle, at most this much later
START_RECORD_S = 0.05
#: a failed cycle rebuilds the state at once, then retries after this, doubling up to
#: ``HEAL_MAX_S``, until the store answers
HEAL_FIRST_S = 0.1
HEAL_MAX_S = 5.0

Policy = Callable[[Snapshot, float], Plan]


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
class _Requeue:
    job_id: str
    reason: str
    held: bool


@dataclass(frozen=True, slots=True)
class _Event:
    """What an engine reported."""

    event: EngineEvent


@dataclass(frozen=True, slots=True)
class _Dispatched:
    """The engine accepted a run (it may still queue it)."""

    run_id: str
    ref: str


@dataclass(frozen=True, slots=True)
class _PolicyChanged:
    pass


@dataclass(frozen=True, slots=True)
class _Rebuild:
    pass


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    job_id: str
    at: float


@dataclass(frozen=True, slots=True)
class _View:
    """Someone off the loop (the estimator) wants an immutable view of the cache."""

    deliver: Callable[[Snapshot, float], None]


_Message = (
    _Submitted
    | _Forget
    | _Cancel
    | _Requeue
    | _Event
    | _Dispatched
    | _PolicyChanged
    | _Checkpoint
    | _Rebuild
    | _View
)


class ControlLoop:
    def __init__(
        self,
        store: Store,
        engine_factory: EngineFactory,
        policy: Policy,
        *,
        kill_grace_s: float,
        safety_cycle_s: float = 5.0,
        stage_ahead_s: float = 0.0,
        config: SchedulerConfig | None = None,
        user_limits: Limits | None = None,
        hold_grace_s: int = 0,
        watch: JobWatch | None = None,
        metrics: LoopMetrics | None = None,
        live: LiveState | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.policy = policy
        self.kill_grace_s = kill_grace_s
        self.safety_cycle_s = safety_cycle_s
        #: stage waiting jobs behind jobs expected to end this soon (``control/stage.py``)
        self.stage_ahead_s = stage_ahead_s
        self.watch = watch or JobWatch()
        #: metrics and health (``control/metrics.py``): the loop only calls its hooks
        self.metrics = metrics or LoopMetrics()
        #: a sequence number and the jobs each changing cycle touched (``control/live.py``)
        self.live = live or LiveState()
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
        #: the current run of each job that holds devices (job id -> run id): an engine's
        #: event about any other run is stale (a duplicate, or of an earlier attempt)
        self.runs: dict[str, str] = {}
        #: stops asked of runs the engine may not know yet (dispatch in flight)
        self._stops: dict[str, StopReason] = {}
        #: current runs whose start is recorded (their duplicates and refs need no write)
        self._started: set[str] = set()
        #: current runs the engine has accepted (its submit answered): a staged run may
        #: follow them (``control/stage.py``)
        self._accepted: set[str] = set()
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
        self.engine: Engine = engine_factory(self._on_event)
        self._calls = ThreadPoolExecutor(ENGINE_THREADS, thread_name_prefix="axc-engine")
        self._detached = False  # the loop stopped: engine calls are made in place
        self._in_flight: set[futures.Future[None]] = set()  # submissions being made
        self._taken: list[_Message] = []  # what the current cycle took from the inbox
        self._record_soon = False  # starts wait in the inbox (see START_RECORD_S)

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

    def requeue(self, job_id: str, reason: str, *, held: bool = False) -> None:
        """Stop a job's run as for a preemption: its end puts it back to pending, held if
        ``held`` (``axc requeue``)."""
        self._post(_Requeue(job_id, reason, held))

    def checkpointed(self, job_id: str, at: float) -> None:
        """A running job reported a checkpoint at ``at``: the next cycle weighs it as a
        preemption victim from there. It starts nothing, so it wakes nothing."""
        self._inbox.put(_Checkpoint(job_id, at))

    def policy_changed(self) -> None:
        """Quotas, cohorts, reservations, limits, grants or prices changed in the store:
        reload them (and the budgets they imply)."""
        self._post(_PolicyChanged())

    def view(self, deliver: Callable[[Snapshot, float], None]) -> None:
        """Have the next cycle call ``deliver(view, now)`` with an immutable view of the
        cache (``ClusterState.frozen``), on the loop's thread: it must only keep it."""
        self._post(_View(deliver))

    def rebuild(self) -> None:
        """Rebuild the cache from the store (as after a failed cycle): after a takeover,
        for what the fenced controller committed before it knew (``Center``)."""
        self._post(_Rebuild())

    def _on_event(self, event: EngineEvent) -> None:
        self._post(_Event(event))

    def _post(self, message: _Message) -> None:
        if isinstance(message, _Dispatched) or (
            isinstance(message, _Event) and isinstance(message.event, RunStarted)
        ):
            # a start frees nothing: it rides with the next cycle, at most START_RECORD_S
            # away, so that a wave of starts is one transaction, not one cycle each
            self._inbox.put(message)
            self._record_soon = True
            return
        if isinstance(message, _Event) and isinstance(message.event, RunEnded):
            self._exited = True
        elif not isinstance(message, _Submitted):
            self._urgent = True
        self._inbox.put(message)
        self._wake.set()

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Make the store agree with the engine (adopting what still runs, recording what
        ended meanwhile), then start cycling."""
        self._resync()
        self._thread = threading.Thread(target=self._run, name="axc-control", daemon=True)
        self._thread.start()
        self._wake.set()

    def stop(self, *, stop_jobs: bool = False) -> None:
        """Stop cycling and detach from the engine: jobs keep running and are adopted at
        the next start. With ``stop_jobs`` (an operator's choice), stop them and requeue
        them instead (they were accepted)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self._calls.shutdown(wait=True)  # dispatches in flight reach the engine, and us
        self._detached = True
        if self.store.fenced.is_set():  # the runs are the new controller's now
            self.engine.close(stop_runs=False)
            return
        self.engine.close(stop_runs=stop_jobs, grace_s=self.kill_grace_s)
        self._cycle(plan=False)  # record what the engine reported until now

    def _resync(self) -> None:
        """Rebuild the cache from the store after making the store agree with the engine.

        Submissions in flight are waited for first: a run the engine is being handed must
        not be taken for one it never received."""
        futures.wait(list(self._in_flight))
        self.state, self.runs = reconcile(self.store, self.engine, utc(self.clock()), self.state)
        self._stops = {job_id: r for job_id, r in self._stops.items() if job_id in self.runs}
        self._started.clear()
        self._accepted.clear()

    def _run(self) -> None:
        ran = 0.0  # how long the last cycle ran (see MAX_QUICK_GAP_S)
        ended = time.monotonic()
        while not self._stopping.is_set():
            woken = self._wake.wait(START_RECORD_S if self._record_soon else self.safety_cycle_s)
            woken = woken or self._record_soon
            if woken:
                waiting = bool(self.state.pending or self._deferred)
                urgent = self._urgent or (self._exited and waiting)
                owed = max(
                    MIN_CYCLE_GAP_S, min(ran, MAX_URGENT_GAP_S if urgent else MAX_QUICK_GAP_S)
                )
                if (pause := ended + owed - time.monotonic()) > 0:
                    self._stopping.wait(pause)  # more events arrive: one cycle takes them all
            self._wake.clear()
            self._urgent = self._exited = self._record_soon = False
            if self._stopping.is_set():
                break
            began = time.monotonic()
            try:
                self._cycle(timer=not woken)
            except Exception as exc:
                if self.store.fenced.is_set():  # another controller took over: stop here
                    log.critical("control loop stops: another controller took the store")
                    break
                log.exception("control cycle failed; rebuilding state from the store")
                self.metrics.cycle_failed(exc)
                self._heal()
            else:
                self.metrics.cycled(time.monotonic() - began)
            # the runs this cycle handed over are part of its work: wait (bounded, so a
            # slow engine stalls nothing) while they are taken, and pace the next cycle
            # by the whole, so that what arrives meanwhile is taken by one cycle
            if self._in_flight:
                waiting = bool(self.state.pending)  # then exits to come are urgent
                cap = MAX_URGENT_GAP_S if waiting else MAX_QUICK_GAP_S
                futures.wait(list(self._in_flight), timeout=cap)
            ended = time.monotonic()
            ran = ended - began
            log.debug("cycle %d ran %.1f ms", self.cycles, ran * 1000.0)

    def _heal(self) -> None:
        """After a failed cycle: rebuild the state from the store and the engine, retrying
        with backoff until the store answers again (the loop never dies while the process
        lives). Nothing the cycle took is lost: submissions are in the store, the engine
        keeps every end until it is acknowledged, and cancel requests are posted again."""
        self._hint = None  # every submission wakes the loop until a cycle succeeds
        retry = [m for m in self._taken if isinstance(m, _Cancel | _Forget | _Requeue)]
        delay = HEAL_FIRST_S
        while not self._stopping.is_set() and not self.store.fenced.is_set():
            try:
                self._resync()
            except Exception as exc:
                log.exception("rebuilding the state failed; next try in %.1f s", delay)
                self.metrics.cycle_failed(exc)
                self._stopping.wait(delay)
                delay = min(delay * 2, HEAL_MAX_S)
                continue
            self._deferred.clear()  # the rebuilt state holds every committed job
            for message in retry:
                self._post(message)
            return

    # -- one cycle ------------------------------------------------------------------

    def _cycle(self, *, plan: bool = True, timer: bool = False) -> None:
        """One cycle. A cycle woken only by submissions is *quick*: nothing was freed, so
        only the new jobs can start, and the scheduler examines few jobs (Slurm does the
        same on submit with ``default_queue_depth``); exits, cancels, policy changes and
        the timer run full cycles."""
        self.cycles += 1
        events: list[RunStarted | RunEnded] = []
        dispatched: dict[str, str] = {}
        resync = False
        new: list[PendingJob] = []
        full, self._full_next = timer or self._full_next, False
        self._taken = []
        touched: dict[str, str] = {}  # job id -> project id, published after the cycle
        everything = False
        views: list[Callable[[Snapshot, float], None]] = []
        while True:
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                break
            self._taken.append(message)
            match message:
                case _Submitted(jobs):
                    for job in jobs:
                        self.state.add_pending(job)
                        touched[job.id] = job.project_id
                    new += jobs
                case _Forget(job_id):
                    self._touch(touched, job_id)
                    self.state.forget(job_id)
                    full = True
                case _Cancel(job_id):
                    full = True
                    self._stop(job_id, StopReason.CANCEL)
                case _Requeue(job_id, reason, held):
                    full = True
                    self._requeue(job_id, reason, held=held)
                case _Event(RunStarted() | RunEnded() as event):
                    self._touch(touched, job_of(event.run_id))
                    events.append(event)
                    full = full or isinstance(event, RunEnded)
                case _Event(NodesChanged()) | _Rebuild():
                    resync = full = everything = True
                case _Dispatched(run_id, ref):
                    dispatched[run_id] = ref
                case _Checkpoint(job_id, at):
                    self.state.checkpointed(job_id, at)
                case _View(deliver):
                    views.append(deliver)
                case _PolicyChanged():
                    full = everything = True
                    with self.store.read() as session:
                        self.state.policy = load_policy(session, utc(self.clock()))
                        self.state.usage.weights = usage_weights(
                            session, utc(self.clock()), self.state.config
                        )
                        self._refresh_budgets(session, utc(self.clock()))
        now = self.clock()
        if now - self._policy_loaded_at >= POLICY_REFRESH_S:
            # allocation windows open and close, reservations start and end, with no event
            self._policy_loaded_at = now
            self._post(_PolicyChanged())
        ended = self._record(events, dispatched)
        self._promote(touched)
        if resync:  # the engine's nodes changed: the store, then the cache, follow
            self._resync()
        if plan and (full or not self.state.cannot_start(new)):
            self._fresh_budgets(now)
            self.state.usage.advance(now, self.state.index.usage)
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
            for p in decided.preemptions:
                self._touch(touched, p.job_id)
            self._preempt(decided.preemptions)
            admitted = self._apply(decided.admissions, now)
            if admitted:
                for adm, _ in admitted:
                    self._touch(touched, adm.job_id)
                self._dispatch(admitted)
        elif plan:  # nothing was freed and the new jobs can neither start nor reclaim
            for job in new:
                self.state.reasons.setdefault(job.id, PendingReason.RESOURCES)
        # a run the engine accepted may be followed (its reference is what a staged run
        # follows): a cycle that recorded one may stage
        started = any(isinstance(e, RunStarted) for e in events)
        if plan and self.stage_ahead_s > 0 and (full or dispatched or started):
            self._stage(now, touched)
        if ended:
            self.watch.notify(ended)
        self._publish_hint(new)
        if touched or everything:
            self.live.publish(touched, everything=everything)
        if views:
            view = self.state.frozen()
            for deliver in views:
                deliver(view, now)

    def _touch(self, touched: dict[str, str], job_id: str) -> None:
        spec = self.state.specs.get(job_id)
        if spec is not None:
            touched[job_id] = spec.project_id

    def _publish_hint(self, taken: Sequence[PendingJob]) -> None:
        """After a cycle: the hint for the submissions to come; jobs it took are no longer
        deferred; and if submissions arrived during it (judged by the previous hint), one
        more cycle looks at them."""
        self._hint = self.state.start_hint()
        self._deferred.difference_update(job.id for job in taken)
        if not self._inbox.empty():
            self._wake.set()

    def _record(
        self, events: Sequence[RunStarted | RunEnded], refs: Mapping[str, str]
    ) -> list[str]:
        """Record what the engine reported; returns the ids of jobs that ended for good.

        Only events about a job's current run count (``runs``); the ends of the others
        are acknowledged, so the engine forgets them, and change nothing."""
        refs = {
            run_id: ref for run_id, ref in refs.items() if self.runs.get(job_of(run_id)) == run_id
        }
        for run_id in refs:
            if (reason := self._stops.get(job_of(run_id))) is not None:
                self._send_stop(run_id, reason)  # asked while the submission was in flight
        self._accepted.update(refs)
        # a reference is written with the start; only a run the engine queues needs its own
        refs = {run_id: ref for run_id, ref in refs.items() if run_id not in self._started}
        current = [
            e
            for e in events
            if self.runs.get(job_of(e.run_id)) == e.run_id
            and not (isinstance(e, RunStarted) and e.run_id in self._started)  # a duplicate
        ]
        stale = [
            e.run_id
            for e in events
            if isinstance(e, RunEnded) and self.runs.get(job_of(e.run_id)) != e.run_id
        ]
        if not current and not refs:
            if stale:
                self._background(self.engine.acknowledge, stale)
            return []
        with self.store.write() as session:
            done = record_runs(session, current, refs, self._preempt_reasons)
        self.metrics.recorded(current, self.clock())
        ends = [e for e in current if isinstance(e, RunEnded)]
        if ends:
            self._budgets_stale = True
        for event in current:
            job_id = job_of(event.run_id)
            if isinstance(event, RunStarted):
                self._started.add(event.run_id)
                if job_id not in done.ended and job_id not in done.requeued:
                    self.state.started(job_id, event.started_at)
                continue
            self.runs.pop(job_id, None)
            self._stops.pop(job_id, None)
            self._preempt_reasons.pop(job_id, None)
            if job_id in done.requeued:
                self.state.requeue(job_id)
            else:
                ok = isinstance(event, RunEnded) and event.outcome is Outcome.SUCCEEDED
                self.state.ended(job_id, ok, event.ended_at)
        self._started.difference_update(e.run_id for e in ends)
        self._accepted.difference_update(e.run_id for e in ends)
        if ends or stale:
            self._background(self.engine.acknowledge, [e.run_id for e in ends] + stale)
        return sorted(done.ended)

    def _stop(self, job_id: str, reason: StopReason) -> None:
        """Ask the engine to stop the job's current run (off the loop thread)."""
        run_id = self.runs.get(job_id)
        if run_id is None:
            return
        self._stops.setdefault(job_id, reason)
        self._send_stop(run_id, reason)

    def _send_stop(self, run_id: str, reason: StopReason) -> None:
        self._background(self.engine.stop, run_id, reason, self.kill_grace_s)

    def _background(self, fn: Callable[..., object], *args: object) -> None:
        """Call the engine off the loop thread (here, once the loop has stopped)."""
        if self._detached:
            self._call(fn, *args)
        else:
            self._calls.submit(self._call, fn, *args)

    def _call(self, fn: Callable[..., object], *args: object) -> None:
        name = getattr(fn, "__name__", str(fn))
        try:
            fn(*args)
        except Exception:
            log.exception("engine call %s failed", name)
            self.metrics.engine_failed(name)
        else:
            self.metrics.engine_answered()

    def _requeue(self, job_id: str, reason: str, *, held: bool) -> None:
        """Stop the job's run as a preemption would; its end requeues it with ``reason``."""
        if job_id not in self.runs or job_id in self._preempt_reasons:
            return  # ended meanwhile, or being preempted already
        self._preempt_reasons[job_id] = reason
        if held:
            self.state.hold(job_id)
        self.state.mark_preempting(job_id)
        self._stop(job_id, StopReason.PREEMPT)

    def _stage(self, now: float, touched: dict[str, str]) -> None:
        """Withdraw staged jobs whose predecessors overran their estimates, then stage
        what the policy would start next on devices about to free (``control/stage.py``)."""
        for job_id in overdue(self.state, now, self.stage_ahead_s):
            self._touch(touched, job_id)
            self._withdraw(job_id, "the job it was to follow runs past its expected end")
        ends = ending(
            self.state,
            self.engine,
            now,
            self.stage_ahead_s,
            lambda job_id: (run := self.runs.get(job_id)) in self._accepted or run in self._started,
        )
        if not ends:
            return
        self._fresh_budgets(now)
        stages = plan_stages(self.state, ends, self.policy, now)
        if not stages:
            return
        by_job = {s.admission.job_id: s for s in stages}
        staged = self._apply([s.admission for s in stages], now, by_job)
        for adm, _ in staged:
            self._touch(touched, adm.job_id)
        self._dispatch(staged, {job_id: s.after for job_id, s in by_job.items()})

    def _withdraw(self, job_id: str, why: str) -> None:
        """A staged job will not follow after all: it leaves its place behind the jobs it
        was to follow (so their end gives it nothing), and its run is stopped before it
        starts; that end requeues it."""
        self.state.unstage(job_id)
        self._requeue(job_id, f"withdrawn: {why}", held=False)

    def _promote(self, touched: dict[str, str]) -> None:
        """Staged jobs whose predecessors all ended hold their devices now: lease them."""
        promoted = self.state.take_promoted()
        if not promoted:
            return
        with self.store.write() as session:
            take_leases_many(
                session, [(job_id, self.state.running[job_id].allocations) for job_id in promoted]
            )
        for job_id in promoted:
            self._touch(touched, job_id)

    def _preempt(self, preemptions: Sequence[Preemption]) -> None:
        """Ask the engine to stop victims (SIGTERM, grace, SIGKILL); their ends requeue them.
        Jobs staged behind a victim are withdrawn first: its devices are the reclaimer's."""
        for p in preemptions:
            for follower in sorted(self.state.followers.get(p.job_id, ())):
                self._withdraw(follower, f"the job it was to follow is preempted for {p.for_job}")
            if p.job_id in self.state.running and p.job_id not in self._preempt_reasons:
                self._preempt_reasons[p.job_id] = p.reason
                self.state.mark_preempting(p.job_id)
                self._stop(p.job_id, StopReason.PREEMPT)

    def _apply(
        self,
        admissions: Sequence[Admission],
        now: float,
        stages: Mapping[str, Stage] | None = None,
    ) -> list[tuple[Admission, _Spec]]:
        """Admit in one transaction; drop admissions whose job is no longer pending.

        A few statements for the whole batch: the jobs still pending are read (and
        locked, on PostgreSQL) first, then funded in turn (``HoldBook``), then moved,
        held and leased with one statement each. Staged admissions (``stages``) lease
        their devices only once the jobs they follow have ended (``_promote``).
        """
        stages = stages or {}
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
                if (stage := stages.get(adm.job_id)) is not None:
                    reason += f", to start when {', '.join(sorted(stage.after))} end"
                values = {
                    "gpu_type": adm.gpu_type or None,
                    "placement": allocations_to_json(adm.placement),
                    "borrowed": adm.borrowed,
                    "allocation_id": funding.id if funding else None,
                    "attempts": NEXT_ATTEMPT,  # this admission's run is the next attempt
                }
                moves.append(Move(adm.job_id, at, reason, values))
                admitted.append(adm)
            write_moves(session, moves, pending, JobState.ADMITTED)
            book.write()
            take_leases_many(
                session, [(a.job_id, a.placement) for a in admitted if a.job_id not in stages]
            )
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
            self.metrics.admitted(len(admitted))
        for adm in admitted:
            spec = self.state.pending[adm.job_id]
            stage = stages.get(adm.job_id)
            job = RunningJob(
                id=spec.id,
                project_id=spec.project_id,
                user_id=spec.user_id,
                started_at=now if stage is None else stage.starts_at,
                time_limit_s=spec.time_limit_s,
                allocations=adm.placement,
                priority=spec.priority,
                gpu_type=adm.gpu_type,
                borrowed=adm.borrowed,
            )
            if stage is None:
                self.state.start(job)
            else:
                self.state.stage(job, stage.after)
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

    def _fresh_budgets(self, now: float) -> None:
        """Read budgets again if a write changed them (once per cycle, however many)."""
        if self._budgets_stale:
            with self.store.read() as session:
                self._refresh_budgets(session, utc(now))

    def _refresh_budgets(self, session: Session, at: datetime) -> None:
        session.flush()
        self.state.budgets = load_budgets(session, at, self.state.hold_grace_s)
        self._budgets_stale = False

    def _dispatch(
        self,
        admitted: Sequence[tuple[Admission, _Spec]],
        after: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        """Hand each admitted job's run to the engine, off the loop thread: the engine
        reports its start (and end) as events, which the next cycles record. A run is
        running, and charged, from the start the engine reports. A staged job's run
        follows the current runs of the jobs ``after`` names for it."""
        names = {node_id: node.name for node_id, node in self.state.nodes.items()}
        for adm, spec in admitted:
            follows = (after or {}).get(spec.id, frozenset())
            run = self._run_spec(adm, spec, names)
            if follows:
                run = replace(run, after=tuple(sorted(self.runs[j] for j in follows)))
            self.runs[spec.id] = run.run_id
            future = self._calls.submit(self._submit, run)
            self._in_flight.add(future)
            future.add_done_callback(self._in_flight.discard)

    def _submit(self, run: RunSpec) -> None:
        """On an engine thread: submit, and tell the loop what became of it."""
        try:
            ref = self.engine.submit(run)
        except Exception as exc:
            if not isinstance(exc, LaunchError):
                log.exception("engine failed to take run %s", run.run_id)
                self.metrics.engine_failed("submit")
            message = f"launch failed: {exc}"
            ended = RunEnded(run.run_id, "", Outcome.FAILED, None, None, self.clock(), message)
            self._post(_Event(ended))
        else:
            self.metrics.engine_answered()
            self._post(_Dispatched(run.run_id, ref))

    def _run_spec(self, adm: Admission, spec: _Spec, node_names: dict[str, str]) -> RunSpec:
        names = LogNames(
            spec.id,
            spec.name,
            spec.user,
            spec.array_id,
            spec.array_index,
            node_names[adm.placement[0].node_id] if adm.placement else "",
        )
        return RunSpec(
            job_id=spec.id,
            attempt=spec.attempts,
            command=tuple(spec.command),
            workdir=spec.workdir,
            env=dict(spec.env),
            node_devices=tuple((node_names[a.node_id], a.devices) for a in adm.placement),
            time_limit_s=spec.time_limit_s,
            output=JobOutput(spec.output),
            extra_env=(
                {"AXC_ARRAY_ID": spec.array_id, "AXC_ARRAY_INDEX": str(spec.array_index)}
                if spec.array_id is not None
                else {}
            ),
            run_as=spec.run_as(),
            cpus=spec.cpus_per_node,
            memory_mb=spec.memory_mb_per_node,
            user=spec.user,
            project=spec.project,
            output_file=spec.log_file(spec.output_path, names),
            error_file=spec.log_file(spec.error_path, names),
            script=spec.script,
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
    attempts: int
    cpus_per_node: int
    memory_mb_per_node: int
    user: str
    project: str
    #: the job's unix identity (service.identities); none in single-user mode
    account: str | None
    uid: int | None
    user_gid: int | None
    home: str | None
    project_gid: int | None
    name: str
    output_path: str | None
    error_path: str | None
    script: str | None

    @staticmethod
    def log_file(pattern: str | None, names: LogNames) -> str | None:
        return None if pattern is None else expand_log_pattern(pattern, names)

    def run_as(self) -> RunAs | None:
        if self.account is None or self.uid is None or self.user_gid is None:
            return None
        gid = self.project_gid if self.project_gid is not None else self.user_gid
        return RunAs(self.account, self.uid, gid, (self.user_gid,), self.home or "")


_ACCOUNTS = orm.UnixAccount.__table__
_GROUPS = orm.ProjectGroup.__table__
_USERS = orm.User.__table__
_PROJECTS = orm.Project.__table__
_SELECT_SPECS = (
    select(
        JOBS.c.id,
        JOBS.c.command,
        JOBS.c.workdir,
        JOBS.c.env,
        JOBS.c.time_limit_s,
        JOBS.c.array_id,
        JOBS.c.array_index,
        JOBS.c.output,
        JOBS.c.attempts,
        JOBS.c.cpus_per_node,
        JOBS.c.memory_mb_per_node,
        _USERS.c.name,
        _PROJECTS.c.name,
        _ACCOUNTS.c.name,
        _ACCOUNTS.c.uid,
        _ACCOUNTS.c.gid,
        _ACCOUNTS.c.home,
        _GROUPS.c.gid,
        JOBS.c.name,
        JOBS.c.output_path,
        JOBS.c.error_path,
        JOBS.c.script,
    )
    .join(_USERS, _USERS.c.id == JOBS.c.user_id)
    .join(_PROJECTS, _PROJECTS.c.id == JOBS.c.project_id)
    .outerjoin(_ACCOUNTS, _ACCOUNTS.c.user_id == JOBS.c.user_id)
    .outerjoin(_GROUPS, _GROUPS.c.project_id == JOBS.c.project_id)
    .where(JOBS.c.id.in_(bindparam("ids", expanding=True)))
)


def _where(adm: Admission, state: ClusterState) -> str:
    parts = []
    for a in adm.placement:
        node = state.nodes.get(a.node_id)
        name = node.name if node else a.node_id
        parts.append(f"{name}:{','.join(map(str, a.devices))}" if a.devices else name)
    return " ".join(parts)
