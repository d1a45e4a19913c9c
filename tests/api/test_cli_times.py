"""The CLI shows times in the center's zone, named, as the server tells it with each
read (``X-AXC-Time-Zone``): ``axc show``, ``axc jobs --start``, ``axc acct``'s starts,
against a real center (Asia/Seoul, the default) through the real API."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from axcenter.cli import main
from axcenter.client import Client, Config
from axcenter.service.center import Center
from tests.api.conftest import Tenants
from tests.api.test_jobs import submit
from tests.cli import HttpxTransport

SEOUL = ZoneInfo("Asia/Seoul")


def test_show_and_the_queue_print_times_in_kst(
    center: Center, client: TestClient, tenants: Tenants, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = tenants.alice
    assert center.settings.time_zone == "Asia/Seoul"
    r = client.get("/api/v1/whoami", headers=alice.headers)
    assert r.json()["time_zone"] == "Asia/Seoul"
    assert r.headers["x-axc-time-zone"] == "Asia/Seoul"
    # a submission (the hot path) is not told: only reads are
    job = submit(client, alice, command=["true"], held=True)
    transport = HttpxTransport(client._transport)  # the application, in process

    def factory(cfg: Config) -> Client:
        return Client(cfg.url, cfg.token, transport=transport)

    monkeypatch.setattr(main, "client_factory", factory)
    env = {"AXC_URL": "http://testserver", "AXC_TOKEN": alice.token, "COLUMNS": "200"}
    shown = CliRunner().invoke(main.app, ["show", job["id"]], env=env)
    assert shown.exit_code == 0, shown.output
    submitted = datetime.fromisoformat(job["submitted_at"]).astimezone(SEOUL)
    assert f"{submitted:%Y-%m-%d %H:%M:%S} KST" in shown.output
    assert " UTC" not in shown.output
    listed = CliRunner().invoke(main.app, ["jobs", "--start"], env=env)
    assert listed.exit_code == 0, listed.output
    assert job["id"] in listed.output
    ran = submit(client, alice, command=["true"])
    client.get(f"/api/v1/jobs/{ran['id']}/wait", params={"timeout": 30}, headers=alice.headers)
    acct = CliRunner().invoke(main.app, ["acct", "--since", "2026-01-01T00:00:00Z"], env=env)
    assert acct.exit_code == 0, acct.output
    started = client.get(f"/api/v1/jobs/{ran['id']}", headers=alice.headers).json()["started_at"]
    assert f"{datetime.fromisoformat(started).astimezone(SEOUL):%Y-%m-%d %H:%M} KST" in acct.output
