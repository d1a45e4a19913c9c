"""Every refused field answers in the user's terms (``api/problems.py``): the field, what
was wrong, and what would be accepted, in the units the user writes; never pydantic's
phrasing or a regular expression. A table of mistakes against the real API."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from axcenter.api.problems import describe
from tests.api.conftest import Tenants

#: what pydantic or a schema would say if a message leaked through untranslated
LEAKS = ("Input should", "String should", "List should", "Field required", "Extra inputs",
         "pattern", "^[", "valid integer", "less than or equal")  # fmt: skip

TABLE: list[tuple[dict[str, Any], str]] = [
    (
        {"memory_mb_per_node": 100 * 1024 * 1024},
        "memory_mb_per_node: memory per node is at most 64 TiB (asked for 100 TiB)",
    ),
    ({"memory_mb_per_node": 0}, "memory_mb_per_node: memory per node is at least 1 MiB"),
    ({"time_limit_s": 0}, "time_limit_s: time limit is at least 1s (asked for 0s)"),
    ({"gpus_per_node": 65}, "gpus_per_node: GPUs per node is at most 64 (asked for 65)"),
    ({"gpus_per_node": "two"}, "gpus_per_node: GPUs per node is a whole number, not 'two'"),
    ({"nodes": 2.5}, "nodes: nodes is a whole number, not 2.5"),
    ({"priority": 5000}, "priority: priority is at most 1,000 (asked for 5,000)"),
    ({"command": []}, "command: command may not be empty"),
    ({"command": "true"}, "command: command is a list, not 'true'"),
    ({"command": ["a\x00b"]},
     "command.0: 'a\\x00b' is not accepted as command: use text without NUL"),
    ({"env": {"1A": "x"}}, "env.1A: '1A' is not accepted as environment: use a variable name"),
    ({"env": "A=1"}, "env: environment is an object of names and values, not 'A=1'"),
    ({"gpu_types": ["h 100"]}, "gpu_types.0: 'h 100' is not accepted as GPU type: use a name of"),
    ({"output": "file"}, "output: 'file' is not accepted as output: use 'log' or 'discard'"),
    ({"held": "maybe"}, "held: held is true or false, not 'maybe'"),
    ({"name": "n" * 201}, "name: name is at most 200 characters"),
    ({"project": ""}, "project: project may not be empty"),
    ({"script": "echo no interpreter\n"}, "script: a batch script must begin with #!"),
    ({"script": "#!/bin/sh\n" + "x" * 70_000},
     "script: the batch script is 70,010 bytes; at most 64 KiB"),
    ({"bogus": 1}, "bogus: is not a field of this request (check its spelling)"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "message"), TABLE)
def test_each_mistake_names_the_field_and_what_is_accepted(
    client: TestClient, tenants: Tenants, change: dict[str, Any], message: str
) -> None:
    body = {"project": tenants.alice.project, "command": ["true"], "gpus_per_node": 0, **change}
    r = client.post("/api/v1/jobs", json=body, headers=tenants.alice.headers)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail.startswith(message), detail
    assert not [leak for leak in LEAKS if leak in detail], detail


def test_a_missing_field_and_a_query_parameter(client: TestClient, tenants: Tenants) -> None:
    r = client.post("/api/v1/jobs", json={"project": "x"}, headers=tenants.alice.headers)
    assert (r.status_code, r.json()["detail"]) == (422, "command: command is required")
    r = client.get("/api/v1/jobs/job_x/log?offset=-1", headers=tenants.alice.headers)
    assert r.status_code == 422 and r.json()["detail"].startswith("offset: offset is at least 0")
    r = client.get("/api/v1/accounting/jobs?since=yesterday", headers=tenants.alice.headers)
    assert r.status_code == 422, r.text
    assert "since: 'yesterday' is not a date and time; use ISO 8601" in r.json()["detail"]


def test_fields_inside_lists_and_mappings() -> None:
    """A batch's jobs and a mapping's keys: the path names where, the words name what."""
    err = {"type": "less_than_equal", "loc": ("body", "jobs", 3, "time_limit_s"),
           "input": 90 * 86400, "ctx": {"le": 30 * 86400}}  # fmt: skip
    assert describe(err) == "jobs.3.time_limit_s: time limit is at most 30d (asked for 90d)"
    err = {"type": "string_too_long", "loc": ("body", "env", "PATH"), "input": "x" * 5000,
           "ctx": {"max_length": 4096}}  # fmt: skip
    assert describe(err) == "env.PATH: environment is at most 4096 characters"
