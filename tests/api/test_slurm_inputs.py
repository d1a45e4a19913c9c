"""What a Slurm user sends the API: array lists, log patterns, and the messages that
answer a mistake (in the user's terms, never pydantic's or an internal name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from axcenter.service.center import Center
from tests.api.conftest import Tenants
from tests.api.test_jobs import job_count


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"workdir": "/nonexistent/axc-dir"},
            "workdir: /nonexistent/axc-dir is not a directory on this center",
        ),
        ({"memory_mb_per_node": 10**8}, "memory_mb_per_node: 100000000 is too large: at most"),
        ({"gpus_per_node": 4, "nodes": 2}, "nodes: 2 nodes with 4 GPUs each requested, but 1 node"),
        ({"time_limit_s": 10**7}, "time_limit_s: 115 days 17 h 46 min 40 s is above the center's"),
        ({"output_path": "out-%q.log"}, "output_path: '%q' in 'out-%q.log' is not a replacement"),
        ({"surprise": 1}, "surprise: is not a field of this request"),
    ],
)
def test_mistakes_are_answered_in_the_users_terms(
    client: TestClient, tenants: Tenants, center: Center, change: dict[str, Any], message: str
) -> None:
    body = {"project": tenants.alice.project, "command": ["true"], **change}
    r = client.post("/api/v1/jobs", json=body, headers=tenants.alice.headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(message), r.json()
    assert "Input should" not in r.json()["detail"]
    assert job_count(center) == 0


def test_log_patterns_are_kept_as_written(
    client: TestClient, tenants: Tenants, tmp_path: Path
) -> None:
    body = {
        "project": tenants.alice.project,
        "command": ["true"],
        "gpus_per_node": 0,
        "workdir": str(tmp_path),
        "output_path": "logs/%x-%A_%a.out",
        "error_path": "logs/%x-%j.err",
    }
    r = client.post("/api/v1/jobs", json=body, headers=tenants.alice.headers)
    assert r.status_code == 201, r.text
    shown = client.get(f"/api/v1/jobs/{r.json()['id']}", headers=tenants.alice.headers).json()
    assert (shown["output_path"], shown["error_path"]) == ("logs/%x-%A_%a.out", "logs/%x-%j.err")


def test_array_of_a_slurm_list(client: TestClient, tenants: Tenants) -> None:
    alice = tenants.alice
    body = {"project": alice.project, "command": ["true"], "gpus_per_node": 0}
    r = client.post(
        "/api/v1/arrays", json={**body, "indices": "1,3,10-14:2"}, headers=alice.headers
    )
    assert r.status_code == 201, r.text
    array = r.json()
    assert (array["tasks"], array["first_index"], array["last_index"]) == (5, 1, 14)
    tasks = client.get(
        "/api/v1/jobs", params={"array": array["array_id"]}, headers=alice.headers
    ).json()["items"]
    assert sorted(t["array_index"] for t in tasks) == [1, 3, 10, 12, 14]


@pytest.mark.parametrize(
    ("indices", "message"),
    [
        ("1,x", "indices: array '1,x': cannot read 'x'"),
        ("0-9%2", "indices: array '0-9%2': a % throttle"),
        ("9-1", "indices: array '9-1': '9-1' ends before it starts"),
    ],
)
def test_bad_arrays_are_refused_with_the_part_at_fault(
    client: TestClient, tenants: Tenants, center: Center, indices: str, message: str
) -> None:
    body = {"project": tenants.alice.project, "command": ["true"], "indices": indices}
    r = client.post("/api/v1/arrays", json=body, headers=tenants.alice.headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(message), r.json()
    assert job_count(center) == 0
