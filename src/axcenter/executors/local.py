"""The embedded local executor: each job is a subprocess of this service, on this machine.

Design, and why:

- **One process group per job.** Every job starts in its own session
  (``start_new_session=True``), so the whole tree a job spawns can be signalled with
  ``os.killpg``. Stopping sends SIGTERM to the group, then SIGKILL to the group after a
  grace period. When the job's main process exits, for whatever reason, what is left of
  its group is SIGKILLed too: the job is over and its devices are about to be given to
  someone else (as Slurm does). A process that leaves the group on purpose (``setsid``)
  escapes this; there are no cgroups here.
- **One watcher thread, no polling.** Exits are observed through ``os.pidfd_open`` in a
  ``selectors`` loop; an eventfd wakes the loop when a job starts or a stop is asked. The
  select timeout is the nearest deadline (a time limit or a SIGKILL after grace), so an
  idle executor sleeps and an exit is reported as soon as the kernel says so.
- **start() is cheap.** It creates the directories, opens the log, forks and returns; it
  never waits for the job. The service's own part of the job's environment is read
  once, when the executor is made, and a directory that exists costs no ``makedirs``.
- **Signals are sent only to unreaped groups.** Only the watcher reaps, and it does so under
  the lock after killing the rest of the group while the main process is still a zombie,
  so a job's process-group id can never have been reused by the time we signal it.

Devices: ``CUDA_VISIBLE_DEVICES`` is set to the batch host's devices (translated through
``NodeInventory.device_ids`` when a node has them). For logical GPUs those are just
numbers: nothing enforces them, they only tell the job which share is its own.

Callbacks: ``on_exit`` runs on the watcher thread, outside the lock, one at a time, so it
may call back into the executor (e.g. ``start()`` the next job) but should be quick. It
may run before ``start()`` has returned to its caller (a job can exit within a
millisecond); callers that keep per-job state should guard it with their own lock held
around ``start()``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from axcenter.executors.base import (
    ExitCallback,
    ExitReport,
    Launch,
    LaunchError,
    NodeInventory,
    Outcome,
    Started,
    StopReason,
)

__all__ = ["LocalExecutor"]

log = logging.getLogger(__name__)

# Extra time close() waits beyond the grace period for SIGKILLed processes to be reaped.
_CLOSE_SLACK_S = 5.0

_STOP_OUTCOME = {
    StopReason.CANCEL: Outcome.CANCELLED,
    StopReason.PREEMPT: Outcome.PREEMPTED,
    StopReason.SHUTDOWN: Outcome.LOST,
}


@dataclass(slots=True)
class _Job:
    """Mutable bookkeeping for one running job; guarded by ``LocalExecutor._lock``."""

    launch: Launch
    proc: subprocess.Popen[bytes]
    pidfd: int
    registered: bool = False  # pidfd is in the watcher's selector
    deadline: float | None = None  # monotonic time of the time limit
    cause: Outcome | None = None  # fixed by the first stop() or the time limit
    term_sent: bool = False
    kill_at: float | None = None  # monotonic time to SIGKILL the group
    kill_sent: bool = False

    @property
    def pgid(self) -> int:
        return self.proc.pid  # start_new_session makes the job its group's leader


def _killpg(pgid: int, sig: signal.Signals) -> None:
    """Signal a process group; a group that is already gone is not an error."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        log.warning("not allowed to send %s to process group %d", sig.name, pgid)


def _describe(returncode: int | None) -> str:
    if returncode is None:
        return "exit status unknown"
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = str(-returncode)
    return f"killed by signal {name}"


