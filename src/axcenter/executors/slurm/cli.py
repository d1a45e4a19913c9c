"""Slurm's command line, in one place: every call the Slurm engine makes and every parse
of an answer. Written against Slurm 22.05 (Debian 12); what differs in later versions is
noted where it is used, so that supporting one is a change to this module alone.

Every call runs with ``SLURM_TIME_FORMAT=%s`` (times as epoch seconds, whatever the
site's locale or time zone) and the cluster's ``SLURM_CONF``. A call that fails or times
out answers ``None`` (or raises ``SlurmError`` where the caller must tell the cause): the
engine takes that for *unknown*, never for *ended*.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AcctRecord",
    "JobRow",
    "NodeRow",
    "QueueRow",
    "SlurmCli",
    "SlurmError",
    "expand_hostlist",
    "parse_exit_code",
    "parse_jobs",
    "parse_wait_status",
]

log = logging.getLogger(__name__)

#: seconds before a Slurm command is given up (slurmctld answers in milliseconds; its
#: clients retry for MessageTimeout when it is away)
CALL_TIMEOUT_S = 30.0
#: what sbatch says when the controller is away or busy: the same submission may be
#: tried again (after checking that the first did not get through)
TRANSIENT = (
    "Unable to contact slurm controller",
    "Socket timed out",
    "Zero Bytes were transmitted",
    "temporarily unable to accept job",
    "Slurm backup controller in standby mode",
    "Communication connection failure",
    "Connection refused",
)
#: Slurm job states in which a job is over (sacct); any other is still going
TERMINAL = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)
#: node states (``sinfo %T``, lower case; a trailing ``*``: not responding) where no new
#: work may go
_NODE_UNUSABLE = ("down", "drain", "fail", "maint", "reboot", "unknown", "future", "inval")


class SlurmError(Exception):
    """A Slurm command refused or failed; ``transient`` when trying again may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One job slurmctld holds (``squeue``)."""

    job_id: str
    name: str
    state: str  # PENDING, RUNNING, COMPLETING, ...
    submit_time: int
    start_time: int | None  # for a pending job, Slurm's expected start: ignored
    batch_host: str
    nodes: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class AcctRecord:
    """One job's accounting record (``sacct -X``)."""

    job_id: str
    name: str
    state: str  # the first word: "CANCELLED by 0" -> CANCELLED
    exit_code: int | None  # negative: killed by that signal
    submit_time: int
    start_time: int | None
    end_time: int | None
    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class JobRow:
    """One job slurmctld holds, in any state, with its end once it ended (``squeue
    --states=all``)."""

    job_id: str
    name: str
    state: str  # PENDING, RUNNING, COMPLETING, then COMPLETED, FAILED, TIMEOUT, ...
    exit_code: int | None  # once ended; negative: killed by that signal
    submit_time: int
    start_time: int | None  # for a pending job, Slurm's expected start: ignored
    end_time: int | None  # for a live job, Slurm's expected end: ignored
    batch_host: str
    nodes: tuple[str, ...]
    reason: str

    def record(self) -> AcctRecord:
        """An ended job's row as its accounting record (the same facts, from slurmctld)."""
        return AcctRecord(
            self.job_id,
            self.name,
            self.state,
            self.exit_code,
            self.submit_time,
            self.start_time,
            self.end_time,
            self.nodes,
        )


@dataclass(frozen=True, slots=True)
class NodeRow:
    name: str
    cpus: int
    memory_mb: int
    gpus: int
    gpu_type: str  # the GRES type ("gpu:h100:8" -> "h100"); "" when untyped
    state: str

    @property
    def up(self) -> bool:
        state = self.state.lower()
        return not state.endswith("*") and not any(bad in state for bad in _NODE_UNUSABLE)


