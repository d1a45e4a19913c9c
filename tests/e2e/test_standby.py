"""``axc up --standby`` on the store of a running center: it serves reads and refuses
changes meanwhile; when the active center is killed (-9) it takes over within seconds,
adopts the job that was running (not stopped, not run again, charged once) and runs new
ones. Both stores (SQLite: the same data directory; PostgreSQL: the same schema)."""

from __future__ import annotations

import signal
import time
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from axcenter.model.money import gpu_seconds
from axcenter.store.db import _lock_key
from tests.conftest import PG_URL, _pg_dsn
from tests.e2e.conftest import Service, free_port, supervisors, wait_for

PROJECT = "hanbit-adas"  # from the demo data
#: from the active's death to the standby's readiness, at most (seconds)
TAKEOVER_S = 10.0


def test_standby_takes_over_without_stopping_the_running_job(
    service: Service, exchange: Path
) -> None:
    marks = exchange
    script = f'echo "$AXC_RUN_ID" >> {marks}/"$AXC_JOB_ID"; sleep 4'
    with service.api() as api:
        job = api.post(
            "/jobs", json={"project": PROJECT, "command": ["sh", "-c", script], "gpus_per_node": 1}
        ).json()
        wait_for(lambda: api.get(f"/jobs/{job['id']}").json()["state"] == "running" or None)

    standby = Service(
        data_dir=service.data_dir,
        env=service.env,
        gpus=service.gpus,
        port=free_port(),
        token=service.token,
        options=["--standby"],
    )
    standby.start()
    try:
        with standby.api() as api:
            assert api.get(f"/jobs/{job['id']}").json()["state"] == "running"  # reads
            refused = api.post("/jobs", json={"project": PROJECT, "command": ["true"]})
            assert refused.status_code == 503
            assert refused.headers["retry-after"]
            assert "standby" in refused.json()["detail"]
        ready = httpx.get(f"{standby.url}/readyz")
        assert ready.status_code == 503
        assert "standby" in ready.json()["checks"]["control"]

        service.stop(signal.SIGKILL)
        died = time.monotonic()
        wait_for(
            lambda: httpx.get(f"{standby.url}/readyz").status_code == 200 or None,
            timeout=TAKEOVER_S,
        )
        took = time.monotonic() - died
        assert took < TAKEOVER_S

        with standby.api() as api:
            ended = api.get(f"/jobs/{job['id']}/wait", params={"timeout": 30}).json()
            assert ended["state"] == "succeeded", ended
            assert (marks / job["id"]).read_text().split() == [f"{job['id']}.1"]  # once
            charges = api.get(f"/jobs/{job['id']}/charges").json()
            assert charges["held_won"] == 0
            ran = _ts(ended["ended_at"]) - _ts(ended["started_at"])
            assert ran >= 4
            charged = [c["gpu_seconds"] for c in charges["items"] if c["kind"] == "charge"]
            assert charged == [gpu_seconds(1, ran)]
            new = api.post("/jobs", json={"project": PROJECT, "command": ["true"]})
            assert new.status_code == 201, new.text
            done = api.get(f"/jobs/{new.json()['id']}/wait", params={"timeout": 30}).json()
            assert done["state"] == "succeeded"
    finally:
        standby.stop()


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def test_a_controller_that_lost_its_lock_to_another_stops_and_leaves_its_job(
    service: Service, db: tuple[str, str | None], exchange: Path
) -> None:
    """PostgreSQL ends the active center's lock session and another controller takes the
    lock and the next epoch before it can take them back: the center is fenced, exits
    with status 1 without stopping its running job, and the next controller adopts it."""
    _, schema = db
    if schema is None:
        pytest.skip("a flock cannot be lost while its process lives")
    marks = exchange
    script = f'echo "$AXC_RUN_ID" >> {marks}/"$AXC_JOB_ID"; sleep 5'
    with service.api() as api:
        job = api.post(
            "/jobs", json={"project": PROJECT, "command": ["sh", "-c", script], "gpus_per_node": 1}
        ).json()
        wait_for(lambda: api.get(f"/jobs/{job['id']}").json()["state"] == "running" or None)
    key = _lock_key(f"axcenter-controller:{schema}")
    other = psycopg.connect(_pg_dsn(PG_URL), autocommit=True)
    try:
        (holder,) = other.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND granted",
            (key & 0xFFFFFFFF,),
        ).fetchone() or (None,)
        assert holder is not None
        other.execute("SELECT pg_terminate_backend(%s)", (holder,))
        wait_for(
            lambda: other.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0] or None,
            timeout=5,
        )
        other.execute(f'UPDATE "{schema}".controller SET epoch = epoch + 1')
        assert service.proc is not None
        assert service.proc.wait(timeout=30) == 1  # fenced: it stopped by itself
        service.proc = None
        assert "another center took over" in service._log()
        assert supervisors(service.data_dir)  # the job runs on
    finally:
        other.close()  # the lock goes with the session
    service.start()
    with service.api() as api:
        ended = api.get(f"/jobs/{job['id']}/wait", params={"timeout": 30}).json()
        assert ended["state"] == "succeeded", ended
        assert (marks / job["id"]).read_text().split() == [f"{job['id']}.1"]
        assert api.get(f"/jobs/{job['id']}/charges").json()["held_won"] == 0