class LocalExecutor:
    """Runs jobs as local subprocesses on the nodes given (usually logical ones).

    ``grace_s`` is the default time between SIGTERM and SIGKILL, for stops and for time
    limits. See the module docstring for the design.
    """

    def __init__(
        self,
        nodes: Sequence[NodeInventory],
        on_exit: ExitCallback,
        grace_s: float = 10.0,
    ) -> None:
        names = [n.name for n in nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"node names must be unique: {names}")
        self._nodes = list(nodes)
        self._by_name = {n.name: n for n in nodes}
        self._on_exit = on_exit
        self._grace_s = grace_s
        #: the service's environment without its own ``AXC_*`` (read once: jobs start often)
        self._base_env = {k: v for k, v in os.environ.items() if not k.startswith("AXC_")}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when a report is delivered
        self._jobs: dict[str, _Job] = {}
        self._starting: set[str] = set()  # ids reserved by a start() that is forking
        self._reporting = 0  # reports taken out of _jobs but not yet delivered
        self._closing = False
        self._torn_down = False  # fds closed; nothing may touch them any more
        self._selector = selectors.DefaultSelector()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._selector.register(self._wake_fd, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._watch, name="axc-local-executor", daemon=True)
        self._thread.start()

    # -- Executor interface ----------------------------------------------------------

    def inventory(self) -> list[NodeInventory]:
        return list(self._nodes)

    def start(self, launch: Launch) -> Started:
        """Start ``launch`` in its own process group and return at once."""
        if not launch.command:
            raise LaunchError(f"job {launch.job_id}: empty command")
        if not os.path.isabs(launch.workdir):
            raise LaunchError(f"working directory {launch.workdir!r} is not an absolute path")
        env = self._environment(launch)
        with self._lock:
            if self._closing:
                raise LaunchError("executor is closed")
            if launch.job_id in self._jobs or launch.job_id in self._starting:
                raise LaunchError(f"job {launch.job_id} is already running")
            self._starting.add(launch.job_id)  # reserve the id while we fork, unlocked
        started_at = time.time()  # before the fork: a job may exit before it returns
        try:
            proc = self._spawn(launch, env)
        except BaseException:
            with self._lock:
                self._starting.discard(launch.job_id)
            raise
        try:
            pidfd = os.pidfd_open(proc.pid)  # the pid is ours until the watcher reaps it
        except OSError as e:  # out of file descriptors: do not leave an unwatched job
            with self._lock:
                self._starting.discard(launch.job_id)
            _killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise LaunchError(f"cannot watch job {launch.job_id}: {e.strerror}") from e
        job = _Job(launch=launch, proc=proc, pidfd=pidfd)
        if launch.time_limit_s > 0:
            job.deadline = time.monotonic() + launch.time_limit_s
        with self._lock:
            self._starting.discard(launch.job_id)
            closing = self._closing
            if not closing:
                self._jobs[launch.job_id] = job
                self._wake()
        if closing:  # close() raced with the fork: undo, and say so
            _killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            os.close(pidfd)
            raise LaunchError("executor is closed")
        log.debug("started job %s as pid %d", launch.job_id, proc.pid)
        return Started(job_id=launch.job_id, pid=proc.pid, started_at=started_at)

    def stop(self, job_id: str, reason: StopReason, grace_s: float | None = None) -> None:
        """SIGTERM the job's group now and SIGKILL it after the grace period.

        A later stop can shorten the grace period but never changes the outcome, which is
        fixed by the first stop or by the time limit.
        """
        grace = self._grace_s if grace_s is None else grace_s
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return
            if job.cause is None:
                job.cause = _STOP_OUTCOME[reason]
            self._terminate(job, time.monotonic(), grace)
            self._wake()

    def running(self) -> set[str]:
        with self._lock:
            return set(self._jobs)

    def close(self, grace_s: float | None = None) -> None:
        """Stop every job with SHUTDOWN, wait for their exit reports, stop the watcher.

        Waits at most the grace period plus a few seconds; a job that still has not been
        reaped then (a process stuck in the kernel) is reported LOST and abandoned, so
        every started job is still reported exactly once.
        """
        grace = self._grace_s if grace_s is None else grace_s
        with self._lock:
            first = not self._closing
            if first:
                self._closing = True
                now = time.monotonic()
                for job in self._jobs.values():
                    if job.cause is None:
                        job.cause = Outcome.LOST
                    self._terminate(job, now, grace)
            self._wake()
        if threading.current_thread() is self._thread:
            return  # called from on_exit: the watcher ends by itself once the jobs are gone
        abandoned: list[_Job] = []
        if first:
            deadline = time.monotonic() + max(grace, 0.0) + _CLOSE_SLACK_S
            with self._idle:
                while self._jobs or self._reporting:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._idle.wait(left)
                abandoned = list(self._jobs.values())
                self._jobs.clear()
                self._wake()
        self._thread.join()
        for job in abandoned:
            os.close(job.pidfd)
            log.error("job %s (pid %d) did not exit after SIGKILL; abandoned", *_ids(job))
            self._deliver(
                ExitReport(
                    job_id=job.launch.job_id,
                    outcome=Outcome.LOST,
                    exit_code=None,
                    ended_at=time.time(),
                    message="lost: did not exit after SIGKILL at executor shutdown",
                )
            )

    # -- internals -------------------------------------------------------------------

    def kill_orphans(self, jobs: Mapping[str, int | None]) -> set[str]:
        """SIGKILL the process groups that run ``jobs`` (job id -> recorded pid or None).

        Jobs run in their own session, so they outlive a killed service. A recorded pid
        is killed only if its environment names the job (``AXC_JOB_ID``): a recycled pid
        of an unrelated process is safe. Without one (the service died between the fork
        and writing the pid), the session leaders whose environment names the job are
        found by one pass over ``/proc``.
        """
        leaders = {job_id: [pid] for job_id, pid in jobs.items() if pid is not None}
        unrecorded = {job_id for job_id, pid in jobs.items() if pid is None}
        if unrecorded:
            for pid, job_id in _job_session_leaders():
                if job_id in unrecorded:
                    leaders.setdefault(job_id, []).append(pid)
        killed: set[str] = set()
        for job_id, pids in leaders.items():
            for pid in pids:
                if _job_of(pid) == job_id:
                    _killpg(pid, signal.SIGKILL)
                    killed.add(job_id)
        return killed

    def _spawn(self, launch: Launch, env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Create the directories, open the log and fork; errors become LaunchError."""
        _ensure_dir(launch.workdir, "working directory")
        log_fd = _open_log(launch.log_path)
        try:
            return subprocess.Popen(
                launch.command,
                cwd=launch.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as e:
            raise LaunchError(_launch_failure(launch, e)) from e
        finally:
            os.close(log_fd)  # the child has its own copy

    def _environment(self, launch: Launch) -> dict[str, str]:
        """The service's environment without its own ``AXC_*``, plus the job's."""
        env = self._base_env.copy()
        env.update(launch.env)
        cuda: list[str] = []
        gpus: list[str] = []
        for i, (node_name, devices) in enumerate(launch.node_devices):
            node = self._by_name.get(node_name)
            if node is None:
                raise LaunchError(f"job {launch.job_id}: unknown node {node_name!r}")
            for dev in devices:
                if not 0 <= dev < node.gpu_count:
                    raise LaunchError(
                        f"job {launch.job_id}: node {node_name} has no device {dev}"
                        f" (it has {node.gpu_count})"
                    )
                gpus.append(f"{node_name}:{dev}")
                if i == 0:
                    cuda.append(str(node.real_device(dev)))
        env["CUDA_VISIBLE_DEVICES"] = ",".join(cuda)
        env["AXC_JOB_ID"] = launch.job_id
        env["AXC_GPUS"] = ",".join(gpus)
        env["AXC_NODELIST"] = ",".join(name for name, _ in launch.node_devices)
        env["AXC_NUM_NODES"] = str(len(launch.node_devices))
        env.update(launch.extra_env)
        return env

    def _wake(self) -> None:
        """Wake the watcher so it re-reads jobs and deadlines. Call with the lock held."""
        if self._torn_down:
            return
        with contextlib.suppress(BlockingIOError):  # saturated: it will wake anyway
            os.eventfd_write(self._wake_fd, 1)

    def _terminate(self, job: _Job, now: float, grace: float) -> None:
        """SIGTERM the group (once) and schedule its SIGKILL. Call with the lock held."""
        if not job.term_sent:
            job.term_sent = True
            _killpg(job.pgid, signal.SIGTERM)
        kill_at = now + max(grace, 0.0)
        if job.kill_at is None or kill_at < job.kill_at:
            job.kill_at = kill_at
        if grace <= 0 and not job.kill_sent:
            job.kill_sent = True
            _killpg(job.pgid, signal.SIGKILL)

    def _fire_deadlines(self, now: float) -> float | None:
        """Act on due deadlines; return seconds until the next one. Lock held."""
        nearest: float | None = None
        for job in self._jobs.values():
            if job.cause is None and job.deadline is not None:
                if job.deadline <= now:
                    job.cause = Outcome.TIMED_OUT
                    log.info("job %s hit its time limit", job.launch.job_id)
                    self._terminate(job, now, self._grace_s)
                elif nearest is None or job.deadline < nearest:
                    nearest = job.deadline
            if job.kill_at is not None and not job.kill_sent:
                if job.kill_at <= now:
                    job.kill_sent = True
                    log.info("job %s: grace period over, sending SIGKILL", job.launch.job_id)
                    _killpg(job.pgid, signal.SIGKILL)
                elif nearest is None or job.kill_at < nearest:
                    nearest = job.kill_at
        return None if nearest is None else max(nearest - now, 0.0)

    def _watch(self) -> None:
        """The watcher thread: register new jobs, fire deadlines, reap exits, report."""
        try:
            while True:
                with self._lock:
                    if self._closing and not self._jobs:
                        break
                    for job in self._jobs.values():
                        if not job.registered:
                            self._selector.register(job.pidfd, selectors.EVENT_READ, job)
                            job.registered = True
                    timeout = self._fire_deadlines(time.monotonic())
                events = self._selector.select(timeout)
                reports: list[ExitReport] = []
                with self._lock:
                    for key, _ in events:
                        job = key.data
                        if job is None:
                            with contextlib.suppress(BlockingIOError):
                                os.eventfd_read(self._wake_fd)
                        elif self._jobs.get(job.launch.job_id) is job:  # else: abandoned
                            reports.append(self._reap(job))
                    self._reporting += len(reports)
                for report in reports:
                    self._deliver(report)
                    with self._idle:
                        self._reporting -= 1
                        self._idle.notify_all()
        except Exception:
            log.exception("local executor watcher crashed")
            raise
        finally:
            with self._lock:
                self._teardown()

    def _reap(self, job: _Job) -> ExitReport:
        """Kill what is left of the job's group, reap the main process. Lock held."""
        self._selector.unregister(job.pidfd)
        os.close(job.pidfd)
        # The main process is a zombie now, so its pid (= the group id) cannot be reused.
        _killpg(job.pgid, signal.SIGKILL)
        returncode = job.proc.wait()
        del self._jobs[job.launch.job_id]
        return _report(job, returncode)

    def _deliver(self, report: ExitReport) -> None:
        """Call on_exit; a failing callback is logged and must not kill the watcher."""
        try:
            self._on_exit(report)
        except Exception:
            log.exception("on_exit callback failed for job %s", report.job_id)

    def _teardown(self) -> None:
        """Close every fd the watcher owned. Lock held."""
        if self._torn_down:
            return
        self._torn_down = True
        self._closing = True  # only reached early if the watcher crashed: refuse new jobs
        self._selector.close()
        os.close(self._wake_fd)


def _job_of(pid: int) -> str | None:
    """The ``AXC_JOB_ID`` in the environment of process ``pid``, if it is ours to read."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    for entry in environ.split(b"\0"):
        if entry.startswith(b"AXC_JOB_ID="):
            return entry[len(b"AXC_JOB_ID=") :].decode(errors="replace")
    return None


def _job_session_leaders() -> Iterator[tuple[int, str]]:
    """(pid, job id) of each process that leads its own session and names a job."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[3]) != pid:  # the session id: jobs start a new session
            continue
        job_id = _job_of(pid)
        if job_id is not None:
            yield pid, job_id


def _ensure_dir(path: str, what: str) -> None:
    """``_make_dir`` in one system call when the directory or its parent exists (a job's
    own new working directory, a shared one)."""
    try:
        os.mkdir(path)
    except FileExistsError:
        if os.path.isdir(path):
            return
    except OSError:
        pass
    else:
        return
    _make_dir(path, what)  # what is left to create, or the error to report


def _open_log(path: str | None) -> int:
    """Open (create, truncate) a job's log; its directory is made only if the open fails.
    No path: the output is discarded (``/dev/null``, as Slurm's ``--output``)."""
    if path is None:
        return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o640)
    except OSError:
        _make_dir(os.path.dirname(path) or ".", "log directory")
    try:
        return os.open(path, flags, 0o640)
    except OSError as e:
        raise LaunchError(f"cannot open log file {path}: {e.strerror}") from e