class SlurmCli:
    """The commands of one cluster: ``bin_dir`` holds them (``""``: on the PATH),
    ``slurm_conf`` names its configuration (``None``: the client's default)."""

    def __init__(self, *, bin_dir: str = "", slurm_conf: str | None = None) -> None:
        self._bin = Path(bin_dir) if bin_dir else None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
        env["SLURM_TIME_FORMAT"] = "%s"
        if slurm_conf:
            env["SLURM_CONF"] = slurm_conf
        elif "SLURM_CONF" in os.environ:
            env["SLURM_CONF"] = os.environ["SLURM_CONF"]
        self._env = env
        # sbatch's own environment, which the job inherits (``--export=ALL``): only what
        # finds the cluster; the batch script sets the rest (``batch.py``). Never
        # ``--export=NONE``: it makes slurmd load the user's login environment (``su -``)
        # before every launch, 0.3-0.4 s a job (docs/engines.md, "Performance")
        self._submit_env = {k: env[k] for k in ("PATH", "SLURM_CONF") if k in env}

    def _cmd(self, name: str) -> str:
        return str(self._bin / name) if self._bin else name

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        prefix: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run one Slurm command (in ``env``, else the service's environment without
        Slurm's variables); raises ``SlurmError`` when it fails."""
        full = [*prefix, self._cmd(argv[0]), *argv[1:]]
        try:
            proc = subprocess.run(
                full,
                input=stdin,
                capture_output=True,
                text=True,
                env=self._env if env is None else env,
                timeout=CALL_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SlurmError(
                f"{argv[0]} did not answer within {CALL_TIMEOUT_S:.0f} s", transient=True
            ) from None
        except OSError as e:
            raise SlurmError(f"cannot run {argv[0]}: {e.strerror}", transient=False) from e
        if proc.returncode != 0:
            message = _last_error(proc.stderr) or f"{argv[0]} exited with {proc.returncode}"
            raise SlurmError(message, transient=any(t in proc.stderr for t in TRANSIENT))
        return proc

    # -- submit and stop --------------------------------------------------------------

    def sbatch(self, options: Sequence[str], script: str, *, as_user: str | None = None) -> str:
        """Submit ``script`` (read from standard input) with ``options``; returns the job
        id. ``as_user``: run sbatch as that account (the site's submit user) instead of
        root's ``--uid``/``--gid`` in ``options``."""
        prefix = ("runuser", "-u", as_user, "--") if as_user else ()
        argv = ["sbatch", "--parsable", *options]
        proc = self.run(argv, stdin=script, prefix=prefix, env=self._submit_env)
        job_id = proc.stdout.strip().split(";")[0]  # "ID" or "ID;CLUSTER"
        if not job_id.isdigit():
            raise SlurmError(f"sbatch answered {proc.stdout.strip()!r}", transient=False)
        return job_id

    def scancel(self, job_id: str, *, signal: str | None = None) -> None:
        """Cancel the job, or with ``signal`` send it to the batch shell and every step
        (``--full``) without ending the job."""
        argv = ["scancel", "--quiet"]
        if signal is not None:
            argv += [f"--signal={signal}", "--full"]
        self.run([*argv, job_id])

    def srun(
        self,
        job_id: str,
        command: Sequence[str],
        env: Mapping[str, str],
        *,
        as_user: str | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``command`` as a step of job ``job_id``, beside its batch script
        (``--overlap``), as ``as_user``; its output and errors on one pipe."""
        prefix = ("runuser", "-u", as_user, "--") if as_user else ()
        argv = [*prefix, self._cmd("srun"), f"--jobid={job_id}", "--overlap", "--quiet"]
        return subprocess.Popen(
            [*argv, "--export=ALL", *command],
            env={**self._env, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    # -- what slurmctld and slurmdbd know ----------------------------------------------

    def queue(self, partition: str) -> dict[str, QueueRow] | None:
        """The jobs of ``partition`` slurmctld holds (pending, running, completing), by
        id; ``None`` when squeue did not answer."""
        fmt = "%i|%j|%T|%V|%S|%B|%N|%r"
        try:
            proc = self.run(["squeue", "--noheader", f"--partition={partition}", f"--format={fmt}"])
        except SlurmError as e:
            log.warning("squeue: %s", e)
            return None
        rows: dict[str, QueueRow] = {}
        for line in proc.stdout.splitlines():
            parts = line.split("|")
            if len(parts) != 8:
                continue
            job_id, name, state, submit, start, batch, nodes, reason = parts
            rows[job_id] = QueueRow(
                job_id=job_id,
                name=name,
                state=state,
                submit_time=_epoch(submit) or 0,
                start_time=_epoch(start),
                batch_host="" if batch in ("", "(null)") else batch,
                nodes=expand_hostlist(nodes) if nodes and nodes != "(null)" else (),
                reason=reason,
            )
        return rows

    def jobs(self, job_ids: Iterable[str], *, user: str = "") -> dict[str, JobRow] | None:
        """What slurmctld holds of these jobs, in every state (``--states=all``): a job
        that ended is kept with its end for ``MinJobAge`` (300 s by default), so how it
        ended is known without sacct. A job not listed has left slurmctld (sacct knows);
        ``None`` when squeue did not answer.

        For several ids squeue asks slurmctld for every job it holds, the site's and the
        ended ones too, and filters them itself; with ``user`` (the jobs' one account, by
        name: squeue reads a number as a name first) slurmctld sends that account's jobs
        only (``src/squeue/squeue.c``; an account squeue cannot resolve filters every job
        out, exit status 0)."""
        ids = sorted(set(job_ids), key=int)
        if not ids:
            return {}
        fields = ",".join(f"{name}:0|" for name in _JOB_FIELDS)
        argv = ["squeue", "--noheader", "--states=all", f"--jobs={','.join(ids)}"]
        if user:
            argv.append(f"--user={user}")
        try:
            proc = self.run([*argv, f"--Format={fields}"])
        except SlurmError as e:
            if len(ids) == 1 and "Invalid job id" in str(e):
                return {}  # slurmctld's answer for one id it no longer holds
            log.warning("squeue: %s", e)
            return None
        return parse_jobs(proc.stdout)

    def accounting(
        self, job_ids: Iterable[str], since: int, *, name: str = ""
    ) -> list[AcctRecord] | None:
        """sacct's allocation records of these jobs (or of the jobs called ``name``)
        submitted since ``since``, all of them (``--duplicates``: a wrapped job id has
        several; the caller matches by name and submit time); ``None`` when sacct did
        not answer."""
        ids = sorted(set(job_ids), key=int)
        if not ids and not name:
            return []
        fields = "JobIDRaw,JobName%200,State,ExitCode,Submit,Start,End,NodeList%2000"
        argv = ["sacct", "--noheader", "--parsable2", "--allocations", "--duplicates"]
        start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since))  # no epoch here
        argv += [f"--starttime={start}", "--endtime=now", f"--format={fields}"]
        argv += [f"--jobs={','.join(ids)}"] if ids else [f"--name={name}"]
        try:
            proc = self.run(argv)
        except SlurmError as e:
            log.warning("sacct: %s", e)
            return None
        out: list[AcctRecord] = []
        for line in proc.stdout.splitlines():
            parts = line.split("|")
            if len(parts) != 8:
                continue
            job_id, name, state, exit_code, submit, start, end, nodes = parts
            out.append(
                AcctRecord(
                    job_id=job_id,
                    name=name,
                    state=state.split()[0] if state else "",
                    exit_code=parse_exit_code(exit_code),
                    submit_time=_epoch(submit) or 0,
                    start_time=_epoch(start),
                    end_time=_epoch(end),
                    nodes=expand_hostlist(nodes) if nodes and nodes != "None assigned" else (),
                )
            )
        return out

    def devices(self, job_ids: Collection[str]) -> dict[str, dict[str, tuple[int, ...]]] | None:
        """The GPU indices these running jobs hold on each of their nodes, as Slurm numbers
        them on the node (``scontrol -d show job``: ``Nodes=n[1-2] ... GRES=gpu:2(IDX:0-1)``).

        Up to ``DEVICES_BY_ID`` jobs are asked for one by one; for more, scontrol lists
        every job slurmctld holds (the ended ones too, for ``MinJobAge``: thousands after
        a busy while, megabytes of text, packed under slurmctld's job lock) and only these
        jobs' lines are parsed (``parse_job_devices``). None: scontrol did not answer; a
        job it no longer knows is left out."""
        show = ["scontrol", "--details", "--oneliner", "show", "job"]
        listing = len(job_ids) > DEVICES_BY_ID
        calls = [show] if listing else [[*show, job_id] for job_id in job_ids]
        out: dict[str, dict[str, tuple[int, ...]]] = {}
        for argv in calls:
            try:
                proc = self.run(argv)
            except SlurmError as e:
                log.warning("scontrol show job: %s", e)
                if e.transient or listing:
                    return None
                continue  # that job has left slurmctld since squeue listed it
            out |= parse_job_devices(proc.stdout, job_ids)
        return out

    def nodes(self, partition: str) -> list[NodeRow] | None:
        """The nodes of ``partition``; ``None`` when sinfo did not answer."""
        try:
            proc = self.run(
                [
                    "sinfo",
                    "--noheader",
                    "--Node",
                    f"--partition={partition}",
                    "--format=%N|%c|%m|%G|%T",
                ]
            )
        except SlurmError as e:
            log.warning("sinfo: %s", e)
            return None
        rows: dict[str, NodeRow] = {}
        for line in proc.stdout.splitlines():
            parts = line.split("|")
            if len(parts) != 5:
                continue
            name, cpus, memory, gres, state = parts
            count, kind = _gpus_of(gres)
            rows[name] = NodeRow(name, int(cpus), int(memory), count, kind, state)
        return list(rows.values())


# -- parsing ---------------------------------------------------------------------------

#: ``squeue --Format`` fields of ``SlurmCli.jobs``, each asked with width 0 (neither
#: padded nor cut: ``Name:0|``) and ``|`` after it; the reason last (it may hold anything)
_JOB_FIELDS = (
    "JobID",
    "Name",
    "State",
    "exit_code",
    "SubmitTime",
    "StartTime",
    "EndTime",
    "BatchHost",
    "NodeList",
    "Reason",
)

#: at most this many jobs' devices are asked for by id, one call each (``devices``)
DEVICES_BY_ID = 8
_GRES_DETAIL = re.compile(r"\bNodes=(\S+) CPU_IDs=\S* Mem=\S* GRES=(\S*)")
_IDX = re.compile(r"gpu(?::[^:(]+)?:\d+\(IDX:([^)]*)\)")


def parse_jobs(text: str) -> dict[str, JobRow]:
    """``squeue --states=all --Format=`` (``SlurmCli.jobs``'s fields) -> {job id: row}."""
    rows: dict[str, JobRow] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|", len(_JOB_FIELDS) - 1)]
        if len(parts) != len(_JOB_FIELDS):
            continue
        job_id, name, state, status, submit, start, end, batch, nodes, reason = parts
        rows[job_id] = JobRow(
            job_id=job_id,
            name=name,
            state=state,
            exit_code=parse_wait_status(status),
            submit_time=_epoch(submit) or 0,
            start_time=_epoch(start),
            end_time=_epoch(end),
            batch_host="" if batch in ("", "(null)", "n/a") else batch,
            nodes=expand_hostlist(nodes) if nodes and nodes != "(null)" else (),
            reason=reason.removesuffix("|").strip(),
        )
    return rows


def parse_job_devices(
    text: str, job_ids: Collection[str] | None = None
) -> dict[str, dict[str, tuple[int, ...]]]:
    """``scontrol -d -o show job`` -> {job id: {node: (gpu index, ...)}}, for the jobs
    ``job_ids`` only (None: all): a line is matched only once its id is wanted."""
    out: dict[str, dict[str, tuple[int, ...]]] = {}
    for line in text.splitlines():
        head, space, _ = line.partition(" ")
        job_id = head.removeprefix("JobId=")
        if not space or job_id == head or not job_id.isdigit():
            continue
        if job_ids is not None and job_id not in job_ids:
            continue
        nodes: dict[str, tuple[int, ...]] = {}
        for hosts, gres in _GRES_DETAIL.findall(line):
            indices = tuple(i for idx in _IDX.findall(gres) for i in _expand_ints(idx))
            for host in expand_hostlist(hosts):
                nodes[host] = indices
        out[job_id] = nodes
    return out


def parse_exit_code(text: str) -> int | None:
    """sacct's ``RC:SIGNAL`` -> the exit code, or minus the signal that killed it."""
    rc, _, sig = text.partition(":")
    if not rc.isdigit():
        return None
    if sig.isdigit() and int(sig) > 0:
        return -int(sig)
    return int(rc)


def parse_wait_status(text: str) -> int | None:
    """squeue's ``exit_code`` (the batch script's wait status, as ``waitpid`` gives it)
    -> the exit code, or minus the signal that killed it."""
    if not text.isdigit():
        return None
    status = int(text)
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def expand_hostlist(text: str) -> tuple[str, ...]:
    """Slurm's host list ``n[1-3,5],gpu07`` -> ``(n1, n2, n3, n5, gpu07)`` (one bracket
    group per name, as Slurm writes them for names with one number)."""
    names: list[str] = []
    for part in re.findall(r"[^,\[]+(?:\[[^\]]*\])?[^,]*", text):
        m = re.fullmatch(r"([^\[]*)\[([^\]]*)\](.*)", part)
        if m is None:
            names.append(part)
            continue
        head, ranges, tail = m.groups()
        for item in ranges.split(","):
            lo, _, hi = item.partition("-")
            width = len(lo)
            for i in range(int(lo), int(hi or lo) + 1):
                names.append(f"{head}{i:0{width}d}{tail}")
    return tuple(names)


def _expand_ints(text: str) -> list[int]:
    out: list[int] = []
    for item in text.split(","):
        lo, _, hi = item.partition("-")
        if lo.isdigit():
            out += range(int(lo), int(hi or lo) + 1)
    return out


def _gpus_of(gres: str) -> tuple[int, str]:
    """``gpu:8``, ``gpu:h100:8(S:0-1)``, ``(null)`` -> (count, type)."""
    for item in gres.split(","):
        fields = re.sub(r"\(.*?\)", "", item).split(":")
        if fields[0] == "gpu" and fields[-1].isdigit():
            return int(fields[-1]), fields[1] if len(fields) == 3 else ""
    return 0, ""


def _epoch(text: str) -> int | None:
    return int(text) if text.isdigit() else None  # "Unknown", "None", "N/A"


def _last_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return ""
    return re.sub(r"^\w+: (error|fatal): ", "", lines[-1])


def environment_ok(env: Mapping[str, str]) -> str | None:
    """The first variable name a batch script cannot export, if any."""
    for name in env:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            return name
    return None
