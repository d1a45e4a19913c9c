"""The Slurm engine against a real Slurm (scripts/slurm: 4 slurmd x 8 fake GPUs, slurmdbd),
its jobs as a real unix account: what the contract suite cannot say for every engine.
A gang across nodes, stops with grace, a node set down, a job Slurm keeps pending,
slurmctld restarted under load, the service killed with SIGKILL while its jobs run and
end, and each run's times equal to what Slurm's own ``sacct`` says. Slurm's answers are
parsed by pure functions, tested first without a cluster."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pytest

from axcenter.executors.base import (
    EngineEvent,
    LaunchError,
    NodesChanged,
    Outcome,
    RunAs,
    RunEnded,
    RunSpec,
    RunStarted,
    StepSpec,
    StopReason,
)
from axcenter.executors.pools import ConfigError, load_config
from axcenter.executors.slurm import SlurmEngine, SlurmOptions
from axcenter.executors.slurm.batch import read_devices_file
from axcenter.executors.slurm.cli import (
    DEVICES_BY_ID,
    AcctRecord,
    NodeRow,
    SlurmCli,
    expand_hostlist,
    parse_exit_code,
    parse_job_devices,
    parse_jobs,
    parse_wait_status,
)
from axcenter.executors.slurm.engine import outcome_of_record
from tests.slurm.cluster import PARTITION, Cluster

# -- Slurm's answers, parsed -------------------------------------------------------------


def test_host_lists_expand_as_slurm_writes_them() -> None:
    assert expand_hostlist("n[1-3,5],gpu07") == ("n1", "n2", "n3", "n5", "gpu07")
    assert expand_hostlist("node[08-10]") == ("node08", "node09", "node10")
    assert expand_hostlist("n2") == ("n2",)


def test_exit_codes_and_signals() -> None:
    assert parse_exit_code("3:0") == 3
    assert parse_exit_code("0:15") == -15  # killed by SIGTERM
    assert parse_exit_code("0:0") == 0
    assert parse_exit_code("") is None


def test_squeue_gives_the_batch_scripts_wait_status() -> None:
    assert parse_wait_status("0") == 0
    assert parse_wait_status("768") == 3  # exit 3
    assert parse_wait_status("9") == -9  # killed by SIGKILL
    assert parse_wait_status("15") == -15
    assert parse_wait_status("") is None


def test_squeue_tells_how_a_job_it_still_holds_ended() -> None:
    text = (
        "41|axc-job_a.1|COMPLETED|768|1796644657|1796644658|1796644660|n1|n1|None|\n"
        "42|axc-job_b.1|PENDING|0|1796644657|N/A|N/A|n/a||ReqNodeNotAvail,_May|be|\n"
        "43|axc-job_c.2|RUNNING|0|1796644650|1796644651|1796648251|n2|n[2-3]|None|\n"
        "garbage\n"
    )
    rows = parse_jobs(text)
    assert sorted(rows) == ["41", "42", "43"]
    ended = rows["41"].record()
    assert (ended.state, ended.exit_code, ended.start_time, ended.end_time) == (
        "COMPLETED",
        3,
        1796644658,
        1796644660,
    )
    assert (rows["42"].batch_host, rows["42"].nodes, rows["42"].reason) == (
        "",
        (),
        "ReqNodeNotAvail,_May|be",
    )
    assert rows["43"].nodes == ("n2", "n3") and rows["43"].batch_host == "n2"


def test_the_devices_a_batch_script_wrote_are_believed_only_in_their_shape(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run"
    for text, gpus, found in [
        ("1,3\n", 2, "1,3"),
        ("07\n", 1, "7"),
        ("\n", 1, ""),  # Slurm set none
        ("1,3\n", 3, ""),  # not the job's count
        ("1,1\n", 2, ""),
        ("0-3\n", 4, ""),
        ("x" * 5000, 1, ""),
    ]:
        path.write_text(text)
        assert read_devices_file(path, gpus) == found, text
    link = tmp_path / "link"
    link.symlink_to(path)
    path.write_text("2\n")
    assert read_devices_file(link, 1) == ""  # never followed
    assert read_devices_file(tmp_path / "absent", 1) == ""


def test_device_indices_per_node_from_scontrol() -> None:
    text = (
        "JobId=7 JobName=axc-j.1 JobState=RUNNING NodeList=n[2-3] BatchHost=n2 "
        "JOB_GRES=gpu:4   Nodes=n[2-3] CPU_IDs=31 Mem=0 GRES=gpu:2(IDX:1,3) MinCPUsNode=1\n"
        "JobId=8 JobName=x JobState=RUNNING   Nodes=n1 CPU_IDs=0 Mem=0 "
        "GRES=gpu:h100:3(IDX:0-2) Features=(null)\n"
    )
    assert parse_job_devices(text) == {
        "7": {"n2": (1, 3), "n3": (1, 3)},
        "8": {"n1": (0, 1, 2)},
    }
    # only the jobs asked about (slurmctld lists every job it holds, ended ones too);
    # an id is matched whole
    assert parse_job_devices(text, {"8"}) == {"8": {"n1": (0, 1, 2)}}
    assert parse_job_devices(text, {"78", "0"}) == {}
    # a line cut short is nobody's: not job 12's for "JobId=123"
    cut = "JobId=123\nJobIdx=12 Nodes=n1 CPU_IDs=0 Mem=0 GRES=gpu:1(IDX:0)\n"
    assert parse_job_devices(cut) == {}


@pytest.mark.parametrize(
    ("state", "up"),
    [
        ("idle", True),
        ("mixed", True),
        ("allocated", True),
        ("down*", False),
        ("idle*", False),  # not responding
        ("drained", False),
        ("draining", False),
        ("down", False),
    ],
)
def test_which_node_states_take_new_work(state: str, up: bool) -> None:
    assert NodeRow("n1", 32, 1000, 8, "", state).up is up


@pytest.mark.parametrize(
    ("state", "exit_code", "stop", "outcome", "message"),
    [
        ("COMPLETED", 0, "", Outcome.SUCCEEDED, "exit code 0"),
        ("FAILED", 3, "", Outcome.FAILED, "exit code 3"),
        ("COMPLETED", 0, "preempt", Outcome.PREEMPTED, "preempted (exit code 0)"),  # trapped
        ("FAILED", -15, "cancel", Outcome.CANCELLED, "cancelled (killed by signal SIGTERM)"),
        ("CANCELLED", -9, "shutdown", Outcome.LOST, "lost: stopped at shutdown"),
        ("FAILED", -15, "time_limit", Outcome.TIMED_OUT, "killed after time limit 60s"),
        ("TIMEOUT", -15, "", Outcome.TIMED_OUT, "killed after time limit 60s"),  # Slurm's
        ("NODE_FAIL", 0, "", Outcome.LOST, "lost: node n3 failed (Slurm NODE_FAIL)"),
        ("PREEMPTED", -15, "", Outcome.LOST, "lost: preempted by Slurm"),
        ("CANCELLED", -15, "", Outcome.CANCELLED, "cancelled in Slurm (killed by signal"),
        ("OUT_OF_MEMORY", 0, "", Outcome.FAILED, "out of memory"),
        ("CANCELLED", 0, "pending", Outcome.LOST, "requeued: Slurm kept it pending 301 s"),
    ],
)
def test_how_a_run_ended_comes_from_axcenters_cause_then_slurms_state(
    state: str, exit_code: int, stop: str, outcome: Outcome, message: str
) -> None:
    record = AcctRecord("7", "axc-j.1", state, exit_code, 100, 101, 160, ("n3",))
    reason = "Slurm kept it pending 301 s (Resources)"
    found = outcome_of_record(record, stop, reason, 60)
    assert found[0] is outcome
    assert found[1].startswith(message), found[1]


def test_a_slurm_pool_is_configured_by_its_partition(tmp_path: Path) -> None:
    path = tmp_path / "center.yaml"
    path.write_text("pools:\n  - name: hpc\n    engine: slurm\n    slurm:\n      partition: gpu\n")
    [pool] = load_config(path).pools
    assert pool.slurm is not None and pool.slurm.partition == "gpu"
    path.write_text("pools:\n  - name: hpc\n    engine: slurm\n")
    with pytest.raises(ConfigError, match="engine slurm needs slurm:"):
        load_config(path)
    path.write_text(
        "pools:\n  - name: hpc\n    engine: slurm\n    gpus: H100:8\n"
        "    slurm:\n      partition: gpu\n"
    )
    with pytest.raises(ConfigError, match="nodes come from Slurm"):
        load_config(path)


# -- against a real cluster ----------------------------------------------------------------


@dataclass
class Harness:
    cluster: Cluster
    account: RunAs
    shared: Path
    state: Path
    options: SlurmOptions
    events: queue.Queue[EngineEvent] = field(default_factory=queue.Queue)
    backlog: list[EngineEvent] = field(default_factory=list)
    engines: list[SlurmEngine] = field(default_factory=list)

    def engine(self) -> SlurmEngine:
        engine = SlurmEngine(
            self.options, self.events.put, state_dir=self.state, logs_dir=self.shared / "logs"
        )
        self.engines.append(engine)
        return engine

    def run(
        self, job_id: str, script: str, nodes: tuple[str, ...] = ("n1",), gpus: int = 1,
        limit_s: int = 120,
    ) -> RunSpec:  # fmt: skip
        return RunSpec(
            job_id=job_id,
            attempt=1,
            command=("sh", "-c", script),
            workdir=str(self.shared / "work" / job_id),
            env={},
            node_devices=tuple((n, tuple(range(gpus))) for n in nodes),
            time_limit_s=limit_s,
            run_as=self.account,
        )

    def next(self, kind: type, run_id: str | None = None, timeout: float = 30) -> EngineEvent:
        def wanted(event: EngineEvent) -> bool:
            return isinstance(event, kind) and run_id in (None, getattr(event, "run_id", None))

        for event in self.backlog:
            if wanted(event):
                self.backlog.remove(event)
                return event
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            if wanted(event):
                return event
            self.backlog.append(event)
        raise AssertionError(f"no {kind.__name__} for {run_id} within {timeout} s")

    def log(self, job_id: str) -> str:
        return (self.shared / "logs" / f"{job_id}.log").read_text()

    def sacct(self, slurm_id: str, run_id: str, *, ended: bool = True) -> dict[str, str]:
        """Slurm's record of the run: by job id and name, the latest of them (job ids
        start again at each cold start of this cluster; slurmdbd keeps the old ones);
        with ``ended``, once slurmdbd has its end (the engine reads ends from slurmctld,
        which tells them first)."""
        fields = "JobIDRaw,JobName,State,ExitCode,Submit,Start,End,User,Account"
        deadline = time.monotonic() + 30  # slurmdbd has it as "allocation", root's, at first
        while True:
            out = self.cluster.run(
                "env", "SLURM_TIME_FORMAT=%s", "sacct", "-X", "-n", "-P", "-D", "-j", slurm_id,
                f"--format={fields}",
            ).stdout  # fmt: skip
            rows = [dict(zip(fields.split(","), x.split("|"), strict=True)) for x in out.split()]
            mine = [r for r in rows if r["JobName"] == f"axc-{run_id}"]
            # slurmdbd may hold the end state a moment before the end time ("Unknown")
            running = {r["State"] for r in mine} & {"PENDING", "RUNNING"}
            latest = max(mine, key=lambda r: int(r["Submit"])) if mine else None
            if latest and not (ended and (running or not latest["End"].isdigit())):
                return latest
            assert time.monotonic() < deadline, f"no record of {run_id} (job {slurm_id}): {rows}"
            time.sleep(0.2)


@pytest.fixture
def h(
    slurm_cluster: Cluster, slurm_account: RunAs, slurm_shared: Path, tmp_path: Path
) -> Iterator[Harness]:
    options = SlurmOptions(
        partition=PARTITION,
        slurm_conf=slurm_cluster.slurm_conf,
        poll_s=0.2,
        grace_s=1.0,
        pending_limit_s=60,
    )
    harness = Harness(slurm_cluster, slurm_account, slurm_shared, tmp_path / "engine", options)
    yield harness
    for engine in harness.engines:
        engine.close(stop_runs=True, grace_s=0.5)
    for node in ("n1", "n2", "n3", "n4"):
        slurm_cluster.run("scontrol", "update", f"NodeName={node}", "State=RESUME", check=False)


def test_a_gang_is_one_slurm_job_with_the_same_environment_on_every_node(h: Harness) -> None:
    engine = h.engine()
    # long enough for a poll to see it run (the devices are read from a running job)
    script = (
        'sleep 1; echo "$SLURMD_NODENAME $(id -u) $CUDA_VISIBLE_DEVICES $AXC_RUN_ID $AXC_NODELIST"'
    )
    run = h.run("job_gang", script, nodes=("n2", "n3"), gpus=2)
    ref = engine.submit(run)
    started = h.next(RunStarted, run.run_id)
    ended = h.next(RunEnded, run.run_id)
    assert isinstance(started, RunStarted) and isinstance(ended, RunEnded)
    assert ended.outcome is Outcome.SUCCEEDED, ended.message
    lines = sorted(h.log("job_gang").split("\n")[:-1])
    assert len(lines) == 2, lines
    devices = started.devices  # the indices Slurm gave on the batch host (scontrol -d)
    assert len(devices.split(",")) == 2
    for node, line in zip(("n2", "n3"), lines, strict=True):
        assert line == f"{node} {h.account.uid} {devices} {run.run_id} n2,n3"
    record = h.sacct(ref, run.run_id)
    assert record["User"] == h.account.user  # never root
    assert (record["State"], record["ExitCode"]) == ("COMPLETED", "0:0")
    assert int(started.started_at) == int(record["Start"])
    assert int(ended.ended_at) == int(record["End"])


def test_the_job_gets_its_own_environment_never_the_services(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sbatch runs in a scrubbed environment (its job inherits it, ``--export=ALL``): the
    service's own variables (a database password, a token) never reach a tenant's job,
    whose environment is what the batch script sets: its user's identity, its variables,
    axcenter's."""
    monkeypatch.setenv("AXC_DATABASE_URL", "postgresql://svc:hunter2@db/axc")
    monkeypatch.setenv("SERVICE_ONLY_SECRET", "hunter2")
    engine = h.engine()
    run = replace(h.run("job_env", "env"), env={"MINE": "yes"})
    engine.submit(run)
    ended = h.next(RunEnded, run.run_id, timeout=60)
    assert isinstance(ended, RunEnded) and ended.outcome is Outcome.SUCCEEDED, ended
    env = dict(line.split("=", 1) for line in h.log("job_env").splitlines() if "=" in line)
    assert "hunter2" not in h.log("job_env")
    assert env["MINE"] == "yes" and env["AXC_RUN_ID"] == run.run_id
    assert env["USER"] == env["LOGNAME"] == h.account.user
    assert "SLURM_GET_USER_ENV" not in env  # no login shell before each launch


