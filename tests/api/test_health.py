"""``/readyz`` and ``/metrics`` of a working center, and a standby's answers: reads
served, changes refused with 503 until it holds the store."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from axcenter.api.app import create_app
from axcenter.service.center import Center
from axcenter.settings import Settings
from tests.api.conftest import Tenants


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_ready_and_counted(client: TestClient, tenants: Tenants) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["checks"].values()) == {"ok"}
    alice = tenants.alice
    job = client.post(
        "/api/v1/jobs", json={"project": alice.project, "command": ["true"]}, headers=alice.headers
    ).json()
    done = client.get(
        f"/api/v1/jobs/{job['id']}/wait", params={"timeout": 30}, headers=alice.headers
    )
    assert done.json()["state"] == "succeeded"
    got = _samples(client.get("/metrics").text)
    assert got["axc_jobs_admitted_total", ()] == 1
    assert got["axc_runs_started_total", ()] == 1
    assert got["axc_runs_ended_total", (("outcome", "succeeded"),)] == 1
    assert got["axc_exit_record_lag_seconds_count", ()] == 1
    assert got["axc_pending_jobs", ()] == 0
    assert got["axc_cycle_seconds_count", ()] >= 1
    assert ("axc_store_errors_total", (("where", "api"),)) not in got  # none happened


def test_a_standby_serves_reads_and_refuses_changes(
    center: Center, tenants: Tenants, tmp_path: Path
) -> None:
    settings = Settings(
        **{**center.settings.model_dump(), "data_dir": center.settings.data_dir, "port": 0}
    )
    standby = Center(settings)
    standby.start(standby=True)
    try:
        client = TestClient(create_app(standby))
        alice = tenants.alice
        assert client.get("/api/v1/jobs", headers=alice.headers).status_code == 200
        refused = client.post(
            "/api/v1/jobs",
            json={"project": alice.project, "command": ["true"]},
            headers=alice.headers,
        )
        assert refused.status_code == 503
        assert refused.headers["retry-after"]
        assert "standby" in refused.json()["detail"]
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "standby" in ready.json()["checks"]["control"]
        assert standby.standby and not standby.active
    finally:
        standby.stop()
