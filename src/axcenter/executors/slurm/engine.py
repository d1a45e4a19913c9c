"""The Slurm engine: axcenter places, Slurm runs (docs/engines.md, "The Slurm engine").

axcenter has chosen the nodes and the number of GPUs on each; ``submit`` makes that one
Slurm job (``batch.py``: ``sbatch --nodelist --gres``, named after the run), as the job's
own unix account, never root. What really happened comes from Slurm alone:

- **One poll, one squeue.** A thread asks ``squeue --states=all`` once per poll for this
  engine's jobs (slurmctld keeps an ended job, with its state, exit status and times, for
  ``MinJobAge``), ``sacct`` only for those that left slurmctld, ``scontrol -d`` for the
  GPU indices of those that started (or, for a job that ended before a poll saw it run,
  what its batch script wrote), and ``sinfo`` for the nodes beside the squeue. A call
  that fails means *unknown*: a run is ended only from Slurm's record of its end,
  matched by job id, name and submit time (wrapped ids), never because it is not listed.
- **Times are Slurm's.** Start and end are those Slurm recorded (whole seconds, never
  before this engine handed the job over).
- **Stops with grace.** ``scancel --signal=TERM --full``, then ``--signal=KILL`` and a
  cancel after the grace. The cause is written to the run's record before the signal,
  so it survives a restart of axcenter and wins over how the job then exits.
- **Time limits.** Slurm's ``--time`` (whole minutes, rounded up) ends the job when
  axcenter is away; the engine stops it at the exact second when it is not.
- **Pending too long.** axcenter chose free nodes; a job Slurm keeps pending longer
  than ``pending_limit_s`` (another user of the partition, a node Slurm will not use) is
  cancelled and reported ``LOST`` with Slurm's reason: axcenter requeues it. A staged
  run (``RunSpec.after``: ``--dependency=afterany``) counts from when the jobs it
  follows have ended.
- **Durable records.** One small file per run in ``state_dir`` (written before sbatch,
  then with the job id, the start and any stop), removed when the end is acknowledged:
  ``recover()`` after a restart reads them, and adopts jobs named ``axc-*`` in the
  partition that have none.

Logs: ``LOGS/<job id>.log`` (each later run of a requeued job after a header line),
created by the engine and owned by the job's account, written by Slurm on the node: at
a site, ``LOGS`` must be on the file system the nodes share.
"""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import os
import pwd
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from axcenter.executors import logs
from axcenter.executors.base import (
    EventCallback,
    LaunchError,
    NodeInventory,
    NodesChanged,
    Outcome,
    Recovery,
    RunAs,
    RunEnded,
    RunSpec,
    RunStarted,
    StepEnded,
    StepOutput,
    StepSpec,
    StopReason,
    describe_status,
    outcome_of,
    pump_step_output,
)
from axcenter.executors.logs import LogChunk
from axcenter.executors.slurm.batch import (
    DEPENDENCY,
    DEVICES_DIR,
    NAME_PREFIX,
    batch_job,
    open_devices_file,
    open_log,
    read_devices_file,
)
from axcenter.executors.slurm.cli import (
    TERMINAL,
    AcctRecord,
    JobRow,
    NodeRow,
    QueueRow,
    SlurmCli,
    SlurmError,
)
from axcenter.model.jobs import JobOutput

if TYPE_CHECKING:
    from axcenter.executors.pools import SlurmConfig

__all__ = ["SlurmEngine", "SlurmOptions", "outcome_of_record", "slurm_engine"]

log = logging.getLogger(__name__)

#: what a job inherits of the service's environment (as for the local engine)
BASE_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
#: a job that left the queue with no accounting record this long is reported lost
_NO_RECORD_S = 600.0
#: seconds ``close(stop_runs=True)`` waits beyond the grace for the ends
_CLOSE_SLACK_S = 30.0
_CLOSE_JOIN_S = 10.0


