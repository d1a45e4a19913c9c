"""The store goes away (PostgreSQL cut off, SQLite's disk full) and comes back: the API
answers 503 with Retry-After and a JSON error meanwhile, ``/readyz`` says why, the control
loop heals by itself, a retried submission is taken once, and no end is lost."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from axcenter.service.center import Center
from axcenter.settings import Settings
from axcenter.store import orm
from tests.api.conftest import Tenants
from tests.faults import TcpProxy, fill, tmpfs

PG_PORT = 5432


@dataclass
class Fault:
    """Turns the store's fault on and off."""

    on: Callable[[], None]
    off: Callable[[], None]


@pytest.fixture
def fault(db: tuple[str, str | None], tmp_path: Path) -> Iterator[tuple[Settings, Fault]]:
    url, schema = db
    base = {
        "stop_jobs_on_shutdown": True,
        "local_gpus": "A100:2",
        "kill_grace_s": 2.0,
        "sched_min_runtime_s": 0.0,
        "safety_cycle_s": 1.0,
    }
    if schema is not None:  # PostgreSQL, through a proxy that can be cut
        proxy = TcpProxy(("127.0.0.1", PG_PORT))
        settings = Settings(
            data_dir=tmp_path / "data", database_url=proxy.url(url), database_schema=schema, **base
        )
        yield settings, Fault(proxy.cut, proxy.restore)
        proxy.close()
        return
    with tmpfs(tmp_path / "disk", "32m") as disk:  # SQLite, on a disk that fills up
        settings = Settings(data_dir=disk / "data", database_url=None, **base)
        fillers: list[Path] = []

        def full() -> None:
            # the WAL truncated first, as after a checkpoint: the next commit needs space
            with sqlite3.connect(disk / "data" / "axcenter.db") as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            fillers.append(fill(disk))

        yield settings, Fault(full, lambda: fillers.pop().unlink())


@pytest.fixture
def center(fault: tuple[Settings, Fault]) -> Iterator[Center]:
    c = Center(fault[0])
    c.start()
    yield c
    c.stop()


def _submit(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/api/v1/jobs", json=body, headers=headers)


def _until(predicate: Callable[[], Any], what: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    pytest.fail(f"not within {timeout} s: {what()}")


def test_store_fault_is_503_and_heals(
    client: TestClient, tenants: Tenants, center: Center, fault: tuple[Settings, Fault]
) -> None:
    _, store_fault = fault
    alice = tenants.alice
    _until(lambda: client.get("/readyz").status_code == 200, lambda: client.get("/readyz").text)
    # a job that ends while the store is away: its end must be recorded once, afterwards
    long = _submit(client, alice.headers, project=alice.project, command=["sleep", "1"])
    assert long.status_code == 201, long.text
    long_id = long.json()["id"]

    def long_job() -> Any:
        return client.get(f"/api/v1/jobs/{long_id}", headers=alice.headers).json()

    _until(lambda: long_job()["state"] == "running", long_job)

    store_fault.on()
    body = {"project": alice.project, "command": ["true"], "idempotency_key": "k-outage"}
    refused = _submit(client, alice.headers, **body)
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"].isdigit()
    assert refused.headers["content-type"] == "application/json"
    assert "try again" in refused.json()["detail"]
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "not ready"
    assert ready.headers["retry-after"]
    time.sleep(1.5)  # the running job ends meanwhile: its end cannot be written yet
    assert client.get("/healthz").status_code == 200  # alive all the same

    store_fault.off()
    # the client's retry, with the same key, is taken once the store answers again
    again = _until(
        lambda: (r := _submit(client, alice.headers, **body)).status_code in (200, 201) and r,
        lambda: _submit(client, alice.headers, **body).text,
    )
    job_id = again.json()["id"]
    assert _submit(client, alice.headers, **body).json()["id"] == job_id  # replayed
    for jid in (job_id, long_id):
        done = client.get(f"/api/v1/jobs/{jid}/wait", params={"timeout": 30}, headers=alice.headers)
        assert done.json()["state"] == "succeeded", done.text
    _until(lambda: client.get("/readyz").status_code == 200, lambda: client.get("/readyz").text)
    with center.store.read() as s:
        keyed = select(func.count()).where(orm.Job.idempotency_key == "k-outage")
        assert s.scalar(keyed) == 1
        ends = select(func.count()).where(
            orm.JobEvent.job_id == long_id, orm.JobEvent.to_state == "succeeded"
        )
        assert s.scalar(ends) == 1
    metrics = client.get("/metrics").text
    assert 'axc_store_errors_total{where="api"}' in metrics
    assert "axc_cycle_seconds_count" in metrics
    assert "axc_runs_ended_total" in metrics
