"""The chaos harness: a real ``axc up`` under load from the real Python client, faults
injected at random moments, and the promises checked after (docs/reliability.md).

Faults, each injected and then healed:

- ``kill9``: ``kill -9`` of ``axc up``, restarted after a random pause;
- ``db_outage``: PostgreSQL unreachable (every connection cut and new ones refused, as
  a stopped or restarting server) for 0.3-5 s; on SQLite, the data disk (a tmpfs)
  filled to the last byte for as long;
- ``db_terminate``: PostgreSQL ends every session of the center (``pg_terminate_backend``,
  as an operator or a failover would);
- ``pg_restart``: the PostgreSQL server restarted (``pg_ctl restart -m fast``), and
  ``pg_stop``: stopped for 2-10 s, then started; the center's PostgreSQL is a server of
  the test's own (``tests/faults.py: PrivatePostgres``). On SQLite both fill the disk;
- ``second_controller``: another ``axc up`` on the same store, which must refuse.

``check`` then counts what broke a promise: acknowledged jobs not found, jobs run twice
or never, jobs stuck, charges not equal to run time x GPUs, holds left, balances that
differ from the ledger, idempotency keys that made two jobs. All zero is the pass.

The center accrues every second (``AXC_ACCRUAL_PERIOD=1s``, no lag), so most jobs are
charged while they run, through the faults: a job's accruals and final charge together
must still be its run time x GPUs (``accrued`` counts the jobs that had accruals).
"""

from __future__ import annotations

import contextlib
import random
import secrets
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import select

from axcenter.client import ApiError, Client
from axcenter.model.money import gpu_seconds
from axcenter.store import orm
from axcenter.store.db import Store
from tests.accounting import ledger_sums, running_sums
from tests.conftest import TEST_HOMES, TEST_IDENTITY_ENV
from tests.e2e.conftest import AXC, Service, free_port, stop_supervisors
from tests.faults import PrivatePostgres, TcpProxy, fill, private_postgres, tmpfs

__all__ = ["FAULTS", "Chaos", "Counts", "chaos"]

PROJECT = "hanbit-adas"  # from the demo data
#: every job writes its run id here, so a run twice is seen whatever the store says
SCRIPT = 'echo "$AXC_RUN_ID" >> {marks}/"$AXC_JOB_ID"; sleep 0.$((2 + $$ % 5)); exit $(($$ % 3))'
#: how long all acknowledged jobs may take to end once the faults stop (seconds)
SETTLE_S = 120.0