def test_a_preempted_job_gets_its_grace_then_sigkill(h: Harness) -> None:
    engine = h.engine()
    polite = h.run("job_polite", "trap 'echo got TERM; exit 0' TERM; while :; do sleep 0.1; done")
    stubborn = h.run("job_stubborn", "trap 'echo ignored TERM' TERM; while :; do sleep 0.1; done")
    for run in (polite, stubborn):
        engine.submit(run)
        h.next(RunStarted, run.run_id)
    stopped = time.time()
    engine.stop(polite.run_id, StopReason.PREEMPT, 30.0)
    engine.stop(stubborn.run_id, StopReason.PREEMPT, 2.0)
    first = h.next(RunEnded, polite.run_id)
    second = h.next(RunEnded, stubborn.run_id)
    assert isinstance(first, RunEnded) and isinstance(second, RunEnded)
    assert first.outcome is second.outcome is Outcome.PREEMPTED  # exit 0 after TERM too
    assert first.ended_at - stopped < 10  # it left at TERM, long before its grace
    assert second.ended_at - stopped >= 2 - 1  # Slurm's whole seconds
    assert "got TERM" in h.log("job_polite")
    assert "ignored TERM" in h.log("job_stubborn")


def test_a_node_set_down_ends_its_jobs_as_lost_and_leaves_the_inventory(h: Harness) -> None:
    engine = h.engine()
    run = h.run("job_down", "sleep 120", nodes=("n3",))
    engine.submit(run)
    h.next(RunStarted, run.run_id)
    h.cluster.node_state("n3", "DOWN")

    def n3_up() -> bool | None:
        changed = h.next(NodesChanged)
        assert isinstance(changed, NodesChanged)
        return {n.name: n.up for n in changed.nodes}["n3"]

    assert n3_up() is False
    ended = h.next(RunEnded, run.run_id)
    assert isinstance(ended, RunEnded)
    assert ended.outcome is Outcome.LOST  # axcenter requeues it
    assert "n3" in ended.message and "NODE_FAIL" in ended.message
    h.cluster.node_state("n3", "RESUME")
    assert n3_up() is True