@dataclass(frozen=True, slots=True)
class SlurmOptions:
    """How axcenter uses one partition of a Slurm cluster (a pool's ``slurm:``)."""

    partition: str
    slurm_conf: str | None = None  # the cluster's slurm.conf; None: the client's default
    bin_dir: str = ""  # where sbatch, squeue, ... are; "": the PATH
    #: ``uid``: root submits with ``--uid/--gid`` (the job's identity); ``user``: sbatch
    #: runs as the job's account (sites whose grants are per submit user)
    submit: Literal["uid", "user"] = "uid"
    gpu_type: str = ""  # axcenter's name of the partition's GPUs; "": Slurm's GRES type
    pending_limit_s: float = 300.0
    poll_s: float = 1.0
    submit_retry_s: float = 120.0  # how long a submission waits out an absent slurmctld
    grace_s: float = 10.0  # SIGTERM to SIGKILL at the exact time limit
    #: the account a job runs as when axcenter names none (a single-user center); never
    #: root, and never in place of the job's own user when there is one
    account: str = ""
    #: axcenter project -> the site's Slurm account its jobs are charged to (``--account``:
    #: an HPC grant); a project missing from a non-empty map is refused
    accounts: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Run:
    """One run's record: in memory, and as ``STATE/<run id>.json``."""

    run_id: str
    job_id: str  # axcenter's job
    time_limit_s: int
    submitted_at: float  # our clock just before sbatch
    batch_host: str
    slurm_id: str = ""  # "" until sbatch answered
    submit_time: int = 0  # Slurm's, once seen in squeue
    started_at: float | None = None
    devices: str = ""
    stop: str = ""  # the first stop's cause ("cancel", "preempt", "shutdown", "time_limit")
    kill_at: float = 0.0  # when SIGKILL follows the stop's SIGTERM
    reason: str = ""  # why the engine stopped it, for the message (pending too long)
    gpus: int = 0  # on each node
    account: str = ""  # the unix account it runs as ("": the service's, or not known)
    # in memory only
    pending_reason: str = ""  # Slurm's last reason for keeping it pending
    handed_at: float = 0.0  # when sbatch answered (0: before this engine started)
    waits_since: float = 0.0  # a staged run: when it was last seen waiting on others
    term_sent: bool = False
    kill_sent: bool = False
    gone_since: float = 0.0
    ended: RunEnded | None = None


_DURABLE = (
    "run_id", "job_id", "time_limit_s", "submitted_at", "batch_host", "slurm_id",
    "submit_time", "started_at", "devices", "stop", "kill_at", "reason", "gpus",
    "account",
)  # fmt: skip
#: at most this many accounts' jobs are polled with one squeue each (``_queue``)
SQUEUE_BY_ACCOUNT = 4


