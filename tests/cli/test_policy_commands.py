"""``axc quota|cohort|project|reservation`` against a fake of the policy endpoints.

These check what the commands send and how they render answers; the rules themselves are
tested against the real server in ``tests/api/test_policy.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from axcenter.cli import main
from axcenter.client import Client

from . import TOKEN, URL, FakeServer

_PROJECT_SETTING = re.compile(r"^/api/v1/projects/(?P<project>[^/]+)/(?P<what>cohort|limits)$")


class PolicyServer(FakeServer):
    """``FakeServer`` plus the policy endpoints: answers echo what was sent."""

    def __init__(self) -> None:
        super().__init__()
        #: answer every policy change with 403, as for a caller who is not an operator
        self.forbid = False
        self.quotas: list[dict[str, Any]] = [
            _quota("vision", "H100", nominal=4, in_use=6, borrowing=True, borrowing_limit=2),
            _quota("nlp", "A100", nominal=2, in_use=1, lending_limit=1),
        ]
        self.reservations: list[dict[str, Any]] = [
            {
                "id": "rsv_1",
                "name": "demo-day",
                "project": "(other tenant)",
                "project_id": None,
                "starts_at": "2030-01-01T00:00:00Z",
                "ends_at": "2030-01-01T08:00:00Z",
                "nodes": [{"node": "gpu-a", "devices": [0, 1]}],
                "active": False,
            }
        ]
        self.limits = {
            "id": "prj_1",
            "name": "vision",
            "cohort": None,
            "fair_share_weight": 1.0,
            "max_running_jobs": None,
            "max_gpus": 4,
        }

    def handle(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        policy = path.startswith(("/api/v1/quotas", "/api/v1/cohorts", "/api/v1/reservations"))
        setting = _PROJECT_SETTING.match(path)
        if not policy and setting is None:
            return super().handle(request)
        self.requests.append(request)
        body = json.loads(request.content) if request.content else None
        self.bodies.append(body)
        if method != "GET" and self.forbid:
            return httpx.Response(403, json={"detail": "only operators may change quotas"})
        parts = path.removeprefix("/api/v1/").split("/")
        if setting is not None:
            if setting["what"] == "cohort":
                return httpx.Response(200, json=self.limits | {"cohort": body["cohort"]})
            if method == "GET":
                return httpx.Response(200, json=self.limits)
            changed = {k: v for k, v in body.items() if k != "clear"}
            cleared = dict.fromkeys(body.get("clear", []))
            return httpx.Response(200, json=self.limits | changed | cleared)
        match method, parts:
            case "GET", ["quotas"]:
                return httpx.Response(200, json={"items": self.quotas})
            case "PUT", ["quotas", project, gpu_type]:
                return httpx.Response(200, json=_quota(project, gpu_type, **body))
            case "DELETE", ["quotas", _, _] | ["cohorts", _] | ["reservations", _]:
                return httpx.Response(204)
            case "GET", ["cohorts"]:
                cohort = {"id": "coh_1", "name": "lab", "parent": None}
                return httpx.Response(
                    200, json={"items": [cohort | {"projects": ["vision"], "children": []}]}
                )
            case "POST", ["cohorts"]:
                return httpx.Response(
                    201, json={"id": "coh_2", **body, "projects": [], "children": []}
                )
            case "PUT", ["cohorts", name, "parent"]:
                out = {"id": "coh_1", "name": name, "projects": [], "children": []}
                return httpx.Response(200, json=out | body)
            case "GET", ["reservations"]:
                return httpx.Response(200, json={"items": self.reservations})
            case "POST", ["reservations"]:
                nodes = [
                    {"node": n["node"], "devices": n.get("devices", [0, 1])} for n in body["nodes"]
                ]
                out = {
                    "id": "rsv_2",
                    "name": body["name"],
                    "project": body["project"],
                    "project_id": "prj_1",
                    "starts_at": body.get("starts_at", "2030-01-01T00:00:00Z"),
                    "ends_at": body["ends_at"],
                    "nodes": nodes,
                    "active": False,
                }
                return httpx.Response(201, json=out)
        return httpx.Response(404, json={"detail": f"no route {method} {path}"})


def _quota(project: str, gpu_type: str, **fields: Any) -> dict[str, Any]:
    return {
        "project": project,
        "project_id": "prj_1",
        "gpu_type": gpu_type,
        "nominal": 0,
        "borrowing_limit": None,
        "lending_limit": None,
        "in_use": 0,
        "borrowing": False,
    } | fields


@pytest.fixture
def fake() -> PolicyServer:
    return PolicyServer()


@pytest.fixture
def axc(fake: PolicyServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """Run ``axc ARGS`` in-process against the fake."""
    monkeypatch.setattr(
        main, "client_factory", lambda cfg: Client(cfg.url, cfg.token, transport=fake.transport)
    )
    runner = CliRunner()
    env = {
        "AXC_URL": URL,
        "AXC_TOKEN": TOKEN,
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "COLUMNS": "200",
    }

    def run(*args: str) -> Result:
        return runner.invoke(main.app, list(args), env=env)

    yield run


def sent(fake: PolicyServer) -> list[tuple[str, Any]]:
    return [
        (f"{r.method} {r.url.path}", body)
        for r, body in zip(fake.requests, fake.bodies, strict=True)
    ]


# -- quota --------------------------------------------------------------------------------


def test_quota_set_sends_all_three_values(axc: Any, fake: PolicyServer) -> None:
    result = axc("quota", "set", "vision", "H100=4", "--borrow-limit", "2")
    assert result.exit_code == 0, result.output
    assert sent(fake) == [
        (
            "PUT /api/v1/quotas/vision/H100",
            {"nominal": 4, "borrowing_limit": 2, "lending_limit": None},
        )
    ]
    assert "vision H100: nominal 4, borrow limit 2, lend limit none" in result.stdout


@pytest.mark.parametrize("spec", ["H100", "H100=-1", "=4", "H100=four"])
def test_quota_set_refuses_a_bad_spec_locally(axc: Any, fake: PolicyServer, spec: str) -> None:
    result = axc("quota", "set", "vision", spec)
    assert result.exit_code == 2
    assert "TYPE=N" in result.output
    assert fake.requests == []


def test_quota_list_marks_borrowers(axc: Any) -> None:
    result = axc("quota", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "PROJECT", "TYPE", "NOMINAL", "BORROW", "LIMIT", "LEND", "LIMIT", "IN", "USE", "FROM",
    ]  # fmt: skip
    assert lines[1].split() == ["vision", "H100", "4", "2", "none", "6", "set", "borrowing"]
    assert lines[2].split() == ["nlp", "A100", "2", "none", "1", "1", "set"]
    as_json = axc("quota", "list", "--json")
    assert json.loads(as_json.stdout)[0]["borrowing"] is True


def test_quota_rm_and_a_refusal_from_the_server(axc: Any, fake: PolicyServer) -> None:
    assert axc("quota", "rm", "vision", "H100").exit_code == 0
    fake.forbid = True
    result = axc("quota", "set", "vision", "H100=1")
    assert result.exit_code == 1
    assert "error: only operators may change quotas" in result.stderr
    assert [p for p, _ in sent(fake)] == [
        "DELETE /api/v1/quotas/vision/H100",
        "PUT /api/v1/quotas/vision/H100",
    ]


# -- cohort and project -------------------------------------------------------------------


def test_cohort_commands(axc: Any, fake: PolicyServer) -> None:
    assert axc("cohort", "create", "lab", "--parent", "program").exit_code == 0
    assert axc("cohort", "assign", "vision", "lab").exit_code == 0
    assert axc("cohort", "assign", "vision", "--none").exit_code == 0
    assert axc("cohort", "move", "lab", "--root").exit_code == 0
    assert axc("cohort", "rm", "lab").exit_code == 0
    assert sent(fake) == [
        ("POST /api/v1/cohorts", {"name": "lab", "parent": "program"}),
        ("PUT /api/v1/projects/vision/cohort", {"cohort": "lab"}),
        ("PUT /api/v1/projects/vision/cohort", {"cohort": None}),
        ("PUT /api/v1/cohorts/lab/parent", {"parent": None}),
        ("DELETE /api/v1/cohorts/lab", None),
    ]
    listed = axc("cohort", "list")
    assert listed.stdout.splitlines()[1].split() == ["lab", "(root)", "-", "vision"]


@pytest.mark.parametrize("args", [["vision"], ["vision", "lab", "--none"]])
def test_cohort_assign_needs_a_cohort_or_none(
    axc: Any, fake: PolicyServer, args: list[str]
) -> None:
    result = axc("cohort", "assign", *args)
    assert result.exit_code == 2
    assert fake.requests == []


def test_project_limits_shows_sets_and_clears(axc: Any, fake: PolicyServer) -> None:
    shown = axc("project", "limits", "vision")
    assert shown.exit_code == 0, shown.output
    assert "max running jobs none, max GPUs 4" in shown.stdout
    changed = axc(
        "project", "limits", "vision", "--weight", "2", "--max-jobs", "3", "--clear-max-gpus"
    )
    assert changed.exit_code == 0, changed.output
    assert "weight 2.0, max running jobs 3, max GPUs none" in changed.stdout
    assert sent(fake) == [
        ("GET /api/v1/projects/vision/limits", None),
        (
            "PUT /api/v1/projects/vision/limits",
            {"fair_share_weight": 2.0, "max_running_jobs": 3, "clear": ["max_gpus"]},
        ),
    ]
    both = axc("project", "limits", "vision", "--max-gpus", "2", "--clear-max-gpus")
    assert both.exit_code == 2


# -- reservation --------------------------------------------------------------------------


def test_reservation_create_sends_utc_times_and_devices(axc: Any, fake: PolicyServer) -> None:
    result = axc(
        "reservation", "create", "demo",
        "--project", "vision",
        "--node", "gpu-a",
        "--node", "gpu-b:1,0",
        "--start", "2030-01-01T18:00+09:00",
        "--duration", "8h",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [(path, body)] = sent(fake)
    assert path == "POST /api/v1/reservations"
    assert body == {
        "name": "demo",
        "project": "vision",
        "starts_at": "2030-01-01T09:00:00+00:00",
        "ends_at": "2030-01-01T17:00:00+00:00",
        "nodes": [{"node": "gpu-a"}, {"node": "gpu-b", "devices": [0, 1]}],
    }
    assert (
        "reserved gpu-a[0,1] gpu-b[0,1] for vision from 2030-01-01 09:00 UTC "
        "to 2030-01-01 17:00 UTC" in result.stdout
    )


def test_reservation_create_naive_end_is_utc_and_start_defaults_to_now(
    axc: Any, fake: PolicyServer
) -> None:
    result = axc(
        "reservation", "create", "demo", "-p", "vision", "--node", "gpu-a",
        "--end", "2030-01-02T00:00",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [(_, body)] = sent(fake)
    assert "starts_at" not in body
    assert body["ends_at"] == "2030-01-02T00:00:00+00:00"


@pytest.mark.parametrize(
    "extra",
    [
        [],  # neither --end nor --duration
        ["--end", "2030-01-02T00:00", "--duration", "1h"],
        ["--end", "tomorrow"],
        ["--duration", "soon"],
    ],
)
def test_reservation_create_refuses_bad_times_locally(
    axc: Any, fake: PolicyServer, extra: list[str]
) -> None:
    result = axc("reservation", "create", "demo", "-p", "vision", "--node", "gpu-a", *extra)
    assert result.exit_code == 2, result.output
    assert fake.requests == []


def test_reservation_list_and_rm(axc: Any, fake: PolicyServer) -> None:
    listed = axc("reservation", "list", "--all")
    assert listed.exit_code == 0, listed.output
    row = listed.stdout.splitlines()[1]
    assert row.split() == [
        "demo-day", "(other", "tenant)", "upcoming",
        "2030-01-01", "00:00", "UTC", "2030-01-01", "08:00", "UTC", "gpu-a[0,1]",
    ]  # fmt: skip
    assert fake.requests[0].url.params["include_ended"] == "true"
    assert axc("reservation", "rm", "demo-day").exit_code == 0
    assert sent(fake)[-1] == ("DELETE /api/v1/reservations/demo-day", None)