def _make_dir(path: str, what: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except FileExistsError as e:
        raise LaunchError(f"{what} {path} is not a directory") from e
    except NotADirectoryError as e:
        raise LaunchError(f"{what} {path}: a parent is not a directory") from e
    except OSError as e:
        raise LaunchError(f"cannot create {what} {path}: {e.strerror}") from e


def _launch_failure(launch: Launch, e: OSError) -> str:
    """Turn the OSError of a failed fork/exec into a message that names the cause."""
    program = launch.command[0]
    if e.filename is not None and os.fsdecode(e.filename) == launch.workdir:
        return f"working directory {launch.workdir}: {e.strerror}"
    if isinstance(e, FileNotFoundError):
        return f"command not found: {program}"
    if isinstance(e, PermissionError):
        return f"permission denied: {program}"
    return f"cannot start {program}: {e.strerror or e}"


def _ids(job: _Job) -> tuple[str, int]:
    return job.launch.job_id, job.proc.pid


def _report(job: _Job, returncode: int) -> ExitReport:
    detail = _describe(returncode)
    cause = job.cause
    if cause is None:
        outcome = Outcome.SUCCEEDED if returncode == 0 else Outcome.FAILED
        message = detail
    elif cause is Outcome.TIMED_OUT:
        outcome, message = cause, f"killed after time limit {job.launch.time_limit_s}s ({detail})"
    elif cause is Outcome.LOST:
        outcome, message = cause, f"lost: executor shut down ({detail})"
    else:
        outcome, message = cause, f"{cause.value} ({detail})"
    return ExitReport(
        job_id=job.launch.job_id,
        outcome=outcome,
        exit_code=returncode,
        ended_at=time.time(),
        message=message,
    )