def test_a_job_slurm_keeps_pending_is_cancelled_and_returned_with_the_reason(
    h: Harness,
) -> None:
    h.options = replace(h.options, pending_limit_s=4.0)
    engine = h.engine()
    # someone else's job holds n4's GPUs: Slurm will not start axcenter's there
    other = h.cluster.run(
        "sbatch", "--parsable", f"--uid={h.account.uid}", f"--gid={h.account.gid}",
        "-p", PARTITION, "-w", "n4", "--gres=gpu:8", "-o", "/dev/null", "--wrap", "sleep 60",
    ).stdout.strip()  # fmt: skip
    try:
        run = h.run("job_blocked", "true", nodes=("n4",), gpus=8)
        engine.submit(run)
        ended = h.next(RunEnded, run.run_id)
        assert isinstance(ended, RunEnded)
        assert (ended.outcome, ended.started_at) == (Outcome.LOST, None)  # never ran: free
        assert ended.message.startswith("requeued: Slurm kept it pending")
        assert "Resources" in ended.message
    finally:
        h.cluster.run("scancel", other)


def test_slurmctld_restarted_under_load_loses_and_doubles_nothing(h: Harness) -> None:
    engine = h.engine()
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
    runs = [h.run(f"job_l{i}", f"sleep {1 + i % 3}", nodes=(f"n{1 + i % 4}",)) for i in range(16)]

    def submit(batch: list[RunSpec]) -> None:
        for run in batch:
            engine.submit(run)

    submit(runs[:8])
    h.cluster.stop_ctld()
    late = threading.Thread(target=submit, args=(runs[8:],))
    late.start()  # these sbatch calls meet no slurmctld: they wait for it
    time.sleep(3)  # jobs end meanwhile; nobody can tell until slurmctld is back
    h.cluster.start_ctld()
    late.join(timeout=120)
    ends = [h.next(RunEnded, timeout=60) for _ in runs]
    assert sorted(e.run_id for e in ends) == sorted(r.run_id for r in runs)  # type: ignore[union-attr]
    assert all(e.outcome is Outcome.SUCCEEDED for e in ends), [e.message for e in ends]  # type: ignore[union-attr]
    time.sleep(1)
    assert not [e for e in h.events.queue if isinstance(e, RunEnded)], "an end reported twice"
    names = h.cluster.run(
        "sacct", "-X", "-n", "-P", "--format=JobName", f"--starttime={since}",
        "--name", ",".join(f"axc-{r.run_id}" for r in runs),
    ).stdout.split()  # fmt: skip
    assert sorted(names) == sorted(f"axc-{r.run_id}" for r in runs), "a job submitted twice"


