"""The embedded local engine: each run under its own supervisor, on this machine.

Design, and why (docs/engines.md):

- **Runs outlive the service.** ``submit`` starts ``axc-supervisor`` (``supervisor.c``)
  in a session of its own (when the service dies it is reparented to init and goes on),
  which starts the job in its own session and process group, enforces the time limit,
  takes stop requests, and writes the run's end into the run's directory
  (``RUNS/<run id>/exit``, in memory: ``Settings.engine_dir``) before it exits.
  Stopping, upgrading or killing ``axc up`` leaves every job running; ``recover()`` at
  the next start adopts the runs whose supervisor is alive and reports the ends
  recorded meanwhile, with their real times.
- **Nothing is requeued on a guess.** A run whose supervisor is gone without a record
  (killed with SIGKILL, the machine's OOM killer) has its processes found by the
  ``AXC_RUN_ID`` in their environment and SIGKILLed until none is left; only then is it
  reported ``LOST``.
- **One watcher thread, no polling.** Each supervisor is watched through a pidfd (which
  works for a process that is not our child: an adopted one) in a ``selectors`` loop;
  when it exits, its record is read and reported.
- **The run directory is the engine's state**: ``started`` (supervisor pid, job pid,
  start time) and ``exit`` written by the supervisor, ``stop`` written by us. A run is
  forgotten (its directory removed) once the control loop acknowledges its end.

Confinement (docs/security.md), when the service runs as root (``Confinement``): each
run gets a control group of its own (memory, CPUs, processes, and on real GPUs only its
devices), a mount namespace whose /proc shows it only its own user's processes, and the
unix identity of its user (``RunSpec.run_as``); its log belongs to that user (0600).
Without root (single-user mode) runs are the service's own and only the log limit holds.

Devices: ``CUDA_VISIBLE_DEVICES`` is set to the batch host's devices (translated through
``NodeInventory.device_ids`` when a node has them). For logical GPUs those are just
numbers: nothing enforces them, they only tell the job which share is its own.

Logs: ``LOGS/<job id>.log``, appended by each run of the job after a header line, so a
requeued job keeps the output of its earlier attempts; the supervisor rotates it
(``executors/logs.py``: ``LogPolicy``).

Steps (``run_step``, Slurm's ``srun`` inside an allocation) run under a supervisor of
their own in step mode (``-S``): it joins the run's control group as it is (so the run's
memory, CPUs and devices bound the step too, and the run's end kills the step with
everything else in the group), switches to the run's identity, and dies with the API
thread that waits for it. Its output comes back through a pipe, not the job's log; its
records live in ``STEPS/<job id>.<step>`` until it ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import logging
import os
import selectors
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from axcenter.executors import logs
from axcenter.executors.base import (
    ENDED_WITH_JOB,
    EventCallback,
    LaunchError,
    NodeInventory,
    Outcome,
    Recovery,
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
from axcenter.executors.gpus import GpuSampler
from axcenter.executors.local.build import supervisor_binary
from axcenter.executors.logs import LogChunk, LogPolicy
from axcenter.model.jobs import JobOutput

__all__ = ["Confinement", "LocalEngine"]

log = logging.getLogger(__name__)

#: what a job inherits of the service's environment: enough to find programs and speak
#: the locale, nothing that could hold a secret
BASE_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "USER", "LOGNAME", "SHELL")
#: a job of another account searches the system's directories, not the service's PATH
#: (which may name directories only the service can read, such as root's)
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
#: seconds ``close(stop_runs=True)`` waits beyond the grace period for the ends
_CLOSE_SLACK_S = 5.0
#: how long recover() waits for a supervisor caught between its start and its record
_STARTING_WAIT_S = 2.0
_NOT_LIVE = "job {} is not running (its allocation has ended)"
#: how long a killed step waits to learn whether its run's end killed it
_RUN_END_WAIT_S = 5.0
#: the devices every job may use, as Docker's default: null, zero, full, random,
#: urandom, tty, console, ptmx, the pseudo-terminals, tun; and mknod of any (not use)
_BASE_DEVICES = (
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
    "c 10:200 rwm",
)
#: NVIDIA's character devices: /dev/nvidiaN is 195:N; 195:255 nvidiactl, 195:254 modeset
_NVIDIA_MAJOR = 195
#: CUDA's unified memory devices, numbered by the driver (not MIG's nvidia-caps: a job
#: given whole GPUs needs none, and they would open other MIG instances)
_NVIDIA_SUPPORT = ("nvidia-uvm", "nvidia-uvm-tools")


@dataclass(frozen=True, slots=True)
class Confinement:
    """How the local engine confines runs; it needs root (docs/security.md).

    ``cgroup_parent`` names the parent of the runs' control groups (one per center on a
    host), ``pids_max`` the processes a run may have at once, ``private_proc`` a /proc
    of its own that shows a job only its own user's processes (Linux 5.8 and later:
    each mount of /proc has its own options; older kernels would change the host's)."""

    cgroup_parent: str
    pids_max: int = 4096
    private_proc: bool = True


