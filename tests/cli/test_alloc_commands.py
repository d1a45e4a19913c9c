"""``axc alloc|program|price|user|project`` against a fake of the allocation endpoints.

These check what the commands send and how they render answers (warnings in yellow at
80% and red when exhausted); the rules are tested against the real server in
``tests/api/test_allocations.py`` and ``tests/api/test_access_roles.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from axcenter.cli import main
from axcenter.cli.alloc import allocations_table, parse_hours, warning_text
from axcenter.client import Client

from . import TOKEN, URL, FakeServer

ROUTES = ("allocation-requests", "allocations", "programs", "prices", "users", "tokens")


def _allocation(alloc_id: str, project: str, used: float, warning: str) -> dict[str, Any]:
    granted = 2000 * 3600
    return {
        "id": alloc_id,
        "project": project,
        "project_id": "prj_1",
        "program": "AX 2026",
        "program_id": "prg_1",
        "request_id": "req_1",
        "starts_at": "2026-01-01T00:00:00Z",
        "ends_at": "2026-04-01T00:00:00Z",
        "status": "active",
        "on_exhaustion": "stop",
        "created_at": "2026-01-01T00:00:00Z",
        "balance": {
            "granted_won": 5_600_000,
            "charged_won": int(5_600_000 * used),
            "held_won": 0,
            "left_won": 5_600_000 - int(5_600_000 * used),
            "used_fraction": used,
            "warning": warning,
            "items": [
                {
                    "gpu_type": "A100",
                    "granted_gpu_seconds": granted,
                    "used_gpu_seconds": int(granted * used),
                    "left_gpu_seconds": granted - int(granted * used),
                    "granted_gpu_hours": 2000.0,
                    "left_gpu_hours": round(2000 * (1 - used), 3),
                }
            ],
        },
    }


class AllocServer(FakeServer):
    """``FakeServer`` plus the allocation endpoints: answers echo what was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.allocations = [
            _allocation("alc_ok", "vision", 0.1, "none"),
            _allocation("alc_warn", "nlp", 0.85, "80%"),
            _allocation("alc_gone", "nlp", 1.0, "100%"),
        ]

    def handle(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.removeprefix("/api/v1/").split("/")
        if parts[0] not in ROUTES:
            return super().handle(request)
        self.requests.append(request)
        body = json.loads(request.content) if request.content else None
        self.bodies.append(body)
        match request.method, parts:
            case "POST", ["allocation-requests"]:
                out = {"id": "req_9", "status": "submitted", "events": []} | body
                return httpx.Response(201, json=out)
            case "POST", ["allocation-requests", rid, action]:
                status = {"approve": "approved", "reject": "rejected", "return": "returned"}
                out = {"id": rid, "status": status.get(action, "in_review")}
                if action == "approve":
                    out["allocation_id"] = "alc_new"
                return httpx.Response(200, json=out)
            case "GET", ["allocations"]:
                return httpx.Response(200, json={"items": self.allocations})
            case "POST", ["programs"]:
                out = {"id": "prg_9", "allocated_won": 0} | body
                return httpx.Response(201, json=out)
            case "POST", ["prices"]:
                out = {"id": "prc_9", "effective_from": "2026-01-01T00:00:00Z"} | body
                return httpx.Response(201, json=out)
            case "POST", ["users"]:
                out = {"id": "usr_9", "organization": "uni", "token": "axc_secret"} | body
                return httpx.Response(201, json=out)
            case "DELETE", ["tokens", _]:
                return httpx.Response(204)
            case "POST", ["users", user, "password-reset"]:
                out = {
                    "user": user,
                    "link": "http://gpu.example/ui/login/reset?code=once",
                    "expires_at": "2026-12-08T03:00:00Z",
                }
                return httpx.Response(201, json=out)
        return httpx.Response(404, json={"detail": f"no route {request.method} {parts}"})


@pytest.fixture
def fake() -> AllocServer:
    return AllocServer()


@pytest.fixture
def axc(fake: AllocServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
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


def sent(fake: AllocServer) -> list[tuple[str, Any]]:
    return [
        (f"{r.method} {r.url.path}", body)
        for r, body in zip(fake.requests, fake.bodies, strict=True)
    ]


def test_request_sends_items_window_and_justification(axc: Any, fake: AllocServer) -> None:
    result = axc(
        "alloc", "request", "vision", "-g", "A100=2000", "-g", "H100=100",
        "--start", "2030-01-01T00:00", "--days", "90", "-j", "train the detector",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [(path, body)] = sent(fake)
    assert path == "POST /api/v1/allocation-requests"
    assert body == {
        "project": "vision",
        "kind": "new",
        "items": {"A100": 2000, "H100": 100},
        "starts_at": "2030-01-01T00:00:00+00:00",
        "ends_at": "2030-04-01T00:00:00+00:00",
        "justification": "train the detector",
    }
    assert "filed request req_9" in result.stdout


@pytest.mark.parametrize("spec", ["A100", "A100=0", "=5", "A100=x"])
def test_bad_gpu_hours_are_refused_locally(axc: Any, fake: AllocServer, spec: str) -> None:
    result = axc("alloc", "request", "vision", "-g", spec, "-j", "x", "--days", "1")
    assert result.exit_code == 2
    assert "TYPE=HOURS" in result.output
    assert fake.requests == []


def test_review_steps_send_what_the_api_expects(axc: Any, fake: AllocServer) -> None:
    steps = [
        ("assign", "req_1", "rev", "rev2"),
        ("review", "req_1", "--score", "4", "-m", "solid"),
        ("approve", "req_1", "-g", "A100=1000", "--on-exhaustion", "preemptible"),
        ("return", "req_1", "-m", "justify H100"),
        ("reject", "req_1", "-m", "no budget"),
    ]
    for args in steps:
        result = axc("alloc", *args)
        assert result.exit_code == 0, (args, result.output)
    assert sent(fake) == [
        ("POST /api/v1/allocation-requests/req_1/assign", {"reviewers": ["rev", "rev2"]}),
        ("POST /api/v1/allocation-requests/req_1/review", {"score": 4, "comment": "solid"}),
        (
            "POST /api/v1/allocation-requests/req_1/approve",
            {"items": {"A100": 1000}, "on_exhaustion": "preemptible", "comment": ""},
        ),
        ("POST /api/v1/allocation-requests/req_1/return", {"comment": "justify H100"}),
        ("POST /api/v1/allocation-requests/req_1/reject", {"comment": "no budget"}),
    ]
    assert axc("alloc", "reject", "req_1").exit_code == 2  # the reason is required
    assert "approved, allocation alc_new" in axc("alloc", "approve", "req_2").stdout


def test_balance_shows_left_and_warnings(axc: Any) -> None:
    result = axc("alloc", "balance")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "ALLOCATION", "PROJECT", "TYPE", "GPU-H", "LEFT", "WON", "LEFT", "USED", "ENDS",
    ]  # fmt: skip
    assert lines[1].split()[:2] == ["alc_ok", "vision"]
    assert "1800.0 / 2000.0" in lines[1] and "10%" in lines[1]
    assert lines[2].split()[-1] == "80%"
    assert lines[3].endswith("100% exhausted")
    assert "warning: allocation alc_warn of nlp is 80% used" in result.stdout
    assert "warning: allocation alc_gone of nlp is exhausted" in result.stdout
    as_json = json.loads(axc("alloc", "balance", "--json").stdout)
    assert [a["balance"]["warning"] for a in as_json] == ["none", "80%", "100%"]


def test_warnings_are_yellow_and_red() -> None:
    assert warning_text("80%").style == "bold yellow"
    assert warning_text("100%").style == "bold red"
    assert warning_text("none").plain == ""
    table = allocations_table([_allocation("alc_1", "p", 1.0, "100%")])
    cells = list(table.columns[-1].cells)
    assert cells[0].plain == "100% exhausted"
    assert parse_hours(["A100=5", "H100=1"]) == {"A100": 5, "H100": 1}


def test_program_price_and_user_commands(axc: Any, fake: AllocServer) -> None:
    result = axc("program", "create", "AX 2026", "--budget", "2400000000", "--public-share", "80")
    assert result.exit_code == 0, result.output
    assert "2,400,000,000 won, public/company 80/20" in result.stdout
    result = axc("price", "set", "H100", "4500")
    assert result.exit_code == 0, result.output
    assert "H100: 4,500 won per GPU-hour" in result.stdout
    result = axc("user", "create", "carol", "--role", "reviewer")
    assert result.exit_code == 0, result.output
    assert "axc_secret" in result.stdout  # the token, shown once
    assert axc("user", "create", "dave", "--role", "king").exit_code == 2
    assert axc("user", "revoke", "tok_1").exit_code == 0
    assert sent(fake) == [
        (
            "POST /api/v1/programs",
            {"name": "AX 2026", "budget_won": 2400000000, "public_share_bp": 8000,
             "description": ""},
        ),
        ("POST /api/v1/prices", {"gpu_type": "H100", "won_per_gpu_hour": 4500}),
        ("POST /api/v1/users", {"name": "carol", "role": "reviewer"}),
        ("DELETE /api/v1/tokens/tok_1", None),
    ]  # fmt: skip


def test_user_reset_password_prints_the_link_once_given(axc: Any, fake: AllocServer) -> None:
    result = axc("user", "reset-password", "alice")
    assert result.exit_code == 0, result.output
    assert "alice is signed out and has no password now" in result.stdout
    assert "http://gpu.example/ui/login/reset?code=once" in result.stdout
    assert sent(fake) == [("POST /api/v1/users/alice/password-reset", None)]


def test_project_group_keeps_limits_and_gains_list(axc: Any) -> None:
    result = axc("project", "--help")
    assert result.exit_code == 0
    for command in ("limits", "list", "create", "show", "add-member", "rm-member"):
        assert command in result.stdout
    listed = axc("project", "list")
    assert listed.exit_code == 0, listed.output
    assert "vision" in listed.stdout and "nlp" in listed.stdout


def test_project_show_says_how_gpu_jobs_are_paid() -> None:
    from axcenter.cli.projects import gpu_funding

    assert gpu_funding({"allocated": True}) == "charged to its active allocation"
    refused = gpu_funding({"allocated": False, "unallocated_gpu_jobs": "refuse"})
    assert refused is not None and refused.startswith("refused: no active allocation")
    free = gpu_funding({"allocated": False, "unallocated_gpu_jobs": "free"})
    assert free is not None and free.startswith("run free of charge")
    assert gpu_funding({"name": "from an older server"}) is None


def test_a_grant_nobody_reviewed_is_pointed_out() -> None:
    from axcenter.cli.alloc import unreviewed_grant

    submitted = {"action": "submitted"}
    answer = {"status": "approved", "kind": "new", "events": [submitted, {"action": "approved"}]}
    assert unreviewed_grant(answer)
    reviewed = {**answer, "events": [submitted, {"action": "reviewed"}, {"action": "approved"}]}
    assert not unreviewed_grant(reviewed)
    assert not unreviewed_grant({**answer, "kind": "termination"})  # grants nothing
    assert not unreviewed_grant({"status": "approved", "kind": "new"})  # no history sent