class SlurmEngine:
    """Runs axcenter's jobs as Slurm jobs in one partition (see the module docstring)."""

    def __init__(
        self,
        options: SlurmOptions,
        on_event: EventCallback,
        *,
        state_dir: Path,
        logs_dir: Path,
        cli: SlurmCli | None = None,
    ) -> None:
        self._opt = options
        self._on_event = on_event
        self._cli = cli or SlurmCli(bin_dir=options.bin_dir, slurm_conf=options.slurm_conf)
        self._state = Path(state_dir)
        self._state.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._logs = Path(logs_dir)
        self._logs.mkdir(parents=True, exist_ok=True)
        self._base_env = {k: os.environ[k] for k in BASE_ENVIRONMENT if k in os.environ}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._runs: dict[str, _Run] = {}
        self._wake = threading.Event()
        self._closing = False
        self._stopped = threading.Event()
        self._polling = threading.Lock()  # one poll at a time: the thread's or recover()'s
        self._side = ThreadPoolExecutor(1, thread_name_prefix="axc-slurm-sinfo")
        rows = None
        for _ in range(10):
            rows = self._cli.nodes(options.partition)
            if rows:
                break
            time.sleep(1)
        if not rows:
            raise ValueError(
                f"Slurm partition {options.partition!r}: no nodes (is slurmctld reachable,"
                " and is the partition's name right?)"
            )
        self._nodes = [self._node(row) for row in rows]
        self._account = _account(options.account) if options.account else None
        self._load()
        self._thread = threading.Thread(target=self._poll_loop, name="axc-slurm", daemon=True)
        self._thread.start()

    # -- the contract ----------------------------------------------------------------

    def inventory(self) -> list[NodeInventory]:
        with self._lock:
            return list(self._nodes)

    def submit(self, run: RunSpec) -> str:
        if run.run_as is None and self._opt.account:
            run = replace(run, run_as=self._account)
        with self._lock:
            nodes = [n.name for n in self._nodes]
            # the runs it was staged behind that Slurm may still hold; one this engine
            # no longer knows, or knows ended, has ended
            after = [
                r.slurm_id
                for r in map(self._runs.get, run.after)
                if r is not None and r.ended is None and r.slurm_id
            ]
        gpus = len(run.node_devices[0][1]) if run.node_devices else 0
        devices_file = self._logs / DEVICES_DIR / run.run_id if gpus else None
        options, script = batch_job(
            run,
            partition=self._opt.partition,
            submit=self._opt.submit,
            accounts=self._opt.accounts,
            nodes_known=nodes,
            base_env=self._base_env,
            logs=self._logs,
            devices_file=devices_file,
            after=after,
        )
        with self._lock:
            if self._closing:
                raise LaunchError("the Slurm engine is closed")
            known = self._runs.get(run.run_id)
            if known is not None:
                if known.slurm_id:
                    return known.slurm_id  # idempotent
                raise LaunchError(f"run {run.run_id} is being submitted")
            record = _Run(
                run_id=run.run_id,
                job_id=run.job_id,
                time_limit_s=run.time_limit_s,
                submitted_at=time.time(),
                batch_host=run.node_devices[0][0],
                gpus=gpus,
                account="" if run.run_as is None else run.run_as.user,
            )
            self._runs[run.run_id] = record
        self._save(record)
        try:
            if run.output is not JobOutput.DISCARD:
                open_log(self._logs, run)
            if devices_file is not None:
                open_devices_file(devices_file, run)
            slurm_id = self._sbatch(run, options, script, record.submitted_at)
        except LaunchError:
            with self._lock:
                self._runs.pop(run.run_id, None)
            self._forget(run.run_id)
            raise
        with self._lock:
            record.slurm_id, record.handed_at = slurm_id, time.time()
        self._save(record)
        self._wake.set()
        return slurm_id

    def stop(self, run_id: str, reason: StopReason, grace_s: float) -> None:
        self._stop(run_id, reason.value, grace_s)

    def recover(self) -> Recovery:
        queue = self._cli.queue(self._opt.partition)
        if queue is not None:
            self._adopt({r.name: r for r in queue.values() if r.name.startswith(NAME_PREFIX)})
        self._poll()
        with self._lock:
            runs = list(self._runs.values())
        running = {
            r.run_id: RunStarted(r.run_id, r.slurm_id, r.started_at, r.devices)
            for r in runs
            if r.ended is None and r.started_at is not None
        }
        queued = frozenset(r.run_id for r in runs if r.ended is None and r.started_at is None)
        ended = [r.ended for r in runs if r.ended is not None]
        return Recovery(running=running, ended=ended, queued=queued)

    def acknowledge(self, run_ids: Sequence[str]) -> None:
        for run_id in run_ids:
            with self._lock:
                run = self._runs.get(run_id)
                if run is None or run.ended is None:
                    continue
                del self._runs[run_id]
            self._forget(run_id)

    def read_log(self, job_id: str, offset: int, limit: int) -> LogChunk | None:
        return logs.read(self._logs / f"{job_id}.log", offset, limit)

    def stages(self, node: str) -> bool:
        """Yes: a staged run is submitted ``--dependency=afterany`` on the runs it follows,
        and slurmctld starts it in the pass that sees them end."""
        return True

    def close(self, *, stop_runs: bool = False, grace_s: float | None = None) -> None:
        grace = self._opt.grace_s if grace_s is None else grace_s
        with self._lock:
            self._closing = True
            live = [r.run_id for r in self._runs.values() if r.ended is None]
        if stop_runs:
            for run_id in live:
                self._stop(run_id, StopReason.SHUTDOWN.value, grace)
            deadline = time.monotonic() + grace + _CLOSE_SLACK_S
            with self._lock:
                while any(r.ended is None for r in self._runs.values()):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        log.warning("Slurm runs not ended at close: %s", sorted(self._runs))
                        break
                    self._changed.wait(min(left, 0.5))
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout=_CLOSE_JOIN_S)
        self._side.shutdown(wait=False)

    # -- submitting ----------------------------------------------------------------------

    def _sbatch(self, run: RunSpec, options: list[str], script: str, since: float) -> str:
        """sbatch, waiting out an absent slurmctld for ``submit_retry_s``; before each
        retry, a job of this run that did get through is found by its name."""
        as_user = run.run_as.user if run.run_as is not None and self._opt.submit == "user" else None
        deadline = time.monotonic() + self._opt.submit_retry_s
        delay = 0.5
        while True:
            try:
                return self._cli.sbatch(options, script, as_user=as_user)
            except SlurmError as e:
                if not e.transient and _staged(options) and "dependency" in str(e).lower():
                    # a job it was staged behind left slurmctld meanwhile: it has ended
                    options = [o for o in options if not o.startswith(DEPENDENCY)]
                    continue
                if not e.transient or time.monotonic() > deadline:
                    raise LaunchError(f"Slurm refused job {run.job_id}: {e}") from None
                log.warning("sbatch for run %s: %s; trying again", run.run_id, e)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            queue = self._cli.queue(self._opt.partition)
            if queue is not None:
                for row in queue.values():
                    if row.name == NAME_PREFIX + run.run_id and row.submit_time >= int(since) - 1:
                        return row.job_id

    # -- stopping ------------------------------------------------------------------------

    def _stop(self, run_id: str, cause: str, grace_s: float, reason: str = "") -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.ended is not None:
                return
            kill_at = time.time() + max(grace_s, 0.0)
            if run.stop:
                run.kill_at = min(run.kill_at, kill_at)  # a later stop may only shorten it
            else:
                run.stop, run.kill_at, run.reason = cause, kill_at, reason
        self._save(run)
        self._wake.set()

    def _signal(self, run: _Run, now: float) -> None:
        """Deliver what a stopped run is owed (called by the poller; retried until
        slurmctld takes it)."""
        if not run.slurm_id:
            return
        try:
            if not run.term_sent:
                if run.started_at is None:
                    self._cli.scancel(run.slurm_id)  # pending: it never starts
                    run.kill_sent = True
                else:
                    self._cli.scancel(run.slurm_id, signal="TERM")
                run.term_sent = True
            if not run.kill_sent and now >= run.kill_at:
                self._cli.scancel(run.slurm_id, signal="KILL")
                self._cli.scancel(run.slurm_id)
                run.kill_sent = True
        except SlurmError as e:
            log.warning("scancel %s (run %s): %s", run.slurm_id, run.run_id, e)

    # -- watching ------------------------------------------------------------------------

    def _poll_loop(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self._opt.poll_s)
            self._wake.clear()
            if self._stopped.is_set():
                break
            try:
                self._poll()
            except Exception:
                log.exception("Slurm poll failed")

    def _poll(self) -> None:
        with self._polling:
            self._poll_once()

    def _poll_once(self) -> None:
        began = time.time()
        nodes = self._side.submit(self._cli.nodes, self._opt.partition)  # beside squeue
        with self._lock:
            live = [r for r in self._runs.values() if r.ended is None]
        rows = self._queue(live)
        self._apply_nodes(nodes.result())
        if rows is None:
            for run in live:  # stops are still tried: slurmctld may answer scancel
                if run.stop:
                    self._signal(run, began)
            return
        started: list[tuple[_Run, JobRow]] = []
        ended: list[tuple[_Run, JobRow]] = []
        gone: list[_Run] = []
        for run in live:
            row = rows.get(run.slurm_id) if run.slurm_id else None
            if row is None:
                if run.slurm_id and run.handed_at < began:  # squeue began after sbatch
                    gone.append(run)
                continue
            run.gone_since = 0.0
            run.submit_time = run.submit_time or row.submit_time
            if row.state in TERMINAL:
                ended.append((run, row))  # slurmctld still holds how it ended
                continue
            if row.state == "PENDING":
                if row.reason == "Dependency":  # staged: it waits from their ends on
                    run.waits_since = began
                elif row.reason not in ("", "None"):
                    run.pending_reason = row.reason
                waited = began - max(run.submitted_at, run.waits_since)
                if not run.stop and waited > self._opt.pending_limit_s:
                    why = run.pending_reason or "not scheduled yet"
                    self._stop(
                        run.run_id, "pending", 0.0, f"Slurm kept it pending {waited:.0f} s ({why})"
                    )
            elif row.state in ("RUNNING", "COMPLETING", "SUSPENDED") and run.started_at is None:
                started.append((run, row))
            if row.state == "COMPLETING":
                gone.append(run)  # its record tells how it ended
            limit, start = run.time_limit_s, run.started_at
            if start is not None and 0 < limit <= began - start and not run.stop:
                self._stop(run.run_id, "time_limit", self._opt.grace_s)
        now = time.time()
        for run, row in ended:  # first: ends free devices that jobs may wait for
            record = self._match(run, [row.record()])
            if record is None:
                gone.append(run)  # another job of that id (wrapped): sacct decides
            else:
                self._end_from(run, record, now)
        if started:
            self._report_starts(started)
        for run in live:
            if run.stop and run.ended is None:
                self._signal(run, now)
        if gone:
            self._report_ends(gone)

    def _queue(self, live: list[_Run]) -> dict[str, JobRow] | None:
        """What slurmctld holds of the live runs: one squeue for each account they run as,
        where there are at most ``SQUEUE_BY_ACCOUNT`` and each is known (then slurmctld
        packs only those accounts' jobs, not every job of the site and every one it
        keeps ended: thousands at a busy site, each poll), else one for them all. A job
        missing from its account's answer is asked about again among all jobs."""
        by_account: dict[str, list[str]] = {}
        for run in live:
            if run.slurm_id:
                by_account.setdefault(run.account, []).append(run.slurm_id)
        every = [job for ids in by_account.values() for job in ids]
        if "" in by_account or len(by_account) > SQUEUE_BY_ACCOUNT:
            return self._cli.jobs(every)
        rows: dict[str, JobRow] = {}
        for account, ids in by_account.items():
            found = self._cli.jobs(ids, user=account)
            if found is None:
                return None
            rows |= found
        # an account squeue cannot resolve (its name service failing a moment, the account
        # removed) filters every job out, and squeue says nothing: only an answer for all
        # jobs may tell that a job has left slurmctld
        if missing := [job for job in every if job not in rows]:
            found = self._cli.jobs(missing)
            if found is None:
                return None
            rows |= found
        return rows

    def _report_starts(self, started: list[tuple[_Run, JobRow]]) -> None:
        details = self._cli.devices({run.slurm_id for run, _ in started}) or {}
        for run, row in started:
            on = details.get(run.slurm_id, {})
            batch = row.batch_host or run.batch_host
            run.devices = ",".join(str(i) for i in on.get(batch, ())) or self._devices_told(run)
            run.started_at = max(float(row.start_time or time.time()), run.submitted_at)
            self._save(run)
            self._on_event(RunStarted(run.run_id, run.slurm_id, run.started_at, run.devices))

    def _report_ends(self, gone: list[_Run]) -> None:
        since = int(min(r.submitted_at for r in gone)) - 86_400
        records = self._cli.accounting([r.slurm_id for r in gone], since)
        if records is None:
            return  # sacct did not answer: unknown
        now = time.time()
        for run in gone:
            record = self._match(run, records)
            if record is None or record.state not in TERMINAL:
                run.gone_since = run.gone_since or now
                if now - run.gone_since > _NO_RECORD_S:
                    self._end(
                        run,
                        Outcome.LOST,
                        None,
                        None,
                        now,
                        f"lost: Slurm job {run.slurm_id} left the queue with no record",
                    )
                continue
            self._end_from(run, record, now)

    def _match(self, run: _Run, records: list[AcctRecord]) -> AcctRecord | None:
        """The record of this run: its job id, its name, and its submit time (Slurm's,
        once seen; else not long before this engine submitted it)."""
        for record in records:
            if record.job_id != run.slurm_id:
                continue
            # slurmdbd names an allocation "allocation" until the job's own record
            # reaches it (seconds under load): then the submit time alone decides
            if record.name not in (NAME_PREFIX + run.run_id, "allocation"):
                continue
            if run.submit_time and record.submit_time != run.submit_time:
                continue
            if record.submit_time < int(run.submitted_at) - 60:
                continue
            return record
        return None

    def _end_from(self, run: _Run, record: AcctRecord, now: float) -> None:
        # a job cancelled while pending has a Start (its end) but was given no nodes
        started = record.start_time if record.nodes else None
        started_at = None if started is None else max(float(started), run.submitted_at)
        if run.started_at is not None and started_at is not None:
            started_at = run.started_at  # what was reported stays
        ended_at = float(record.end_time or int(now))
        if started_at is not None:
            ended_at = max(ended_at, started_at)
        code = record.exit_code
        outcome, message = outcome_of_record(record, run.stop, run.reason, run.time_limit_s)
        if started_at is not None and run.started_at is None:
            run.started_at = started_at  # ended before a poll saw it run
            run.devices = run.devices or self._devices_told(run)
            self._on_event(RunStarted(run.run_id, run.slurm_id, started_at, run.devices))
        self._end(run, outcome, code, started_at, ended_at, message)

    def _end(
        self,
        run: _Run,
        outcome: Outcome,
        code: int | None,
        started_at: float | None,
        ended_at: float,
        message: str,
    ) -> None:
        ended = RunEnded(run.run_id, run.slurm_id, outcome, code, started_at, ended_at, message)
        with self._lock:
            run.ended = ended
            self._changed.notify_all()
        self._on_event(ended)

    def _apply_nodes(self, rows: list[NodeRow] | None) -> None:
        if rows is None:
            return
        nodes = [self._node(row) for row in rows]
        with self._lock:
            if nodes == self._nodes:
                return
            self._nodes = nodes
        self._on_event(NodesChanged(tuple(nodes)))

    def _node(self, row: NodeRow) -> NodeInventory:
        return NodeInventory(
            name=row.name,
            gpu_type=self._opt.gpu_type or row.gpu_type.upper() or "GPU",
            gpu_count=row.gpus,
            cpus=row.cpus,
            memory_mb=row.memory_mb,
            logical=False,
            up=row.up,
        )

    # -- records -------------------------------------------------------------------------

    def _adopt(self, by_name: Mapping[str, QueueRow]) -> None:
        """Jobs named after a run that this engine has no record of (its state directory
        was lost): watched from now on."""
        with self._lock:
            known = {NAME_PREFIX + run_id for run_id in self._runs}
        for name, row in by_name.items():
            if name in known:
                continue
            run_id = name[len(NAME_PREFIX) :]
            job_id, _, attempt = run_id.rpartition(".")
            if not job_id or not attempt.isdigit():
                continue
            run = _Run(
                run_id=run_id,
                job_id=job_id,
                time_limit_s=0,
                submitted_at=float(row.submit_time),
                batch_host=row.batch_host,
                slurm_id=row.job_id,
                submit_time=row.submit_time,
            )
            with self._lock:
                self._runs.setdefault(run_id, run)
            self._save(run)
            log.warning("adopted Slurm job %s (run %s) with no record", row.job_id, run_id)

    def _load(self) -> None:
        for path in sorted(self._state.glob("*.json")):
            try:
                data = json.loads(path.read_text())
                run = _Run(**{k: data[k] for k in _DURABLE if k in data})
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("unreadable Slurm run record %s: %s", path, e)
                continue
            if not run.slurm_id and not self._resolve(run):
                path.unlink(missing_ok=True)  # it never reached Slurm
                continue
            self._runs[run.run_id] = run

    def _resolve(self, run: _Run) -> bool:
        """A run recorded before sbatch answered: its job, if the submission got through
        (in the queue, or already in the accounting). Slurm must answer: a guess either
        way would run the job twice or leave it unwatched."""
        name, since = NAME_PREFIX + run.run_id, int(run.submitted_at) - 1
        for _ in range(30):
            queue = self._cli.queue(self._opt.partition)
            records = self._cli.accounting((), since, name=name)
            if queue is not None and records is not None:
                break
            time.sleep(1)
        else:
            raise ValueError(
                f"Slurm does not answer: cannot tell whether run {run.run_id} reached it"
            )
        found = [r.job_id for r in queue.values() if r.name == name and r.submit_time >= since]
        found += [r.job_id for r in records if r.name == name and r.submit_time >= since]
        if found:
            run.slurm_id = found[0]
        return bool(found)

    def _save(self, run: _Run) -> None:
        data = {k: v for k, v in asdict(run).items() if k in _DURABLE}
        path = self._state / f"{run.run_id}.json"
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _forget(self, run_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._state / f"{run_id}.json").unlink()
        with contextlib.suppress(FileNotFoundError):
            (self._logs / DEVICES_DIR / run_id).unlink()

    def _devices_told(self, run: _Run) -> str:
        """The GPU indices the run's batch script wrote, when Slurm no longer tells them
        (the job ended, or its details went, before a poll saw it run)."""
        return read_devices_file(self._logs / DEVICES_DIR / run.run_id, run.gpus)

    # -- steps: srun --overlap in a live run's allocation (issue 20) ------------------

    def run_step(self, step: StepSpec, output: StepOutput, cancel: threading.Event) -> StepEnded:
        """``srun --jobid=ID --overlap`` as the run's account: Slurm puts the step in the
        job's allocation, its devices and its cgroup, and ends it with the job."""
        with self._lock:
            record = self._runs.get(step.run.run_id)
            live = record is not None and record.ended is None and record.started_at is not None
            slurm_id = record.slurm_id if record is not None and live else ""
        if not slurm_id:
            raise LaunchError(f"job {step.run.job_id} is not running (its allocation has ended)")
        run_as = step.run.run_as or (self._account if self._opt.account else None)
        as_user = run_as.user if run_as is not None and os.geteuid() == 0 else None
        env = {k: v for k, v in step.env.items() if not k.startswith(("AXC_", "SLURM_"))}
        env.update(AXC_JOB_ID=step.run.job_id, AXC_RUN_ID=step.run.run_id)
        env["AXC_STEP_ID"] = str(step.step)
        started = time.time()
        try:
            proc = self._cli.srun(slurm_id, step.command, env, as_user=as_user)
        except OSError as e:
            raise LaunchError(f"cannot run srun: {e.strerror}") from e
        assert proc.stdout is not None
        with proc.stdout:
            pump_step_output(proc.stdout.fileno(), output, cancel, proc.terminate)
        code = proc.wait()
        cause = "cancel" if cancel.is_set() else None
        outcome, message = outcome_of(cause, code, 0)
        return StepEnded(outcome, code, started, time.time(), message)


