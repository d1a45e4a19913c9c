"""A hostile tenant against a running center (docs/security.md), on both stores.

Company B's member, with nothing but job submissions, tries every attack the security
review found against company A's running job and against the center itself; every
attempt must fail, and A's job must finish normally. The jobs are real: they run under
the local engine, as their users' own unix accounts, in control groups of their own.
"""

from __future__ import annotations

import os
import pwd
import secrets
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import make_url, select

from axcenter.api.app import create_app
from axcenter.model.money import rate
from axcenter.service.center import Center
from axcenter.service.identities import ensure_waiting_identities
from axcenter.settings import Settings
from axcenter.store import orm
from tests.accounting import allocation, price, program
from tests.api import conftest as api
from tests.api.conftest import Account, Tenants
from tests.conftest import home_of

tenants = api.tenants  # the fixture: an operator, Acme's alice, Bolt's bob

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching identities needs root")

#: a canary in the service's own environment: no job may ever see it
CANARY = "AXC_TEST_SERVICE_SECRET"
LOG_LIMIT = 64 * 1024


@pytest.fixture
def center(
    db: tuple[str, str | None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Center]:
    monkeypatch.setenv(CANARY, "the-service-database-password")
    url, schema = db
    settings = Settings(
        stop_jobs_on_shutdown=True,
        data_dir=tmp_path / "data",
        database_url=url,
        database_schema=schema,
        local_gpus="A100:2,H100:4",
        kill_grace_s=1.0,
        sched_min_runtime_s=0.0,
        log_max_bytes=LOG_LIMIT,
        log_rotate_bytes=LOG_LIMIT // 4,
        log_keep=2,
    )
    c = Center(settings)
    c.start()
    yield c
    c.stop()


@pytest.fixture
def client(center: Center) -> Iterator[TestClient]:
    with TestClient(create_app(center)) as c:
        yield c


def submit(client: TestClient, who: Account, **body: Any) -> dict[str, Any]:
    body.setdefault("project", who.project)
    body.setdefault("gpus_per_node", 0)
    r = client.post("/api/v1/jobs", json=body, headers=who.headers)
    assert r.status_code == 201, r.text
    job: dict[str, Any] = r.json()
    return job


def refused(client: TestClient, who: Account, **body: Any) -> str:
    body.setdefault("project", who.project)
    r = client.post("/api/v1/jobs", json=body, headers=who.headers)
    assert r.status_code == 422, r.text
    detail: str = r.json()["detail"]
    return detail


def wait(client: TestClient, who: Account, job_id: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/jobs/{job_id}/wait", params={"timeout": 60}, headers=who.headers)
    assert r.status_code == 200, r.text
    job: dict[str, Any] = r.json()
    assert job["state"] not in ("pending", "admitted", "running"), job
    return job


def log_of(client: TestClient, who: Account, job_id: str) -> str:
    r = client.get(f"/api/v1/jobs/{job_id}/log", headers=who.headers)
    assert r.status_code == 200, r.text
    return r.text


def until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def started_record(center: Center, job_id: str) -> tuple[int, int]:
    """(supervisor pid, job pid) of the job's first run, from the engine's record."""
    path = center.settings.engine_dir / "runs" / f"{job_id}.1" / "started"

    def read() -> tuple[int, int] | None:
        try:
            sup, job, _ = path.read_text().split()
        except (OSError, ValueError):
            return None
        return int(sup), int(job)

    found: tuple[int, int] = until(read, f"job {job_id} to start")
    return found


ATTACKS = r"""
try() {
  name=$1; shift
  if "$@" >/dev/null 2>&1; then echo "OPEN $name"; else echo "blocked $name"; fi
}
try read-victim-log cat "$VICTIM_LOG"
try list-data-dir ls "$DATA"
try read-database cat "$DATA/axcenter.db"
try write-database sh -c 'echo x >> "$DATA/axcenter.db"'
try see-victim-process test -e "/proc/$VICTIM_PID"
try read-victim-environ cat "/proc/$VICTIM_PID/environ"
try read-victim-cmdline cat "/proc/$VICTIM_PID/cmdline"
try kill-victim kill -9 "$VICTIM_PID"
try kill-victim-supervisor kill -9 "$VICTIM_SUPERVISOR"
try read-service-environ cat "/proc/$SERVICE_PID/environ"
try list-victim-home ls "$VICTIM_HOME"
try write-victim-home sh -c 'echo owned > "$VICTIM_HOME/owned"'
try read-run-records ls "$RUN_DIR"
try leave-cgroup sh -c 'echo $$ > /sys/fs/cgroup/pids/cgroup.procs'
try raise-memory-limit sh -c 'echo -1 > "/sys/fs/cgroup/memory/$CGROUP/memory.limit_in_bytes"'
try become-root su -c true root
if env | grep -q "^$CANARY="; then echo "OPEN service-environment"
else echo "blocked service-environment"; fi
echo "visible processes: $(ls /proc | grep -c '^[0-9]')"
"""

NAMES = [
    line.split()[1]
    for line in ATTACKS.splitlines()
    if line.startswith("try ") and not line.startswith("try()")
] + ["service-environment"]


def fund(center: Center, project_name: str, won_per_gpu_hour: int) -> None:
    """A price for H100s and a grant for the project."""
    now = datetime.now(UTC)
    with center.store.write() as s:
        prj = s.scalars(select(orm.Project).where(orm.Project.name == project_name)).one()
        prog = program(s, f"program-{project_name}", 10**9)
        price(s, "H100", won_per_gpu_hour, now - timedelta(days=1))
        allocation(
            s,
            prj,
            prog,
            now - timedelta(days=1),
            now + timedelta(days=30),
            {"H100": (10**6, 10**8)},
        )
    center.control.policy_changed()  # written behind the services' back: tell the loop
    until(lambda: prj.id in center.control.state.budgets, "the grant to reach the scheduler")


def test_a_hostile_tenant_reaches_nothing_of_another_company_or_of_the_center(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    alice, bob = tenants.alice, tenants.bob
    fund(center, "acme-vision", won_per_gpu_hour=36_000)
    victim = submit(
        client,
        alice,
        command=["sh", "-c", "echo acme-secret-output; sleep 4; echo acme-done"],
        env={"ACME_API_KEY": "acme-secret-key"},
        gpus_per_node=1,
        gpu_types=["H100"],
        time_limit_s=60,
    )
    supervisor, victim_pid = started_record(center, victim["id"])
    victim_home = pwd.getpwnam(f"{os.environ['AXC_UNIX_PREFIX']}alice").pw_dir
    attack = submit(
        client,
        bob,
        command=["sh", "-c", ATTACKS],
        env={
            "VICTIM_LOG": str(center.settings.logs_dir / f"{victim['id']}.log"),
            "DATA": str(center.settings.data_dir),
            "VICTIM_PID": str(victim_pid),
            "VICTIM_SUPERVISOR": str(supervisor),
            "SERVICE_PID": str(os.getpid()),
            "VICTIM_HOME": victim_home,
            "RUN_DIR": str(center.settings.engine_dir),
            "CGROUP": "axcenter",
            "CANARY": CANARY,
        },
    )
    done = wait(client, bob, attack["id"])
    assert done["state"] == "succeeded", done
    report = log_of(client, bob, attack["id"])
    outcomes = {line.split()[1]: line.split()[0] for line in report.splitlines() if " " in line}
    assert {name: outcomes.get(name) for name in NAMES} == {name: "blocked" for name in NAMES}, (
        report
    )
    # its own /proc shows it its own processes only: the shells, ls and grep
    visible = int(report.split("visible processes: ")[1].split()[0])
    assert 1 <= visible <= 4, report

    finished = wait(client, alice, victim["id"])
    assert finished["state"] == "succeeded", finished
    assert log_of(client, alice, victim["id"]) == "acme-secret-output\nacme-done\n"
    assert not os.path.exists(os.path.join(victim_home, "owned"))
    # ...and charged for exactly the time it ran, at its price
    ran = datetime.fromisoformat(finished["ended_at"]) - datetime.fromisoformat(
        finished["started_at"]
    )
    charges = client.get(f"/api/v1/jobs/{victim['id']}/charges", headers=alice.headers).json()
    found = [c for c in charges["items"] if c["kind"] == "charge"]
    assert len(found) == 1, (charges, finished)
    [charge] = found
    assert abs(charge["gpu_seconds"] - ran.total_seconds()) <= 1, (charge, ran, charges)
    assert charge["amount_won"] == rate(charge["gpu_seconds"], 36_000) > 0


def test_jobs_run_as_their_users_never_as_root(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    alice, bob = tenants.alice, tenants.bob
    ids = {}
    for who in (alice, bob):
        job = submit(client, who, command=["sh", "-c", "id -u; id -g; id -G; pwd"])
        assert wait(client, who, job["id"])["state"] == "succeeded"
        ids[who.user] = log_of(client, who, job["id"]).split("\n")
    prefix = os.environ["AXC_UNIX_PREFIX"]
    for name, (uid, gid, groups, cwd, _) in ids.items():
        account = pwd.getpwnam(f"{prefix}{name}")
        assert int(uid) == account.pw_uid != 0
        assert int(gid) != 0 and int(gid) != account.pw_gid  # the project's group
        assert set(groups.split()) == {gid, str(account.pw_gid)}
        assert cwd == account.pw_dir  # its home, by default
        assert account.pw_uid in center.settings.uids
    assert ids["alice"][0] != ids["bob"][0]
    assert ids["alice"][1] != ids["bob"][1]
    assert os.stat(center.settings.data_dir).st_mode & 0o777 == 0o700
    if center.store.is_sqlite:
        database = make_url(center.store.url).database
        assert database is not None
        assert os.stat(database).st_mode & 0o777 == 0o600
    for path in center.settings.logs_dir.iterdir():
        st = os.stat(path)
        assert st.st_mode & 0o777 == 0o600 and st.st_uid != 0, (path, oct(st.st_mode))


def test_a_job_gets_the_memory_it_asked_for_and_fails_as_out_of_memory_past_it(
    client: TestClient, tenants: Tenants
) -> None:
    bob = tenants.bob
    hog = submit(
        client,
        bob,
        command=["sh", "-c", 'x=$(head -c 300000000 /dev/zero | tr "\\0" x); echo survived'],
        memory_mb_per_node=64,
    )
    done = wait(client, bob, hog["id"])
    assert done["state"] == "failed", done
    assert done["reason"].startswith("out of memory: it used more than the 64 MiB"), done
    assert "survived" not in log_of(client, bob, hog["id"])
    fits = submit(
        client,
        bob,
        command=["sh", "-c", 'x=$(head -c 20000000 /dev/zero | tr "\\0" x); echo fits'],
        memory_mb_per_node=256,
    )
    assert wait(client, bob, fits["id"])["state"] == "succeeded"


def test_nothing_outlives_its_job_and_a_fork_bomb_stays_in_its_limit(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    bob = tenants.bob
    job = submit(
        client,
        bob,
        command=[
            "sh",
            "-c",
            "(setsid sh -c 'sleep 300' &); (nohup sleep 300 >/dev/null 2>&1 &); "
            "i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); done 2>/dev/null; "
            "echo forked",
        ],
    )
    done = wait(client, bob, job["id"])
    assert done["state"] == "succeeded", (done["reason"], log_of(client, bob, job["id"]))
    uid = pwd.getpwnam(f"{os.environ['AXC_UNIX_PREFIX']}bob").pw_uid
    left = subprocess.run(
        ["pgrep", "-u", str(uid)], capture_output=True, text=True, check=False
    ).stdout
    assert left == "", f"processes of bob's account outlived its job: {left}"
    cgroups = list(Path("/sys/fs/cgroup/pids").glob(f"axcenter/*/{job['id']}.*"))
    assert cgroups == [], cgroups


def test_a_job_past_its_log_limit_fails_saying_so(
    center: Center, client: TestClient, tenants: Tenants
) -> None:
    """Past the limit the job fails; on the way its log rotated (every quarter of the
    limit, two rotated files kept), each file its user's alone, and the log read from its
    start says what was rotated away."""
    bob = tenants.bob
    job = submit(client, bob, command=["sh", "-c", "yes axcenter; echo never"])
    done = wait(client, bob, job["id"])
    assert done["state"] == "failed", done
    assert done["reason"].startswith("log limit: its output passed 65536 bytes"), done
    log = log_of(client, bob, job["id"])
    assert log.startswith("[axcenter] "), log[:200]
    assert "bytes of earlier output were rotated away" in log.splitlines()[0]
    assert len(log.encode()) < LOG_LIMIT
    assert "reached the log limit" in log
    files = sorted(center.settings.logs_dir.glob(f"{job['id']}.log*"))
    assert len(files) == 3, files  # the live file and two rotated ones
    uid = pwd.getpwnam(f"{os.environ['AXC_UNIX_PREFIX']}bob").pw_uid
    for path in files:
        st = path.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (uid, 0o600), path


def test_working_directories_only_under_the_users_own_roots(
    client: TestClient, tenants: Tenants
) -> None:
    alice, bob = tenants.alice, tenants.bob
    first = submit(client, alice, command=["true"])  # makes alice's account and home
    wait(client, alice, first["id"])
    prefix = os.environ["AXC_UNIX_PREFIX"]
    alice_home = pwd.getpwnam(f"{prefix}alice").pw_dir
    submit(client, bob, command=["true"])
    bob_home = pwd.getpwnam(f"{prefix}bob").pw_dir
    assert "outside the directories your jobs may use" in refused(
        client, bob, command=["true"], workdir=alice_home
    )
    assert "outside the directories" in refused(
        client, bob, command=["true"], workdir=f"{bob_home}/../{prefix}alice"
    )
    shortcut = f"{bob_home}/shortcut-{secrets.token_hex(4)}"
    os.symlink(alice_home, shortcut)  # as bob could have made it
    assert "outside the directories" in refused(client, bob, command=["true"], workdir=shortcut)
    assert "create it first" in refused(
        client, bob, command=["true"], workdir=f"{bob_home}/missing"
    )
    assert "cannot be overridden" in refused(
        client, bob, command=["true"], env={"CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    )
    work = f"{bob_home}/work-{secrets.token_hex(4)}"
    os.mkdir(work)
    account = pwd.getpwnam(f"{prefix}bob")
    os.chown(work, account.pw_uid, account.pw_gid)  # as bob would make it
    inside = submit(client, bob, command=["sh", "-c", "pwd; touch made"], workdir=work)
    assert wait(client, bob, inside["id"])["state"] == "succeeded"
    assert log_of(client, bob, inside["id"]).strip() == work
    assert os.stat(f"{work}/made").st_uid == account.pw_uid


def test_output_files_are_written_as_the_jobs_user(client: TestClient, tenants: Tenants) -> None:
    """--output/--error patterns: opened by the job's user in its working directory, so a
    path into another user's home, or a link planted to a file of the center, gains
    nothing: the job fails to start, naming the file."""
    alice, bob = tenants.alice, tenants.bob
    tag = secrets.token_hex(4)
    job = submit(
        client,
        bob,
        command=["sh", "-c", "echo to-out; echo to-err >&2"],
        output_path=f"out-{tag}-%j.txt",
        error_path=f"err-{tag}-%x.txt",
        name="named",
    )
    assert wait(client, bob, job["id"])["state"] == "succeeded"
    home = home_of("bob")
    out, err = home / f"out-{tag}-{job['id']}.txt", home / f"err-{tag}-named.txt"
    assert (out.read_text(), err.read_text()) == ("to-out\n", "to-err\n")
    bob_uid = pwd.getpwnam(f"{os.environ['AXC_UNIX_PREFIX']}bob").pw_uid
    assert os.stat(out).st_uid == os.stat(err).st_uid == bob_uid
    assert "output goes to" in log_of(client, bob, job["id"])

    first = submit(client, alice, command=["true"])  # alice's home exists from now on
    wait(client, alice, first["id"])
    into_alice = submit(
        client, bob, command=["true"], output_path=f"../{os.environ['AXC_UNIX_PREFIX']}alice/x"
    )
    failed = wait(client, bob, into_alice["id"])
    assert failed["state"] == "failed", failed
    assert failed["reason"].startswith("launch failed: cannot open the output file"), failed
    precious = Path(f"/tmp/axc-precious-{tag}")  # a file of root's, as the center's are
    precious.write_text("precious")
    try:
        planted = home / f"planted-{tag}"
        planted.symlink_to(precious)  # as bob could
        attack = submit(client, bob, command=["true"], output_path=planted.name)
        failed = wait(client, bob, attack["id"])
        assert failed["state"] == "failed" and "Permission denied" in failed["reason"], failed
        assert precious.read_text() == "precious"
    finally:
        precious.unlink()


def test_jobs_may_open_only_their_devices(
    client: TestClient, tenants: Tenants, exchange: Path
) -> None:
    """The basics (null, zero, urandom, tty…) and nothing else, whatever the file's mode
    says: two device nodes anyone may open by their mode, one allowed (null's numbers),
    one not (fuse's); on this host both the v1 devices controller and the v2 BPF program
    filter, and each must allow."""
    bob = tenants.bob
    os.mknod(exchange / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(exchange / "fuse", 0o666 | stat.S_IFCHR, os.makedev(10, 229))
    os.chmod(exchange / "null", 0o666)
    os.chmod(exchange / "fuse", 0o666)
    probe = (
        f"for d in {exchange}/null {exchange}/fuse /dev/zero /dev/urandom; do "
        "if true <> $d 2>/dev/null; then echo open $d; else echo denied $d; fi; done"
    )
    job = submit(client, bob, command=["sh", "-c", probe])
    done = wait(client, bob, job["id"])
    assert done["state"] == "succeeded", (done["reason"], log_of(client, bob, job["id"]))
    lines = log_of(client, bob, job["id"]).splitlines()
    seen = dict(line.split()[::-1] for line in lines if line.startswith(("open ", "denied ")))
    assert seen == {
        f"{exchange}/null": "open",
        f"{exchange}/fuse": "denied",
        "/dev/zero": "open",
        "/dev/urandom": "open",
    }


def test_jobs_waiting_from_before_identities_get_theirs_at_start(
    center: Center, tenants: Tenants
) -> None:
    """A job written before this version (no unix account for its user yet) is not failed
    at launch: the center makes its user's identity when it starts."""
    with center.store.write() as s:
        user = s.scalars(select(orm.User).where(orm.User.name == "acme-admin")).one()
        prj = s.scalars(select(orm.Project).where(orm.Project.name == "acme-vision")).one()
        s.add(orm.ProjectMember(project_id=prj.id, user_id=user.id))
        s.add(
            orm.Job(
                id="job_fromolderversion", project_id=prj.id, user_id=user.id, command=["true"],
                workdir="/", env={}, gpus_per_node=0, nodes=1, cpus_per_node=1,
                memory_mb_per_node=64, time_limit_s=60, priority=0, gpu_types=[],
                state="pending", submitted_at=datetime.now(UTC),
            )
        )  # fmt: skip
    assert ensure_waiting_identities(center) == 1
    with center.store.read() as s:
        account = s.get(orm.UnixAccount, user.id)
    assert account is not None
    assert pwd.getpwnam(account.name).pw_uid == account.uid != 0
    assert ensure_waiting_identities(center) == 0


def test_the_center_says_when_its_database_trusts_local_logins(center: Center) -> None:
    """This machine's PostgreSQL trusts 127.0.0.1 (as CI's does): a job could log in to
    it, so the center must say so at start; SQLite has no logins."""
    assert center.store.trusts_other_roles() is (not center.store.is_sqlite)


def test_a_job_gets_its_accounts_environment_not_the_services(
    client: TestClient, tenants: Tenants
) -> None:
    """HOME, USER and LOGNAME are the job's account's, and PATH the system's: the
    service's own PATH may name directories only root can read (a job found `python` in
    root's pyenv and could not run it)."""
    bob = tenants.bob
    job = submit(client, bob, command=["sh", "-c", 'echo "$HOME|$USER|$LOGNAME|$PATH"'])
    assert wait(client, bob, job["id"])["state"] == "succeeded"
    home, user, logname, path = log_of(client, bob, job["id"]).strip().split("|")
    account = pwd.getpwnam(f"{os.environ['AXC_UNIX_PREFIX']}bob")
    assert (home, user, logname) == (account.pw_dir, account.pw_name, account.pw_name)
    assert path == "/usr/local/bin:/usr/bin:/bin"
    mine = submit(client, bob, command=["sh", "-c", 'echo "$PATH"'], env={"PATH": "/opt/x:/bin"})
    assert wait(client, bob, mine["id"])["state"] == "succeeded"
    assert log_of(client, bob, mine["id"]).strip() == "/opt/x:/bin"  # the user's own wins
