"""``GET /api/v1/export/history`` and ``axc export history``: the native trace format, read
back by the simulator's own reader; each caller sees only what it may see."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from axcenter.cli import main
from axcenter.client import Client, Config
from axcenter.service.center import Center
from axcenter.sim.traces import read_trace
from axcenter.sim.traces.native import COLUMNS
from axcenter.store import orm
from tests.api.conftest import Account, Tenants
from tests.api.test_jobs import submit, wait
from tests.cli import HttpxTransport


def export(client: TestClient, who: Account, tmp_path: Path, **params: str) -> Path:
    r = client.get("/api/v1/export/history", params=params, headers=who.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    path = tmp_path / f"history-{who.user}.csv"
    path.write_bytes(r.content)
    return path


@pytest.fixture
def ran(client: TestClient, tenants: Tenants) -> list[dict[str, object]]:
    """Two finished jobs, alice's (2 H100s, typed) and bob's, plus a job cancelled while
    pending (never ran: not exported)."""
    a = submit(client, tenants.alice, command=["sleep", "0.2"], gpus_per_node=2,
               gpu_types=["H100"], priority=3, time_limit_s=600)  # fmt: skip
    b = submit(client, tenants.bob, command=["sh", "-c", "exit 1"], gpus_per_node=1)
    done = [wait(client, tenants.alice, a["id"]), wait(client, tenants.bob, b["id"])]
    assert [j["state"] for j in done] == ["succeeded", "failed"]
    hog = submit(client, tenants.bob, command=["sleep", "30"], gpus_per_node=4,
                 gpu_types=["H100"])  # fmt: skip
    queued = submit(client, tenants.bob, command=["true"], gpus_per_node=4, gpu_types=["H100"])
    deadline = time.monotonic() + 30
    while wait(client, tenants.bob, hog["id"], timeout=0.1)["state"] != "running":
        assert time.monotonic() < deadline, "the hog never started"
    for job in (queued, hog):
        r = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=tenants.bob.headers)
        assert r.status_code == 200, r.text
    return done


def test_operator_exports_every_finished_job(
    client: TestClient, tenants: Tenants, ran: list[dict[str, object]], tmp_path: Path
) -> None:
    path = export(client, tenants.operator, tmp_path)
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    w = read_trace(path)
    by_id = {j.id: j for j in w.jobs}
    alice_job, bob_job = (by_id[str(j["id"])] for j in ran)
    assert alice_job.submit == 0.0  # the first exported job
    assert bob_job.submit > 0
    assert (alice_job.tenant, alice_job.user, alice_job.status) == (
        "acme-vision",
        "alice",
        "succeeded",
    )
    assert (alice_job.gpus_per_node, alice_job.nodes, alice_job.gpu_types) == (2, 1, ("H100",))
    assert (alice_job.priority, alice_job.time_limit) == (3, 600)
    assert 0.1 < alice_job.duration < 20
    assert (bob_job.tenant, bob_job.status) == ("bolt-llm", "failed")
    # the hog ran and was cancelled: exported; the queued job never ran: not exported
    assert len(w.jobs) == 3
    assert {j.status for j in w.jobs} == {"succeeded", "failed", "cancelled"}


def test_a_run_shorter_than_a_millisecond_is_exported(
    client: TestClient,
    center: Center,
    tenants: Tenants,
    ran: list[dict[str, object]],
    tmp_path: Path,
) -> None:
    """A job that exits at once (``exit 1``) ran for a fraction of a millisecond: its
    duration is written to the microsecond, not rounded to zero (which the reader drops)."""
    bob_id = str(ran[1]["id"])
    with center.store.write() as s:
        job = s.get(orm.Job, bob_id)
        assert job is not None and job.started_at is not None
        job.ended_at = job.started_at + timedelta(microseconds=300)
    w = read_trace(export(client, tenants.operator, tmp_path))
    assert {j.id: j.duration for j in w.jobs}[bob_id] == pytest.approx(0.0003)


def test_member_sees_only_own_project_jobs(
    client: TestClient, tenants: Tenants, ran: list[dict[str, object]], tmp_path: Path
) -> None:
    alice = read_trace(export(client, tenants.alice, tmp_path))
    assert [j.id for j in alice.jobs] == [ran[0]["id"]]
    assert alice.tenants == ["acme-vision"]
    bob = read_trace(export(client, tenants.bob, tmp_path))
    assert ran[0]["id"] not in {j.id for j in bob.jobs}
    assert bob.tenants == ["bolt-llm"]


def test_time_window(
    client: TestClient, tenants: Tenants, ran: list[dict[str, object]], tmp_path: Path
) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    earlier = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    empty = export(client, tenants.operator, tmp_path, since=later)
    assert empty.read_text().strip() == ",".join(COLUMNS)
    both = read_trace(export(client, tenants.operator, tmp_path, since=earlier, until=later))
    assert len(both.jobs) == 3
    r = client.get(
        "/api/v1/export/history",
        params={"since": later, "until": earlier},
        headers=tenants.operator.headers,
    )
    assert r.status_code == 422 and "until" in r.json()["detail"]
    assert client.get("/api/v1/export/history").status_code == 401


def test_cli_export_history(
    client: TestClient,
    tenants: Tenants,
    ran: list[dict[str, object]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transport = HttpxTransport(client._transport)  # the in-process app, as the CLI's HTTP transport

    def factory(cfg: Config) -> Client:
        return Client(cfg.url, cfg.token, transport=transport)

    monkeypatch.setattr(main, "client_factory", factory)
    out = tmp_path / "alice.csv"
    result = CliRunner().invoke(
        main.app,
        ["export", "history", "-o", str(out), "--since", "2000-01-01T00:00"],
        env={"AXC_URL": "http://testserver", "AXC_TOKEN": tenants.alice.token},
    )
    assert result.exit_code == 0, result.output
    assert "wrote 1 jobs" in result.output
    assert [j.id for j in read_trace(out).jobs] == [ran[0]["id"]]
    assert not out.with_name("alice.csv.partial").exists()