#: the service, as a process of its own: submits the runs it reads, then waits to be killed
SERVICE = """
import json, sys, time
from pathlib import Path
from axcenter.executors.base import RunAs, RunSpec
from axcenter.executors.slurm import SlurmEngine, SlurmOptions
from axcenter.executors.slurm.engine import outcome_of_record
spec = json.loads(sys.argv[1])
engine = SlurmEngine(SlurmOptions(**spec["options"]), lambda event: None,
                     state_dir=Path(spec["state"]), logs_dir=Path(spec["logs"]))
for run in spec["runs"]:
    run["run_as"] = RunAs(**run["run_as"])
    run["node_devices"] = tuple((n, tuple(d)) for n, d in run["node_devices"])
    run["command"] = tuple(run["command"])
    engine.submit(RunSpec(**run))
print("submitted", flush=True)
time.sleep(600)
"""


def test_the_service_killed_while_jobs_run_and_end_adopts_them_with_slurms_times(
    h: Harness,
) -> None:
    short = h.run("job_short", "sleep 1; exit 3", nodes=("n1",))
    long = h.run("job_long", "sleep 60", nodes=("n2",))
    spec = {
        "options": asdict(h.options),
        "state": str(h.state),
        "logs": str(h.shared / "logs"),
        "runs": [asdict(run) for run in (short, long)],
    }
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    service = subprocess.Popen(
        [sys.executable, "-c", SERVICE, json.dumps(spec, default=str)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert service.stdout is not None and service.stdout.readline() == "submitted\n"
    time.sleep(4)  # the short job ends while the service lives on, then it dies
    service.send_signal(signal.SIGKILL)
    service.wait()
    engine = h.engine()
    found = engine.recover()
    assert list(found.running) == [long.run_id]  # it still runs, under Slurm
    [ended] = found.ended
    assert (ended.run_id, ended.outcome, ended.exit_code) == (short.run_id, Outcome.FAILED, 3)
    record = h.sacct(ended.ref, ended.run_id)
    assert ended.started_at is not None
    assert (int(ended.started_at), int(ended.ended_at)) == (
        int(record["Start"]),
        int(record["End"]),
    )
    running = found.running[long.run_id]
    assert int(running.started_at) == int(h.sacct(running.ref, long.run_id, ended=False)["Start"])
    engine.acknowledge([short.run_id])
    assert engine.recover().ended == []
    engine.stop(long.run_id, StopReason.CANCEL, 1.0)
    cancelled = h.next(RunEnded, long.run_id)
    assert cancelled.outcome is Outcome.CANCELLED  # type: ignore[union-attr]


def test_sites_with_per_user_grants_get_sbatch_run_as_the_jobs_own_account(h: Harness) -> None:
    h.options = replace(h.options, submit="user")  # no root --uid: Slurm sees the user submit
    engine = h.engine()
    run = h.run("job_own", "id -un")
    ref = engine.submit(run)
    ended = h.next(RunEnded, run.run_id)
    assert ended.outcome is Outcome.SUCCEEDED, ended.message  # type: ignore[union-attr]
    assert h.log("job_own") == f"{h.account.user}\n"
    assert h.sacct(ref, run.run_id)["User"] == h.account.user


def test_a_run_recorded_before_sbatch_answered_is_found_by_its_name(h: Harness) -> None:
    """The service died between sbatch and writing down its answer: the next one finds
    the job by name (in the queue or the accounting); one that never got through is
    forgotten, and the control loop requeues it."""
    h.state.mkdir(parents=True)
    for run_id in ("job_mid.1", "job_lost.1"):
        record = {
            "run_id": run_id, "job_id": run_id[:-2], "time_limit_s": 60,
            "submitted_at": time.time() - 1, "batch_host": "n1", "slurm_id": "",
            "submit_time": 0, "started_at": None, "devices": "", "stop": "", "kill_at": 0.0,
            "reason": "",
        }  # fmt: skip
        (h.state / f"{run_id}.json").write_text(json.dumps(record))
    slurm_id = h.cluster.run(
        "sbatch", "--parsable", f"--uid={h.account.uid}", f"--gid={h.account.gid}",
        "-p", PARTITION, "-w", "n1", "-J", "axc-job_mid.1", "-o", "/dev/null", "--wrap", "sleep 30",
    ).stdout.strip()  # fmt: skip
    engine = h.engine()
    found = engine.recover()
    assert {*found.running, *found.queued} == {"job_mid.1"}
    assert not (h.state / "job_lost.1.json").exists()
    started = found.running.get("job_mid.1")
    assert started is None or started.ref == slurm_id


def test_each_project_is_charged_to_its_own_slurm_account(h: Harness) -> None:
    """HPC grants are Slurm accounts: a project's jobs go to its own, never a shared one."""
    grant = "axc-test-grant"
    h.cluster.run("sacctmgr", "-i", "add", "account", grant, check=False)
    h.cluster.run("sacctmgr", "-i", "add", "user", h.account.user, f"account={grant}", check=False)
    try:
        h.options = replace(h.options, accounts={"proj-a": grant})
        engine = h.engine()
        run = replace(h.run("job_grant", "true"), project="proj-a")
        ref = engine.submit(run)
        assert h.next(RunEnded, run.run_id).outcome is Outcome.SUCCEEDED  # type: ignore[union-attr]
        assert h.sacct(ref, run.run_id)["Account"] == grant
        with pytest.raises(LaunchError, match="project proj-b has no Slurm account"):
            engine.submit(replace(h.run("job_nogrant", "true"), project="proj-b"))
    finally:
        h.cluster.run("sacctmgr", "-i", "delete", "user", h.account.user, check=False)
        h.cluster.run("sacctmgr", "-i", "delete", "account", grant, check=False)


def test_a_job_that_ends_before_any_poll_sees_it_run_keeps_its_devices(h: Harness) -> None:
    """slurmctld keeps no device indices once a job ended: its batch script wrote them."""
    h.options = replace(h.options, poll_s=3600)  # the only poll is the one after sbatch
    blocker = h.cluster.run(
        "sbatch", "--parsable", f"--uid={h.account.uid}", f"--gid={h.account.gid}",
        "-p", PARTITION, "-w", "n4", "--gres=gpu:8", "-o", "/dev/null", "--wrap", "sleep 3",
    ).stdout.strip()  # fmt: skip
    first = h.engine()
    run = h.run("job_quick", 'echo "$SLURM_JOB_GPUS"', nodes=("n4",), gpus=2)
    ref = first.submit(run)  # pending behind the blocker when that poll runs
    first.close()
    h.engines.remove(first)  # closed: it watches nothing more
    assert not [e for e in h.events.queue if isinstance(e, RunStarted)]
    deadline = time.monotonic() + 60
    while (
        "COMPLETED" not in h.cluster.run("squeue", "-h", "-t", "all", "-j", ref, "-o", "%T").stdout
    ):
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.2)
    found = h.engine().recover()
    [ended] = found.ended
    assert ended.outcome is Outcome.SUCCEEDED, ended.message
    started = h.next(RunStarted, run.run_id)
    assert isinstance(started, RunStarted)
    told = h.log("job_quick").strip()
    assert len(told.split(",")) == 2 and started.devices == told
    record = h.sacct(ref, run.run_id)
    assert (int(started.started_at), int(ended.ended_at)) == (
        int(record["Start"]),
        int(record["End"]),
    )
    h.cluster.run("scancel", blocker, check=False)


def test_device_indices_are_read_by_id_or_from_the_listing_alike(h: Harness) -> None:
    """A few started jobs are asked for by id, more from scontrol's whole listing (which
    slurmctld's ended jobs swell): both read the same indices; a job slurmctld no longer
    knows is left out, not taken for scontrol failing."""
    ids = [
        h.cluster.run(
            "sbatch", "--parsable", f"--uid={h.account.uid}", f"--gid={h.account.gid}",
            "-p", PARTITION, "-w", node, "--gres=gpu:1", "-o", "/dev/null", "--wrap", "sleep 60",
        ).stdout.strip()
        for node in ["n1"] * 8 + ["n2"] * (DEVICES_BY_ID - 8 + 2)
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while set(ids) - set(h.cluster.run("squeue", "-h", "-t", "R", "-o", "%i").stdout.split()):
            assert time.monotonic() < deadline, "the jobs did not start"
            time.sleep(0.2)
        cli = SlurmCli(slurm_conf=h.options.slurm_conf)
        listed = cli.devices(set(ids))  # more than DEVICES_BY_ID: the listing
        assert listed is not None and sorted(listed) == sorted(ids)
        one_by_one: dict[str, dict[str, tuple[int, ...]]] = {}
        for job_id in ids:
            one = cli.devices({job_id})
            assert one is not None
            one_by_one |= one
        assert one_by_one == listed
        on_n1 = sorted(i for job in listed.values() for i in job.get("n1", ()))
        assert on_n1 == list(range(8))  # each of n1's eight GPUs, once
        assert cli.devices({"999999", ids[0]}) == {ids[0]: listed[ids[0]]}
    finally:
        h.cluster.run("scancel", *ids, check=False)


def test_the_poll_asks_slurmctld_for_its_accounts_jobs_only(h: Harness) -> None:
    """squeue with several ids makes slurmctld pack every job it holds; with ``--user``
    only that account's. The engine polls each account its runs run as (up to
    SQUEUE_BY_ACCOUNT), and the answer is the same jobs."""
    engine = h.engine()
    runs = [h.run(f"job_acct{i}", "sleep 30", nodes=(f"n{i + 1}",)) for i in range(2)]
    refs = [engine.submit(run) for run in runs]
    for run in runs:
        h.next(RunStarted, run.run_id)
    cli = SlurmCli(slurm_conf=h.options.slurm_conf)
    mine = cli.jobs(refs, user=h.account.user)
    assert mine is not None and sorted(mine) == sorted(refs)
    assert cli.jobs(refs, user="root") == {}  # the account filters: root runs none of them
    assert cli.jobs(refs) == mine
    calls: list[str] = []
    real = engine._cli.jobs

    def jobs(ids: object, *, user: str = "") -> object:
        if threading.current_thread() is threading.main_thread():  # not the poll thread's
            calls.append(user)
        return real(ids, user=user)  # type: ignore[arg-type]

    engine._cli.jobs = jobs  # type: ignore[method-assign]
    engine._poll()
    assert calls == [h.account.user]  # one account: one squeue, by account
    with engine._lock:
        for run in engine._runs.values():
            # the name service cannot resolve it (an outage, the account removed):
            # squeue filters every job out and says nothing
            run.account = "axc-no-such-account"
    calls.clear()
    engine._poll()
    assert calls == ["axc-no-such-account", ""]  # asked again among all jobs
    with engine._lock:
        for run in engine._runs.values():
            run.account = ""  # adopted runs: the account is not known
    calls.clear()
    engine._poll()
    assert calls == [""]  # then every job, as before
    with pytest.raises(AssertionError):  # and all this while, no run was taken for ended
        h.next(RunEnded, timeout=0.5)
    for ref in refs:
        h.cluster.run("scancel", ref, check=False)


def _bin_dir(tmp_path: Path, **replaced: str) -> Path:
    """Slurm's commands, some of them replaced by a script (``name=script``; ``REAL`` in
    it: the real command's path)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sbatch", "squeue", "scancel", "scontrol", "sinfo", "sacct"):
        found = shutil.which(name)
        assert found is not None
        if name in replaced:
            (bin_dir / name).write_text(replaced[name].replace("REAL", found))
            (bin_dir / name).chmod(0o755)
        else:
            (bin_dir / name).symlink_to(found)
    return bin_dir


def test_ends_are_known_from_slurmctld_while_slurmdbd_does_not_answer(
    h: Harness, tmp_path: Path
) -> None:
    """slurmctld holds an ended job, with its end and exit, for MinJobAge: sacct (and
    slurmdbd behind it) is asked only about jobs that left it."""
    failing = "#!/bin/sh\necho 'sacct: error: slurmdbd: no answer' >&2\nexit 1\n"
    h.options = replace(h.options, bin_dir=str(_bin_dir(tmp_path, sacct=failing)))
    engine = h.engine()
    failed = h.run("job_three", "exit 3", nodes=("n1",))
    killed = h.run("job_killed", "kill -9 $$", nodes=("n2",))
    refs = {run.run_id: engine.submit(run) for run in (failed, killed)}
    for run, code in ((failed, 3), (killed, -9)):
        ended = h.next(RunEnded, run.run_id)
        assert isinstance(ended, RunEnded)
        assert (ended.outcome, ended.exit_code) == (Outcome.FAILED, code), ended.message
        record = h.sacct(refs[run.run_id], run.run_id)  # Slurm's own, once slurmdbd has it
        assert parse_exit_code(record["ExitCode"]) == code
        assert ended.started_at is not None
        assert (int(ended.started_at), int(ended.ended_at)) == (
            int(record["Start"]),
            int(record["End"]),
        )


def test_the_end_of_a_job_that_left_slurmctld_comes_from_sacct(h: Harness, tmp_path: Path) -> None:
    """After MinJobAge slurmctld forgets an ended job (here: squeue is asked for live
    jobs only, as it would answer then): its end is read from the accounting."""
    live_only = "#!/bin/sh\nfor a; do shift; case $a in --states=all) a=--states=PD,R,CG,S;; esac\n"
    live_only += 'set -- "$@" "$a"; done\nexec REAL "$@"\n'
    h.options = replace(h.options, bin_dir=str(_bin_dir(tmp_path, squeue=live_only)))
    engine = h.engine()
    run = h.run("job_four", "sleep 1; exit 4")
    ref = engine.submit(run)
    ended = h.next(RunEnded, run.run_id)
    assert isinstance(ended, RunEnded)
    assert (ended.outcome, ended.exit_code) == (Outcome.FAILED, 4), ended.message
    record = h.sacct(ref, run.run_id)
    assert ended.started_at is not None
    assert (int(ended.started_at), int(ended.ended_at)) == (
        int(record["Start"]),
        int(record["End"]),
    )


def test_a_shipped_batch_script_runs_from_its_text_not_its_path(h: Harness) -> None:
    """``axc submit script.sh`` ships the script (issue 20): Slurm runs the text it was
    given, as the job's user, on descriptor 9; the path it was submitted from need not
    exist on any node, and a line like the heredoc's end inside it changes nothing."""
    engine = h.engine()
    text = '#!/bin/sh\necho "script $0 $1 $(id -u)"\necho AXC_SCRIPT_END\n'
    run = replace(
        h.run("job_script", ""),
        command=("/nonexistent/axc/job.sh", "first"),
        script=text,
    )
    engine.submit(run)
    ended = h.next(RunEnded, run.run_id, timeout=60)
    assert isinstance(ended, RunEnded) and ended.outcome is Outcome.SUCCEEDED, ended
    log = h.log("job_script")
    assert f"script /dev/fd/9 first {h.account.uid}\nAXC_SCRIPT_END\n" in log, log


def test_a_step_runs_in_the_jobs_allocation_as_its_user(h: Harness) -> None:
    """``axc srun`` on Slurm: ``srun --jobid --overlap`` as the job's account, with the
    job's devices; its output comes back to the caller and its exit code is its own."""
    engine = h.engine()
    run = h.run("job_steps", "sleep 30", gpus=2)
    engine.submit(run)
    h.next(RunStarted, run.run_id, timeout=60)
    out: list[bytes] = []
    step = StepSpec(
        run, 0, ("sh", "-c", 'echo "step $(id -u) $CUDA_VISIBLE_DEVICES $AXC_STEP_ID"; exit 3')
    )
    ended = engine.run_step(step, out.append, threading.Event())
    text = b"".join(out).decode()
    # srun may add its own "srun: error: n1: task 0: Exited with exit code 3" after the
    # step's line (a race inside srun, even with --quiet): look for the line, not the end.
    assert re.search(rf"^step {h.account.uid} \S+ 0$", text, re.MULTILINE), text
    assert ended.exit_code == 3 and ended.outcome is Outcome.FAILED, ended
    engine.stop(run.run_id, StopReason.CANCEL, 0.5)
    h.next(RunEnded, run.run_id, timeout=60)
    with pytest.raises(LaunchError, match="not running"):
        engine.run_step(StepSpec(run, 1, ("true",)), out.append, threading.Event())


def test_a_staged_run_starts_after_the_run_it_follows_and_waits_unbounded_until_then(
    h: Harness,
) -> None:
    """``RunSpec.after``: Slurm holds the run (``--dependency=afterany``) while the run it
    follows holds all of n3's GPUs, longer than the pending limit, and starts it after
    that one ends, on the same GPUs."""
    h.options = replace(h.options, pending_limit_s=2.0)
    engine = h.engine()
    first = h.run("job_first", "sleep 5", nodes=("n3",), gpus=8)
    engine.submit(first)
    started = h.next(RunStarted, first.run_id)
    staged = replace(h.run("job_staged", "true", nodes=("n3",), gpus=8), after=(first.run_id,))
    slurm_id = engine.submit(staged)
    assert h.cluster.run("squeue", "-h", "-j", slurm_id, "-o", "%r").stdout.strip() == "Dependency"
    before = h.next(RunEnded, first.run_id)
    after = h.next(RunEnded, staged.run_id)
    assert isinstance(started, RunStarted) and isinstance(before, RunEnded)
    assert isinstance(after, RunEnded)
    assert after.outcome is Outcome.SUCCEEDED, after.message  # not cancelled as pending
    assert after.started_at is not None and after.started_at >= before.ended_at
    record = h.sacct(slurm_id, staged.run_id)
    assert record["State"] == "COMPLETED"