def _staged(options: Sequence[str]) -> bool:
    return any(o.startswith(DEPENDENCY) for o in options)


def slurm_engine(
    config: SlurmConfig,
    on_event: EventCallback,
    *,
    state_dir: Path,
    logs_dir: Path,
    grace_s: float,
) -> SlurmEngine:
    """The engine of a pool configured ``engine: slurm``; ``logs_dir`` when the pool
    names no ``output_dir`` (the nodes' shared file system)."""
    options = SlurmOptions(
        partition=config.partition,
        slurm_conf=config.slurm_conf,
        bin_dir=config.bin_dir,
        submit=config.submit,
        gpu_type=config.gpu_type,
        pending_limit_s=config.pending_limit_s,
        poll_s=config.poll_s,
        grace_s=grace_s,
        account=config.account,
        accounts=dict(config.accounts),
    )
    logs = Path(config.output_dir) if config.output_dir else logs_dir
    return SlurmEngine(options, on_event, state_dir=state_dir, logs_dir=logs)


def _account(name: str) -> RunAs:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ValueError(f"Slurm pool account {name!r}: no such unix account") from None
    if entry.pw_uid == 0:
        raise ValueError(f"Slurm pool account {name!r} is root: jobs never run as root")
    groups = tuple(g.gr_gid for g in grp.getgrall() if name in g.gr_mem)
    return RunAs(name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir)


def outcome_of_record(
    record: AcctRecord, stop: str, reason: str, time_limit_s: int
) -> tuple[Outcome, str]:
    """How a run ended, from Slurm's record and the cause axcenter recorded when it
    stopped the run (``""``: it did not; ``"pending"``: it waited too long in Slurm's
    queue). axcenter's cause wins (the contract's first cause); then Slurm's state."""
    code = record.exit_code
    if stop == "pending":
        return Outcome.LOST, f"requeued: {reason}"
    if stop:
        return outcome_of(stop, code, time_limit_s)
    if record.state == "TIMEOUT":
        return outcome_of("time_limit", code, time_limit_s)
    if record.state in ("NODE_FAIL", "BOOT_FAIL"):
        nodes = ",".join(record.nodes) or "its node"
        return Outcome.LOST, f"lost: node {nodes} failed (Slurm {record.state})"
    if record.state == "PREEMPTED":
        return Outcome.LOST, "lost: preempted by Slurm"
    if record.state == "CANCELLED":
        return Outcome.CANCELLED, f"cancelled in Slurm ({describe_status(code)})"
    if record.state == "OUT_OF_MEMORY":
        return Outcome.FAILED, "out of memory"
    return outcome_of(None, code, time_limit_s)
