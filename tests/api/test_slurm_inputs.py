"""What a Slurm user sends the API: array lists, log patterns, and the messages that
answer a mistake (in the user's terms, never pydantic's or an internal name)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from axcenter.service.center import Center
from axcenter.store import orm
from tests.accounting import allocation, charge, job, price, program
from tests.api.conftest import Tenants
from tests.api.test_jobs import job_count


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"workdir": "/nonexistent/axc-dir"},
            "workdir: /nonexistent/axc-dir is not a directory on this center",
        ),
        (
            {"memory_mb_per_node": 10**8},
            "memory_mb_per_node: memory per node is at most 64 TiB (asked for 95.4 TiB)",
        ),
        ({"gpus_per_node": 4, "nodes": 2}, "nodes: 2 nodes with 4 GPUs each requested, but 1 node"),
        ({"time_limit_s": 10**7}, "time_limit_s: 115 days 17 h 46 min 40 s is above the center's"),
        ({"output_path": "out-%q.log"}, "output_path: '%q' in 'out-%q.log' is not a replacement"),
        ({"surprise": 1}, "surprise: is not a field of this request (check its spelling)"),
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
        ("0-9%0", "indices: array '0-9%0': the throttle after %"),
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


def test_a_task_is_addressed_as_array_underscore_index(
    client: TestClient, tenants: Tenants
) -> None:
    """Slurm's JOBID_IDX: every job route takes ``arr_…_INDEX`` for the task."""
    alice = tenants.alice
    body = {"project": alice.project, "command": ["sh", "-c", "echo task $AXC_ARRAY_INDEX"]}
    array = client.post(
        "/api/v1/arrays", json={**body, "gpus_per_node": 0, "indices": "3,5"}, headers=alice.headers
    ).json()["array_id"]
    done = client.get(f"/api/v1/jobs/{array}_5/wait?timeout=30", headers=alice.headers).json()
    assert (done["array_id"], done["array_index"], done["state"]) == (array, 5, "succeeded"), done
    shown = client.get(f"/api/v1/jobs/{array}_5", headers=alice.headers).json()
    assert shown["id"] == done["id"]
    log = client.get(f"/api/v1/jobs/{array}_5/log", headers=alice.headers)
    assert log.content == b"task 5\n"
    missing = client.get(f"/api/v1/jobs/{array}_4", headers=alice.headers)
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"no task 4 in array {array!r}"
    other = client.get(f"/api/v1/jobs/{array}_5", headers=tenants.bob.headers)
    assert other.status_code == 404  # another tenant's task looks absent


def test_list_filters_by_user_and_name(client: TestClient, tenants: Tenants) -> None:
    alice = tenants.alice
    for name in ("train", "eval", "train"):
        body = {"project": alice.project, "command": ["true"], "gpus_per_node": 0, "name": name}
        assert client.post("/api/v1/jobs", json=body, headers=alice.headers).status_code == 201

    def names(**params: Any) -> list[str]:
        r = client.get("/api/v1/jobs", params=params, headers=alice.headers)
        assert r.status_code == 200, r.text
        return sorted(j["name"] for j in r.json()["items"])

    assert names(name="train") == ["train", "train"]
    assert names(name=["train", "eval"]) == ["eval", "train", "train"]
    assert names(user="alice", name="eval") == ["eval"]
    assert names(user="bob") == []
    assert names(user="nobody") == []


def test_accounting_shows_time_gpu_hours_and_won(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with center.store.write() as s:
        prj = s.query(orm.Project).filter_by(name=tenants.alice.project).one()
        alice = s.query(orm.User).filter_by(name="alice").one()
        prog = program(s, "accounting", 10**9)
        price(s, "H100", 1000, now - timedelta(days=30))
        alc = allocation(
            s,
            prj,
            prog,
            now - timedelta(days=30),
            now + timedelta(days=30),
            {"H100": (10**7, 10**8)},
        )
        ran = job(s, prj, alice, now - timedelta(hours=3), now - timedelta(hours=2),
                  now - timedelta(minutes=30), gpus=2, alloc=alc)  # fmt: skip
        charge(s, alc, "H100", 2 * 5400, 3000, now - timedelta(minutes=30), job_id=ran.id)
        old = job(s, prj, alice, now - timedelta(days=20), now - timedelta(days=20),
                  now - timedelta(days=19))  # fmt: skip
    r = client.get("/api/v1/accounting/jobs", headers=tenants.alice.headers)
    assert r.status_code == 200, r.text
    rows = {row["id"]: row for row in r.json()["items"]}
    assert old.id not in rows  # before the default week
    row = rows[ran.id]
    assert (row["elapsed_s"], row["gpu_seconds"], row["charged_won"]) == (5400, 10800, 3000)
    assert (row["gpus"], row["user"], row["project"]) == (2, "alice", tenants.alice.project)
    since = (now - timedelta(days=21)).isoformat()
    r = client.get(
        "/api/v1/accounting/jobs", params={"since": since}, headers=tenants.alice.headers
    )
    assert old.id in {row["id"] for row in r.json()["items"]}
    assert client.get("/api/v1/accounting/jobs", headers=tenants.bob.headers).json()["items"] == []
