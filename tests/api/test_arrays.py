"""Job arrays: distinct indices, one task cancelled alone, the rest all at once."""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi.testclient import TestClient

from tests.api.conftest import Tenants
from tests.api.test_jobs import wait
from tests.conftest import home_of


def test_array_tasks_get_distinct_indices(
    client: TestClient, tenants: Tenants, tmp_path: Path
) -> None:
    alice = tenants.alice
    out = f"indices-{secrets.token_hex(4)}"  # in alice's home: the tasks' directory
    r = client.post(
        "/api/v1/arrays",
        json={
            "project": alice.project,
            "indices": "0-9",
            "gpus_per_node": 0,
            "command": [
                "sh",
                "-c",
                f"mkdir -p {out}; echo $AXC_ARRAY_INDEX > {out}/$AXC_ARRAY_INDEX",
            ],
        },
        headers=alice.headers,
    )
    assert r.status_code == 201, r.text
    array = r.json()
    assert (array["tasks"], array["first_index"], array["last_index"]) == (10, 0, 9)
    view = client.get(
        f"/api/v1/arrays/{array['array_id']}", params={"ids": True}, headers=alice.headers
    ).json()
    for job_id in view["job_ids"]:
        assert wait(client, alice, job_id)["state"] == "succeeded"
    found = (home_of("alice") / out).iterdir()
    assert sorted(int(p.read_text()) for p in found) == list(range(10))
    tasks = client.get(
        "/api/v1/jobs", params={"array": array["array_id"], "limit": 100}, headers=alice.headers
    ).json()["items"]
    assert sorted(t["array_index"] for t in tasks) == list(range(10))
    assert {t["array_id"] for t in tasks} == {array["array_id"]}


def test_cancel_one_task_then_the_whole_array(client: TestClient, tenants: Tenants) -> None:
    alice = tenants.alice
    # 6 tasks of 4 H100 each on a center with 4 H100: one runs, five wait
    array = client.post(
        "/api/v1/arrays",
        json={
            "project": alice.project,
            "indices": "0-10:2",
            "gpus_per_node": 4,
            "gpu_types": ["H100"],
            "command": ["sleep", "60"],
        },
        headers=alice.headers,
    ).json()
    assert array["tasks"] == 6
    ids = client.get(
        f"/api/v1/arrays/{array['array_id']}", params={"ids": True}, headers=alice.headers
    ).json()["job_ids"]
    one = client.post(f"/api/v1/jobs/{ids[-1]}/cancel", headers=alice.headers).json()
    assert one["state"] == "cancelled"
    rest = client.get(f"/api/v1/arrays/{array['array_id']}", headers=alice.headers).json()
    assert rest["states"].get("cancelled") == 1
    done = client.post(f"/api/v1/arrays/{array['array_id']}/cancel", headers=alice.headers).json()
    assert done["states"] == {"cancelled": 6}
    # other tenants do not see the array
    hidden = client.get(f"/api/v1/arrays/{array['array_id']}", headers=tenants.bob.headers)
    assert hidden.status_code == 404


def test_bad_indices_are_refused(client: TestClient, tenants: Tenants) -> None:
    alice = tenants.alice
    for indices, field in (("9-1", "indices"), ("0-999999", "indices"), ("x", "indices")):
        r = client.post(
            "/api/v1/arrays",
            json={"project": alice.project, "indices": indices, "command": ["true"]},
            headers=alice.headers,
        )
        assert r.status_code == 422, (indices, r.text)
        assert r.json()["detail"].startswith(field)