@dataclass(slots=True)
class _Run:
    """A run this engine watches; guarded by ``LocalEngine._lock``."""

    run_id: str
    supervisor: int
    job_pid: int
    started_at: float
    pidfd: int
    #: the supervisor, if this service started it (its child until it exits: reaped then)
    proc: subprocess.Popen[bytes] | None = None
    registered: bool = False
    #: the first stop asked (its reason wins) and the shortest grace asked
    stop: tuple[StopReason, float] | None = None


class LocalEngine:
    """Runs jobs on this machine, each under a supervisor of its own.

    ``state_dir`` holds the run directories, ``logs_dir`` the jobs' output; ``grace_s``
    is the time between SIGTERM and SIGKILL at a time limit.
    """

    def __init__(
        self,
        nodes: Sequence[NodeInventory],
        on_event: EventCallback,
        *,
        state_dir: Path,
        logs_dir: Path,
        grace_s: float = 10.0,
        confinement: Confinement | None = None,
        log: LogPolicy = LogPolicy(),
        gpu_sample_s: float = 10.0,
    ) -> None:
        names = [n.name for n in nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"node names must be unique: {names}")
        self._nodes = list(nodes)
        self._by_name = {n.name: n for n in nodes}
        self._on_event = on_event
        self._grace_s = grace_s
        self._confinement = confinement
        self._log = log
        #: what every run may use beside its GPUs (cgroup v1's device rules)
        self._nvidia_extra = _nvidia_support_devices() if confinement else ()
        _own_directory(Path(state_dir))
        self._runs_dir = Path(state_dir) / "runs"
        self._runs_dir.mkdir(mode=0o700, exist_ok=True)
        #: steps' records: a step dies with the service, so none is left to adopt
        self._steps_dir = Path(state_dir) / "steps"
        shutil.rmtree(self._steps_dir, ignore_errors=True)
        self._steps_dir.mkdir(mode=0o700)
        self._logs_dir = Path(logs_dir)
        self._logs_dir.mkdir(parents=True, exist_ok=True)
        self._supervisor = str(supervisor_binary())
        #: a clean base for every job, not the service's environment (which may hold its
        #: database URL or tokens): read once, since jobs start often
        self._base_env = {k: os.environ[k] for k in BASE_ENVIRONMENT if k in os.environ}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._runs: dict[str, _Run] = {}
        #: run id -> step id -> what ends that step with its run
        self._step_stops: dict[str, dict[str, Callable[[], None]]] = {}
        self._closing = False
        self._torn_down = False  # the watcher closed its fds
        self._selector = selectors.DefaultSelector()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._selector.register(self._wake_fd, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._watch, name="axc-local-engine", daemon=True)
        self._thread.start()
        #: samples the real GPUs' utilisation for each run (None: no real GPU here)
        self._sampler = GpuSampler.for_nodes(self._nodes, gpu_sample_s)

    # -- the contract ----------------------------------------------------------------

    def inventory(self) -> list[NodeInventory]:
        return list(self._nodes)

    def submit(self, run: RunSpec) -> str:
        """Start ``run`` under a supervisor; returns once the job's process exists."""
        if not run.command:
            raise LaunchError(f"job {run.job_id}: empty command")
        if not os.path.isabs(run.workdir):
            raise LaunchError(f"working directory {run.workdir!r} is not an absolute path")
        self._check_identity(run)
        env = self._environment(run)
        run_dir = self._runs_dir / run.run_id
        with self._lock:
            if self._closing:
                raise LaunchError("the local engine is closed")
            if run.run_id in self._runs:
                return run.run_id  # idempotent: already running
        try:
            run_dir.mkdir()
        except FileExistsError:
            raise LaunchError(f"run {run.run_id} was submitted before") from None
        try:
            if run.run_as is None:  # the service's own job: it may make its own directory
                _ensure_dir(run.workdir, "working directory")
            log_fd = self._open_log(run)
        except LaunchError:
            _remove_run_dir(run_dir)
            raise
        launched, script_fd = run, None
        if run.script is not None:  # the job runs it through its own descriptor
            try:
                script_fd = _script_fd(run)
            except LaunchError:
                os.close(log_fd)
                _remove_run_dir(run_dir)
                raise
            launched = replace(run, command=(f"/proc/self/fd/{script_fd}", *run.command[1:]))
        try:
            proc, line = self._spawn(
                self._argv(launched, run_dir), env, log_fd, run_dir, script_fd=script_fd
            )
        finally:
            if script_fd is not None:
                os.close(script_fd)
        if line[:1] != ["R"] or len(line) != 4:
            proc.wait()  # it ended, having said why (or not)
            _remove_run_dir(run_dir)
            if line[:1] == ["F"] and len(line) == 3:
                raise LaunchError(_launch_failure(run, line[1], int(line[2])))
            raise LaunchError(f"job {run.job_id}: the job supervisor failed to start it")
        supervisor, job_pid, started_at = int(line[1]), int(line[2]), int(line[3]) / 1e9
        self._watch_run(run.run_id, supervisor, job_pid, started_at, proc)
        devices = env["CUDA_VISIBLE_DEVICES"]
        if self._sampler is not None:
            self._sampler.track(run.run_id, _device_numbers(devices))
        self._on_event(RunStarted(run.run_id, run.run_id, started_at, devices))
        log.debug("started run %s (supervisor %d, job %d)", run.run_id, supervisor, job_pid)
        return run.run_id

    def _check_identity(self, run: RunSpec) -> None:
        """Confined, every run has a unix identity other than root's; unconfined (the
        service cannot switch identities), none: it runs as the service."""
        if self._confinement is None:
            if run.run_as is not None:
                raise LaunchError(
                    f"job {run.job_id}: this service runs as uid {os.geteuid()} and cannot "
                    f"run jobs as {run.run_as.user}"
                )
            return
        if run.run_as is None:
            raise LaunchError(f"job {run.job_id}: no unix account to run it as")
        if run.run_as.uid == 0 or run.run_as.gid == 0:
            raise LaunchError(f"job {run.job_id}: jobs never run as root")

    def _argv(self, run: RunSpec, run_dir: Path) -> list[str]:
        """The supervisor's command line (``supervisor.c``): the run directory first, as
        ``recover()`` finds supervisors by it."""
        argv = [self._supervisor, str(run_dir), "-w", run.workdir]
        argv += ["-t", str(max(run.time_limit_s, 0)), "-k", str(round(self._grace_s * 1000))]
        if run.output is not JobOutput.DISCARD:
            log = self._log
            argv += ["-L", str(log.max_bytes), "-l", str(self._logs_dir / f"{run.job_id}.log")]
            argv += ["-r", str(log.rotate_bytes), "-K", str(log.keep)]
        if run.output_file is not None:  # the job's own files, as its user opens them
            argv += ["-o", run.output_file]
            if run.error_file is not None:
                argv += ["-e", run.error_file]
            if run.attempt > 1:
                argv.append("-a")  # a requeued run adds to its first run's output
        confine = self._confinement
        if confine is not None and run.run_as is not None:
            who = run.run_as
            argv += ["-u", str(who.uid), "-g", str(who.gid)]
            argv += ["-G", ",".join(str(g) for g in dict.fromkeys((who.gid, *who.groups)))]
            argv += ["-c", f"{confine.cgroup_parent}/{run.run_id}", "-p", str(confine.pids_max)]
            if run.memory_mb > 0:
                argv += ["-m", str(run.memory_mb << 20)]
            if run.cpus > 0:
                argv += ["-C", str(run.cpus * 1000)]
            argv += ["-d", ";".join(self._device_rules(run))]
            if confine.private_proc:
                argv.append("-P")
        return [*argv, "--", *run.command]

    def _cgroup_of(self, run_id: str) -> str | None:
        return f"{self._confinement.cgroup_parent}/{run_id}" if self._confinement else None

    def _device_rules(self, run: RunSpec) -> list[str]:
        """The devices a run may open: the basics, and its own GPUs if they are real."""
        rules = list(_BASE_DEVICES)
        node_name, devices = run.node_devices[0] if run.node_devices else ("", ())
        node = self._by_name.get(node_name)
        if node is not None and not node.logical and devices:
            rules += [f"c {_NVIDIA_MAJOR}:{node.real_device(d)} rwm" for d in devices]
            rules += self._nvidia_extra
        return rules

    @staticmethod
    def _spawn(
        argv: list[str],
        env: dict[str, str],
        log_fd: int,
        run_dir: Path,
        *,
        script_fd: int | None = None,
    ) -> tuple[subprocess.Popen[bytes], list[str]]:
        """Start the supervisor and read its one line: ``R SUP JOB STARTED_NS`` or
        ``F ERRNO``. Its stdout is a pipe, its stderr the job's log, its stdin /dev/null.
        (``subprocess`` releases the GIL across its vfork and exec; ``os.posix_spawn``
        holds it, which halved the rate of live submissions.)"""
        try:
            proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log_fd,
                bufsize=0,
                pass_fds=() if script_fd is None else (script_fd,),
            )
        except OSError as e:
            _remove_run_dir(run_dir)
            raise LaunchError(f"cannot start the job supervisor: {e.strerror}") from e
        finally:
            os.close(log_fd)
        assert proc.stdout is not None
        with proc.stdout:
            fd = proc.stdout.fileno()
            out = b""
            while not out.endswith(b"\n") and (chunk := os.read(fd, 128)):
                out += chunk
        return proc, out.decode(errors="replace").split()

    def stop(self, run_id: str, reason: StopReason, grace_s: float) -> None:
        """Write the stop request and signal the run's supervisor (through its pidfd: a
        recycled pid is never signalled)."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                return
            if run.stop is not None:  # the first reason wins; the grace may only shorten
                reason, grace_s = run.stop[0], min(run.stop[1], grace_s)
            run.stop = (reason, grace_s)
            _write_atomic(
                self._runs_dir / run_id / "stop", f"{reason.value} {round(grace_s * 1000)}\n"
            )
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(run.pidfd, signal.SIGUSR1)

    def recover(self) -> Recovery:
        """Adopt the runs whose supervisor lives; report the ends recorded, and end as
        LOST (after killing what is left of them) the runs nobody can account for."""
        running: dict[str, RunStarted] = {}
        ended: list[RunEnded] = []
        for run_dir in sorted(self._runs_dir.iterdir()):
            run_id = run_dir.name
            if not run_dir.is_dir() or run_id.startswith("."):
                continue
            with self._lock:
                if run_id in self._runs:
                    watched = self._runs[run_id]
                    running[run_id] = RunStarted(run_id, run_id, watched.started_at)
                    continue
            found = self._recover_one(run_dir)
            if isinstance(found, RunStarted):
                running[run_id] = found
            elif found is not None:
                ended.append(found)
        return Recovery(running=running, ended=ended)

    def acknowledge(self, run_ids: Sequence[str]) -> None:
        for run_id in run_ids:
            with self._lock:
                if run_id in self._runs:
                    continue  # still running: not ended after all
            _remove_run_dir(self._runs_dir / run_id)

    def read_log(self, job_id: str, offset: int, limit: int) -> LogChunk | None:
        return logs.read(self._logs_dir / f"{job_id}.log", offset, limit)

    def run_step(self, step: StepSpec, output: StepOutput, cancel: threading.Event) -> StepEnded:
        """Run ``step`` in its run's control group, as its user (see the module
        docstring); blocks until it ends."""
        run = step.run
        if not step.command:
            raise LaunchError(f"step {step.step_id}: empty command")
        with self._lock:
            if run.run_id not in self._runs:
                raise LaunchError(_NOT_LIVE.format(run.job_id))
        self._check_identity(run)
        # the caller's variables beside the job's; axcenter's (devices, AXC_*) still win
        env = self._environment(replace(run, env={**run.env, **step.env}))
        env["AXC_STEP_ID"] = str(step.step)
        step_dir = self._steps_dir / step.step_id
        try:
            step_dir.mkdir()
        except FileExistsError:
            raise LaunchError(f"step {step.step_id} was started before") from None
        try:
            return self._run_step(step, env, step_dir, output, cancel)
        finally:
            _remove_run_dir(step_dir)

    def _run_step(
        self,
        step: StepSpec,
        env: dict[str, str],
        step_dir: Path,
        output: StepOutput,
        cancel: threading.Event,
    ) -> StepEnded:
        run = step.run
        argv = [self._supervisor, str(step_dir), "-S", "-w", run.workdir, "-t", "0"]
        argv += ["-k", str(round(self._grace_s * 1000))]
        confine = self._confinement
        if confine is not None and run.run_as is not None:
            who = run.run_as
            argv += ["-u", str(who.uid), "-g", str(who.gid)]
            argv += ["-G", ",".join(str(g) for g in dict.fromkeys((who.gid, *who.groups)))]
            argv += ["-c", f"{confine.cgroup_parent}/{run.run_id}"]
            if confine.private_proc:
                argv.append("-P")
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        try:
            proc, line = self._spawn([*argv, "--", *step.command], env, out_w, step_dir)
        except LaunchError:
            os.close(out_r)
            raise
        with open(out_r, "rb", buffering=0) as pipe:
            if line[:1] != ["R"] or len(line) != 4:
                proc.wait()
                if line[:1] == ["F"] and len(line) == 3:
                    if line[1] == "cgroup" and int(line[2]) == errno.ENOENT:
                        raise LaunchError(_NOT_LIVE.format(run.job_id))
                    raise LaunchError(_launch_failure(run, line[1], int(line[2])))
                raise LaunchError(f"step {step.step_id}: the supervisor failed to start it")

            def stop() -> None:
                _write_atomic(step_dir / "stop", f"cancel {round(self._grace_s * 1000)}\n")
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGUSR1)

            ended_by_run = threading.Event()

            def end_with_run() -> None:
                ended_by_run.set()
                stop()

            with self._lock:  # the run's end stops its steps (``_report_end``)
                self._step_stops.setdefault(run.run_id, {})[step.step_id] = end_with_run
                live = run.run_id in self._runs
            if not live:
                end_with_run()
            try:
                pump_step_output(pipe.fileno(), output, cancel, stop)
            finally:
                with self._lock:
                    stops = self._step_stops.get(run.run_id, {})
                    stops.pop(step.step_id, None)
                    if not stops:
                        self._step_stops.pop(run.run_id, None)
        proc.wait()
        ended = _read_exit(step_dir)
        if ended is None:
            lost = "lost: its supervisor ended without a record"
            return StepEnded(Outcome.LOST, None, None, time.time(), lost)
        if not ended_by_run.is_set() and (ended.exit_code or 0) < 0 and not cancel.is_set():
            # killed: by its own doing, or by its run's end, which empties the run's group
            # before the run's supervisor exits
            with self._idle:
                if self._idle.wait_for(lambda: run.run_id not in self._runs, _RUN_END_WAIT_S):
                    ended_by_run.set()
        if ended_by_run.is_set():
            message = f"{ENDED_WITH_JOB} ({describe_status(ended.exit_code)})"
            return StepEnded(
                Outcome.FAILED, ended.exit_code, ended.started_at, ended.ended_at, message
            )
        return StepEnded(
            ended.outcome, ended.exit_code, ended.started_at, ended.ended_at, ended.message
        )

    def running(self) -> set[str]:
        """Ids of the runs watched now."""
        with self._lock:
            return set(self._runs)

    def close(self, *, stop_runs: bool = False, grace_s: float | None = None) -> None:
        """Stop watching. Runs go on under their supervisors, unless ``stop_runs``: then
        each is stopped (SHUTDOWN) and its end reported before this returns."""
        grace = self._grace_s if grace_s is None else grace_s
        if stop_runs:
            for run_id in self.running():
                self.stop(run_id, StopReason.SHUTDOWN, grace)
            deadline = time.monotonic() + grace + _CLOSE_SLACK_S
            with self._idle:
                while self._runs and (left := deadline - time.monotonic()) > 0:
                    self._idle.wait(left)
        with self._lock:
            self._closing = True
            self._wake()
        if self._sampler is not None:
            self._sampler.stop()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def stages(self, node: str) -> bool:
        """No: a run starts when it is submitted (the loop submits it when its devices
        are free)."""
        return False

    # -- internals -------------------------------------------------------------------

    def _watch_run(
        self,
        run_id: str,
        supervisor: int,
        job_pid: int,
        started_at: float,
        proc: subprocess.Popen[bytes] | None = None,
    ) -> None:
        """Watch a supervisor (one gone already is reported from its record at once);
        ``proc``: it is our child (started by this service), to be reaped."""
        try:
            pidfd = os.pidfd_open(supervisor)
        except ProcessLookupError:
            pidfd = -1
        with self._lock:
            if pidfd < 0:
                # gone within a millisecond: report from its record on the watcher thread
                pidfd = os.eventfd(1, os.EFD_CLOEXEC)
            self._runs[run_id] = _Run(run_id, supervisor, job_pid, started_at, pidfd, proc)
            self._wake()

    def _recover_one(self, run_dir: Path) -> RunStarted | RunEnded | None:
        run_id = run_dir.name
        ended = _read_exit(run_dir)
        if ended is not None:
            return ended
        started = _read_started(run_dir)
        if started is None and _supervisor_of(run_dir) is not None:
            # caught between its start and its record (the service died in submit)
            deadline = time.monotonic() + _STARTING_WAIT_S
            while started is None and time.monotonic() < deadline:
                time.sleep(0.01)
                started = _read_started(run_dir)
        if started is not None:
            supervisor, job_pid, started_at = started
            if _supervisor_of(run_dir) == supervisor:
                self._watch_run(run_id, supervisor, job_pid, started_at)
                return RunStarted(run_id, run_id, started_at)
            ended = _read_exit(run_dir)  # it may have just finished
            if ended is not None:
                return ended
        killed = _kill_run(run_id, self._cgroup_of(run_id))
        ended = _read_exit(run_dir)
        if ended is not None:
            return ended
        what = f"{killed} process(es) killed" if killed else "no process left"
        return RunEnded(
            run_id,
            run_id,
            Outcome.LOST,
            None,
            started[2] if started is not None else None,
            time.time(),
            f"lost: its supervisor ended without a record ({what})",
        )

    def _open_log(self, run: RunSpec) -> int:
        if run.output is JobOutput.DISCARD:
            return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        path = self._logs_dir / f"{run.job_id}.log"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            if run.run_as is not None:  # the job's own, as Slurm's output files are
                os.fchown(fd, run.run_as.uid, run.run_as.gid)
        except OSError as e:
            raise LaunchError(f"cannot open log file {path}: {e.strerror}") from e
        if run.attempt > 1:
            os.write(fd, f"\n[axcenter] run {run.attempt} of job {run.job_id}\n".encode())
        if run.output_file is not None:
            files = " and ".join(dict.fromkeys(filter(None, (run.output_file, run.error_file))))
            os.write(fd, f"[axcenter] the job's output goes to {files} in {run.workdir}\n".encode())
        return fd

    def _environment(self, run: RunSpec) -> dict[str, str]:
        """A clean base, the user's variables, then axcenter's, which the user's cannot
        override (the devices, the job's identity and place)."""
        env = self._base_env.copy()
        if run.run_as is not None:  # the account's own, not the service's
            env.update(
                HOME=run.run_as.home or "/",
                USER=run.run_as.user,
                LOGNAME=run.run_as.user,
                PATH=SYSTEM_PATH,
            )
        env.update(run.env)
        cuda: list[str] = []
        gpus: list[str] = []
        for i, (node_name, devices) in enumerate(run.node_devices):
            node = self._by_name.get(node_name)
            if node is None:
                raise LaunchError(f"job {run.job_id}: unknown node {node_name!r}")
            for dev in devices:
                if not 0 <= dev < node.gpu_count:
                    raise LaunchError(
                        f"job {run.job_id}: node {node_name} has no device {dev}"
                        f" (it has {node.gpu_count})"
                    )
                gpus.append(f"{node_name}:{dev}")
                if i == 0:
                    cuda.append(str(node.real_device(dev)))
        env["CUDA_VISIBLE_DEVICES"] = env["NVIDIA_VISIBLE_DEVICES"] = ",".join(cuda)
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # the numbering nvidia-smi shows
        env["AXC_JOB_ID"] = run.job_id
        env["AXC_RUN_ID"] = run.run_id
        env["AXC_GPUS"] = ",".join(gpus)
        env["AXC_NODELIST"] = ",".join(name for name, _ in run.node_devices)
        env["AXC_NUM_NODES"] = str(len(run.node_devices))
        env.update(run.extra_env)
        return env

    def _wake(self) -> None:
        """Wake the watcher so it re-reads the runs. Call with the lock held."""
        if self._torn_down:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            os.eventfd_write(self._wake_fd, 1)

    def _watch(self) -> None:
        """The watcher thread: register new runs, report the ends of those that exit."""
        try:
            while True:
                with self._lock:
                    if self._closing:
                        break
                    for run in self._runs.values():
                        if not run.registered:
                            self._selector.register(run.pidfd, selectors.EVENT_READ, run)
                            run.registered = True
                events = self._selector.select()
                ended: list[_Run] = []
                with self._lock:
                    for key, _ in events:
                        run = key.data
                        if run is None:
                            with contextlib.suppress(BlockingIOError):
                                os.eventfd_read(self._wake_fd)
                        elif self._runs.get(run.run_id) is run:
                            self._selector.unregister(run.pidfd)
                            ended.append(run)
                for run in ended:
                    self._report_end(run)
        except Exception:
            log.exception("local engine watcher crashed")
            raise
        finally:
            with self._lock:
                for run in self._runs.values():
                    os.close(run.pidfd)
                self._runs.clear()
                self._torn_down = True
                self._selector.close()
                os.close(self._wake_fd)
                self._idle.notify_all()

    def _report_end(self, run: _Run) -> None:
        """The supervisor exited: report its record, or end the run as LOST."""
        run_dir = self._runs_dir / run.run_id
        if run.proc is not None:
            run.proc.wait()  # exited (its pidfd said so): reap it
        else:  # adopted: our child only if an earlier engine of this process started it
            with contextlib.suppress(ChildProcessError):
                os.waitpid(run.supervisor, os.WNOHANG)
        report = _read_exit(run_dir)
        if report is None:
            killed = _kill_run(run.run_id, self._cgroup_of(run.run_id))
            report = _read_exit(run_dir) or RunEnded(
                run.run_id,
                run.run_id,
                Outcome.LOST,
                None,
                run.started_at,
                time.time(),
                f"lost: its supervisor ended without a record ({killed} process(es) killed)",
            )
        with self._idle:
            os.close(run.pidfd)
            del self._runs[run.run_id]
            steps = self._step_stops.pop(run.run_id, {})
            self._idle.notify_all()
        if self._sampler is not None:
            report = dataclasses.replace(report, gpu_usage=self._sampler.finish(run.run_id))
        for end_step in steps.values():  # unconfined, nothing else would end them
            end_step()
        try:
            self._on_event(report)
        except Exception:
            log.exception("on_event failed for the end of run %s", run.run_id)


def _device_numbers(visible: str) -> tuple[int, ...]:
    """The device indices of a ``CUDA_VISIBLE_DEVICES`` value (none for other names)."""
    return tuple(int(d) for d in visible.split(",") if d.strip().isdigit())


# -- run records -------------------------------------------------------------------------


def _own_directory(path: Path) -> None:
    """Make ``path`` (0700), or accept it only if it is a directory of ours: it may sit
    in a shared tmpfs, where another user could have made it first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    found = os.lstat(path)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid():
        raise RuntimeError(
            f"{path} is not a directory owned by this service (uid {os.geteuid()}): "
            "remove it, or set AXC_RUN_DIR"
        )
    os.chmod(path, 0o700)


#: what a run directory may hold (records, and their temporary names while written)
_RECORDS = ("started", "exit", "stop", ".started.tmp", ".exit.tmp", ".stop.tmp")


def _remove_run_dir(run_dir: Path) -> None:
    """Remove a run directory: a few unlinks, not a tree walk (one per ended run)."""
    for name in _RECORDS:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(run_dir / name)
    try:
        os.rmdir(run_dir)
    except FileNotFoundError:
        pass
    except OSError:  # something else in it: not ours to guess, remove it all
        shutil.rmtree(run_dir, ignore_errors=True)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _read_started(run_dir: Path) -> tuple[int, int, float] | None:
    try:
        supervisor, job_pid, started_ns = (run_dir / "started").read_text().split()
    except (OSError, ValueError):
        return None
    return int(supervisor), int(job_pid), int(started_ns) / 1e9


def _read_exit(run_dir: Path) -> RunEnded | None:
    """The supervisor's end record as a ``RunEnded``, or None if it wrote none."""
    try:
        fields = (run_dir / "exit").read_text().split()
        started_ns, ended_ns, cause, status, limit = fields[:5]
        memory_mb, log_max = (int(fields[5]), int(fields[6])) if len(fields) >= 7 else (0, 0)
    except (OSError, ValueError):
        return None
    kind, _, value = status.partition(":")
    run_id = run_dir.name
    if kind == "launch_failed":
        stage, _, code_text = value.rpartition(":")
        message = f"launch failed: {_STAGES.get(stage, '')}{os.strerror(int(code_text))}"
        return RunEnded(run_id, run_id, Outcome.FAILED, None, None, int(ended_ns) / 1e9, message)
    code = int(value) if kind == "exited" else -int(value)
    outcome, message = outcome_of(
        cause, code, int(limit), memory_mb=memory_mb, log_max_bytes=log_max
    )
    return RunEnded(
        run_id, run_id, outcome, code, int(started_ns) / 1e9, int(ended_ns) / 1e9, message
    )


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]