@dataclass
class Counts:
    """What one round broke (all zero: every promise held) and what it did."""

    acknowledged: int = 0
    unacknowledged: int = 0  # submissions whose client gave up (allowed to exist or not)
    retries: int = 0  # requests the clients sent again (a 503, no connection): faults bit
    faults: int = 0
    not_found: int = 0
    ran_twice: int = 0
    never_ran: int = 0
    stuck: int = 0
    wrong_charge: int = 0
    holds_left: int = 0
    balances_off: int = 0
    duplicate_keys: int = 0
    accrued: int = 0  # jobs charged as they ran (accruals), a measure, not a failure

    @property
    def broken(self) -> dict[str, int]:
        names = (
            "not_found",
            "ran_twice",
            "never_ran",
            "stuck",
            "wrong_charge",
            "holds_left",
            "balances_off",
            "duplicate_keys",
        )
        return {n: getattr(self, n) for n in names if getattr(self, n)}

    def row(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Chaos:
    """A center under load on one store, and the means to hurt it."""

    service: Service
    url: str
    schema: str | None
    marks: Path
    proxy: TcpProxy | None = None
    postgres: PrivatePostgres | None = None
    disk: Path | None = None
    app_name: str = ""
    acked: dict[str, str] = field(default_factory=dict)  # idempotency key -> job id
    failed: list[str] = field(default_factory=list)
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- load -------------------------------------------------------------------------

    def load(
        self, stop: threading.Event, clients: int = 4, each: int = 12
    ) -> list[threading.Thread]:
        """``clients`` threads, each submitting up to ``each`` jobs until ``stop``."""

        def submit() -> None:
            client = Client(
                self.service.url, self.service.token, retry_s=60, on_retry=self._retried
            )
            script = SCRIPT.format(marks=self.marks)
            for _ in range(each):
                if stop.is_set():
                    return
                key = f"chaos-{uuid.uuid4().hex}"
                try:
                    job = client.submit_job(
                        project=PROJECT,
                        command=["sh", "-c", script],
                        gpus_per_node=1,
                        idempotency_key=key,
                    )
                except ApiError:
                    with self._lock:
                        self.failed.append(key)
                    continue
                with self._lock:
                    self.acked[key] = job["id"]
                stop.wait(random.uniform(0.05, 0.4))

        threads = [threading.Thread(target=submit, daemon=True) for _ in range(clients)]
        for t in threads:
            t.start()
        return threads

    def _retried(self, _message: str) -> None:
        with self._lock:
            self.retries += 1

    # -- faults -----------------------------------------------------------------------

    def kill9(self) -> None:
        self.service.stop(signal.SIGKILL)
        time.sleep(random.uniform(0.0, 1.0))  # runs end meanwhile, with nobody listening
        self.service.start()

    def db_outage(self) -> None:
        pause = random.uniform(0.3, 5.0)
        if self.proxy is not None:
            self.proxy.cut()
            time.sleep(pause)
            self.proxy.restore()
            return
        assert self.disk is not None
        filler = fill(self.disk)
        time.sleep(pause)
        filler.unlink()

    def db_terminate(self) -> None:
        if self.postgres is None:  # SQLite has no sessions to end: the disk fills instead
            self.db_outage()
            return
        with psycopg.connect(self.postgres.dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (self.app_name,),
            )

    def pg_restart(self) -> None:
        if self.postgres is None:  # SQLite has no server: the disk fills instead
            self.db_outage()
            return
        self.postgres.restart()

    def pg_stop(self) -> None:
        if self.postgres is None:
            self.db_outage()
            return
        self.postgres.stop()
        time.sleep(random.uniform(2.0, 10.0))
        self.postgres.start()

    def second_controller(self) -> None:
        done = subprocess.run(
            [AXC, "up", "--data-dir", str(self.service.data_dir), "--port", str(free_port())],
            env=self.service.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        assert "another axcenter" in done.stderr, done.stderr

    # -- the promises -----------------------------------------------------------------

    def check(self) -> Counts:
        counts = Counts(
            acknowledged=len(self.acked), unacknowledged=len(self.failed), retries=self.retries
        )
        deadline = time.monotonic() + SETTLE_S
        jobs: dict[str, dict[str, Any]] = {}
        with self.service.api() as api:
            for job_id in self.acked.values():
                while True:
                    r = api.get(f"/jobs/{job_id}/wait", params={"timeout": 5})
                    if r.status_code == 404:
                        counts.not_found += 1
                        break
                    job = r.json()
                    if job.get("ended_at") is not None or time.monotonic() > deadline:
                        jobs[job_id] = job
                        break
            for job_id, job in jobs.items():
                if job.get("ended_at") is None:
                    counts.stuck += 1
                    continue
                runs = _lines(self.marks / job_id)
                if len(runs) > 1:
                    counts.ran_twice += 1
                ran_once = (
                    job["state"] in ("succeeded", "failed") and job.get("exit_code") is not None
                )
                if ran_once and len(runs) != 1:
                    counts.never_ran += 1
                charges = api.get(f"/jobs/{job_id}/charges").json()
                if charges["held_won"]:
                    counts.holds_left += 1
                charged = [
                    c["gpu_seconds"] for c in charges["items"] if c["kind"] in ("charge", "accrual")
                ]
                if any(c["kind"] == "accrual" for c in charges["items"]):
                    counts.accrued += 1
                if job.get("started_at"):
                    ran = _ts(job["ended_at"]) - _ts(job["started_at"])
                    if sum(charged) != gpu_seconds(1, ran):
                        counts.wrong_charge += 1
                elif charged and sum(charged):
                    counts.wrong_charge += 1
        store = Store(self.url, self.schema)
        try:
            with store.read() as s:
                if ledger_sums(s) != running_sums(s):
                    counts.balances_off += 1
                made = dict(
                    s.execute(
                        select(orm.Job.idempotency_key, orm.Job.id).where(
                            orm.Job.idempotency_key.in_(list(self.acked))
                        )
                    )
                    .tuples()
                    .all()
                )
        finally:
            store.dispose()
        counts.duplicate_keys = sum(1 for k, j in self.acked.items() if made.get(k) != j)
        return counts


FAULTS: dict[str, Callable[[Chaos], None]] = {
    "kill9": Chaos.kill9,
    "db_outage": Chaos.db_outage,
    "db_terminate": Chaos.db_terminate,
    "pg_restart": Chaos.pg_restart,
    "pg_stop": Chaos.pg_stop,
    "second_controller": Chaos.second_controller,
}


@contextlib.contextmanager
def chaos(root: Path, store: str, env: dict[str, str]) -> Iterator[Chaos]:
    """A center on ``store`` (``sqlite``: its data on a 64 MiB tmpfs; ``postgresql``: a
    schema on a server of its own, reached through a proxy that can be cut), started,
    and torn down."""
    # where the jobs (each its user's unix account) may write and the check may read
    marks = TEST_HOMES / f"chaos-{root.name}-{secrets.token_hex(3)}"
    marks.mkdir(parents=True)
    marks.chmod(0o1777)
    env = {k: v for k, v in env.items() if not k.startswith("AXC_") or k in TEST_IDENTITY_ENV}
    env |= {"AXC_KILL_GRACE_S": "2", "XDG_CONFIG_HOME": str(root / "cfg")}
    env |= {"AXC_ACCRUAL_PERIOD": "1s", "AXC_ACCRUAL_LAG_S": "0"}
    with contextlib.ExitStack() as stack:
        if store == "sqlite":
            disk = stack.enter_context(tmpfs(root / "disk", "64m"))
            url, schema = f"sqlite:///{disk / 'axcenter.db'}", None
            ctx = Chaos(_service(disk / "data", env, url), url, None, marks, disk=disk)
        else:
            postgres = stack.enter_context(private_postgres())
            schema = f"axc_chaos_{secrets.token_hex(5)}"
            with psycopg.connect(postgres.dsn, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            proxy = TcpProxy(("127.0.0.1", postgres.port))
            stack.callback(proxy.close)
            app_name = f"axc-chaos-{secrets.token_hex(4)}"
            url = postgres.url()
            proxied = f"{proxy.url(url)}?application_name={app_name}"
            env |= {"AXC_DATABASE_SCHEMA": schema}
            service = _service(root / "data", env, proxied)
            ctx = Chaos(
                service, url, schema, marks, proxy=proxy, postgres=postgres, app_name=app_name
            )
        service = ctx.service
        service.start()
        try:
            yield ctx
        finally:
            if service.proc is not None:
                service.stop()
            stop_supervisors(service.data_dir)


def run_round(ctx: Chaos, faults: list[str], rng: random.Random) -> Counts:
    """Load, each of ``faults`` at a random moment while it runs, then the checks."""
    stop = threading.Event()
    threads = ctx.load(stop)
    for name in faults:
        time.sleep(rng.uniform(0.5, 2.0))
        FAULTS[name](ctx)
    for t in threads:
        t.join(timeout=120)
    stop.set()
    counts = ctx.check()
    counts.faults = len(faults)
    return counts


def _service(data_dir: Path, env: dict[str, str], url: str) -> Service:
    return Service(data_dir=data_dir, env={**env, "AXC_DATABASE_URL": url}, gpus="A100:2,H100:2")


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()