def _supervisor_of(run_dir: Path) -> int | None:
    """The pid of the live supervisor of ``run_dir``, found by its command line."""
    wanted = str(run_dir)
    for pid in _pids():
        argv = _cmdline(pid)
        if (
            len(argv) > 1
            and argv[1] == wanted
            and argv[0].rsplit("/", 1)[-1].startswith("axc-supervisor")
        ):
            return pid
    return None


def _pids() -> Iterator[int]:
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def _run_of(pid: int) -> str | None:
    """The ``AXC_RUN_ID`` in the environment of process ``pid``, if it is ours to read."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    for entry in environ.split(b"\0"):
        if entry.startswith(b"AXC_RUN_ID="):
            return entry[len(b"AXC_RUN_ID=") :].decode(errors="replace")
    return None


_CGROUP_ROOT = Path("/sys/fs/cgroup")
#: the hierarchies a run's group has under cgroup v1 (``supervisor.c``)
_CGROUP_V1 = ("memory", "cpu", "pids", "devices")


def _cgroup_dirs(name: str) -> list[Path]:
    if (_CGROUP_ROOT / "cgroup.controllers").exists():  # v2: one hierarchy
        return [_CGROUP_ROOT / name]
    return [_CGROUP_ROOT / ctrl / name for ctrl in _CGROUP_V1]


def _cgroup_pids(name: str) -> list[int]:
    dirs = _cgroup_dirs(name)
    path = dirs[0] if len(dirs) == 1 else _CGROUP_ROOT / "pids" / name
    try:
        return [int(p) for p in (path / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _kill_run(run_id: str, cgroup: str | None = None) -> int:
    """SIGKILL every process of the run until none is left: those in its control group
    (if confined: a job cannot leave it) and those whose environment names it (the job
    and everything it spawned, in or out of its group); returns how many were killed.
    Its control group is removed after."""
    if cgroup is not None:
        dirs = _cgroup_dirs(cgroup)
        with contextlib.suppress(OSError):  # no new process from now on
            if len(dirs) == 1:
                (dirs[0] / "cgroup.kill").write_text("1")
            else:
                (_CGROUP_ROOT / "pids" / cgroup / "pids.max").write_text("0")
    killed = 0
    for _ in range(1000):
        found = set(_cgroup_pids(cgroup)) if cgroup is not None else set()
        found.update(pid for pid in _pids() if _run_of(pid) == run_id)
        if not found:
            if cgroup is not None:
                for path in _cgroup_dirs(cgroup):
                    with contextlib.suppress(OSError):
                        path.rmdir()
            return killed
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.01)  # zombies leave /proc/PID/environ unreadable once reaped
    raise RuntimeError(f"run {run_id}: processes survive SIGKILL")


def _script_fd(run: RunSpec) -> int:
    """The job's batch script in memory, sealed, on a descriptor the supervisor hands to
    the job (as slurmd runs its spool's copy): the job runs what was submitted, whatever
    became of the file, and needs no access to the submitter's or the service's files."""
    assert run.script is not None
    fd = os.memfd_create(f"axc-script-{run.run_id}", os.MFD_ALLOW_SEALING)
    try:
        data = run.script.encode()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    except OSError as e:
        os.close(fd)
        raise LaunchError(f"cannot hand the job its batch script: {e.strerror}") from e
    return fd


def _ensure_dir(path: str, what: str) -> None:
    """Make ``path`` and its parents; one system call when the parent exists (a job's
    own new working directory) or the directory does (a shared one)."""
    try:
        os.mkdir(path)
    except FileExistsError:
        if os.path.isdir(path):
            return
    except OSError:
        pass
    else:
        return
    try:
        os.makedirs(path, exist_ok=True)
    except FileExistsError as e:
        raise LaunchError(f"{what} {path} is not a directory") from e
    except NotADirectoryError as e:
        raise LaunchError(f"{what} {path}: a parent is not a directory") from e
    except OSError as e:
        raise LaunchError(f"cannot create {what} {path}: {e.strerror}") from e


#: what each stage of a launch the supervisor reports is, in the user's terms
_STAGES = {
    "cgroup": "cannot confine the job (control group): ",
    "namespace": "cannot give the job its own /proc: ",
    "identity": "cannot switch to the job's unix account: ",
    "workdir": "cannot enter the working directory: ",
    "output": "cannot open the output file: ",
    "exec": "",
}


def _launch_failure(run: RunSpec, stage: str, code: int) -> str:
    """The message of a launch that failed at ``stage`` with errno ``code``."""
    program = run.command[0]
    if stage == "workdir":
        return f"cannot enter the working directory {run.workdir}: {os.strerror(code)}"
    if stage == "output":
        files = ", ".join(filter(None, (run.output_file, run.error_file)))
        return f"cannot open the output file ({files} in {run.workdir}): {os.strerror(code)}"
    if stage != "exec":
        return _STAGES.get(stage, f"{stage}: ") + os.strerror(code)
    if run.script is not None:
        interpreter = run.script.split("\n", 1)[0][2:].strip()
        return f"cannot run the batch script with {interpreter}: {os.strerror(code)}"
    if code == errno.ENOENT:
        return f"command not found: {program}"
    if code == errno.EACCES:
        return f"permission denied: {program}"
    return f"cannot start {program}: {os.strerror(code)}"


def _nvidia_support_devices() -> tuple[str, ...]:
    """Rules for the devices a CUDA program needs beside its GPUs: nvidiactl, modeset,
    and the unified-memory and capability devices, whose major numbers the driver picks
    (``/proc/devices``)."""
    rules = [f"c {_NVIDIA_MAJOR}:255 rwm", f"c {_NVIDIA_MAJOR}:254 rwm"]
    try:
        text = Path("/proc/devices").read_text()
    except OSError:
        return tuple(rules)
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1] in _NVIDIA_SUPPORT:
            rules.append(f"c {parts[0]}:* rwm")
    return tuple(rules)
