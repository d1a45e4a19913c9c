"""``axc jobs``/``cancel``/``wait``/``logs``/``show``/``acct`` as a Slurm user reaches for
``squeue``, ``scancel`` and ``sacct``: filters, scheduling order, array tasks, accounting."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import FakeServer


def _array(fake: FakeServer, states: list[str]) -> list[dict[str, Any]]:
    return [
        fake.add_job(array_id="arr_x", array_index=i * 2, state=s, name="sweep")
        for i, s in enumerate(states)
    ]


def test_jobs_filters_by_user_and_name(axc: Any, fake: FakeServer) -> None:
    fake.add_job(name="train", user="alice")
    fake.add_job(name="eval", user="bob")
    fake.add_job(name="train", user="bob")
    result = axc("jobs", "--user", "bob", "--name", "train,eval", "--json")
    assert result.exit_code == 0, result.output
    assert sorted((j["user"], j["name"]) for j in json.loads(result.stdout)) == [
        ("bob", "eval"),
        ("bob", "train"),
    ]
    assert fake.requests[-1].url.params.get_list("user") == ["bob"]


def test_jobs_start_lists_the_queue_in_order(axc: Any, fake: FakeServer) -> None:
    first = fake.add_job(name="a")
    fake.add_job(name="b", state="running")
    second = fake.add_job(name="c")
    result = axc("jobs", "--start")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "job_" in line]
    assert [line.split()[:2] for line in lines] == [["1", first["id"]], ["2", second["id"]]]
    assert "resources" in lines[0]


def test_task_ids_are_shown_as_array_index(axc: Any, fake: FakeServer) -> None:
    _array(fake, ["pending", "running"])
    result = axc("jobs")
    assert "arr_x_0" in result.stdout and "arr_x_2" in result.stdout


def test_cancel_by_filter_takes_own_jobs_not_ended(axc: Any, fake: FakeServer) -> None:
    mine = fake.add_job(name="sweep", user="alice")
    fake.add_job(name="sweep", user="alice", state="succeeded")
    theirs = fake.add_job(name="sweep", user="bob")
    result = axc("cancel", "--name", "sweep")
    assert result.exit_code == 0, result.output
    assert fake.jobs[mine["id"]]["state"] == "cancelled"
    assert fake.jobs[theirs["id"]]["state"] == "pending"
    assert result.stdout.split() == [f"{mine['id']}:", "cancelled"]


def test_cancel_needs_ids_or_filters_not_both(axc: Any, fake: FakeServer) -> None:
    job = fake.add_job()
    assert axc("cancel").exit_code == 2
    both = axc("cancel", job["id"], "--user", "alice")
    assert both.exit_code == 2 and "not both" in both.stderr
    assert fake.jobs[job["id"]]["state"] == "pending"


def test_wait_on_an_array_exits_with_its_worst_task(axc: Any, fake: FakeServer) -> None:
    tasks = _array(fake, ["succeeded", "failed", "succeeded"])
    tasks[1]["exit_code"] = 3
    result = axc("wait", "arr_x")
    assert result.exit_code == 3
    assert "arr_x: 1 failed, 2 succeeded" in result.stderr
    tasks[1]["state"], tasks[1]["exit_code"] = "succeeded", 0
    assert axc("wait", "arr_x").exit_code == 0


def test_logs_of_an_array_in_index_order(axc: Any, fake: FakeServer) -> None:
    tasks = _array(fake, ["succeeded", "succeeded"])
    fake.logs[tasks[0]["id"]] = b"zero\n"
    fake.logs[tasks[1]["id"]] = b"two\n"
    result = axc("logs", "arr_x")
    assert result.exit_code == 0, result.output
    assert result.stdout == "==> arr_x_0 <==\nzero\n==> arr_x_2 <==\ntwo\n"
    follow = axc("logs", "arr_x", "--follow")
    assert follow.exit_code == 2 and "axc logs arr_x_INDEX --follow" in follow.stderr


def test_show_a_task_says_its_array_and_index(axc: Any, fake: FakeServer) -> None:
    (task,) = _array(fake, ["running"])
    result = axc("show", task["id"])
    assert result.exit_code == 0, result.output
    assert "array task" in result.stdout and "arr_x_0 (index 0)" in result.stdout


ACCOUNT = {
    "id": "job_1",
    "name": "train",
    "user": "alice",
    "project": "vision",
    "state": "succeeded",
    "array_id": None,
    "array_index": None,
    "gpus": 2,
    "gpu_type": "H100",
    "submitted_at": "2026-12-01T00:00:00Z",
    "started_at": "2026-12-01T00:00:00Z",
    "ended_at": "2026-12-01T01:30:00Z",
    "elapsed_s": 5400,
    "gpu_seconds": 10800,
    "charged_won": 3000,
    "exit_code": 0,
}


def test_acct_table_and_csv(axc: Any, fake: FakeServer) -> None:
    task = {**ACCOUNT, "id": "job_2", "array_id": "arr_y", "array_index": 4, "charged_won": 500}
    fake.accounting = {"items": [ACCOUNT, task], "truncated": False}
    table = axc("acct", "-S", "7d", "-u", "alice,bob")
    assert table.exit_code == 0, table.output
    assert "1h30m" in table.stdout and "3.00" in table.stdout and "arr_y_4" in table.stdout
    assert "2 jobs" in table.stdout and "6.00" in table.stdout and "3,500" in table.stdout
    params = fake.requests[-1].url.params
    assert params.get_list("user") == ["alice", "bob"] and "since" in params
    out = axc("acct", "--csv", "-")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [(r["job_id"], r["task"], r["gpu_hours"], r["charged_won"]) for r in rows] == [
        ("job_1", "", "3.00", "3000"),
        ("job_2", "arr_y_4", "3.00", "500"),
    ]


def test_usage_report_ends_now_unless_told(axc: Any, fake: FakeServer) -> None:
    """ "to now" means to now: grants are counted up to now, not to their end."""
    before = datetime.now(UTC)
    assert axc("report", "usage").exit_code == 0
    until = datetime.fromisoformat(fake.requests[-1].url.params["until"])
    assert before <= until <= datetime.now(UTC)
    assert axc("report", "usage", "--until", "2030-01").exit_code == 0
    assert fake.requests[-1].url.params["until"].startswith("2030-01-01T00:00:00")
    assert axc("report", "usage", "--since", "2999-01").exit_code == 0
    assert "until" not in fake.requests[-1].url.params  # a future start: no end of "now"


def test_burndown_csv_goes_to_a_file_as_usage_does(
    axc: Any, fake: FakeServer, tmp_path: Path
) -> None:
    out = tmp_path / "burn.csv"
    result = axc("report", "burndown", "AX", "--csv", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text() == "day,charged_won\n2026-12-01,10\n2026-12-02,5\n"
    assert result.stdout == "" and "wrote 2 days" in result.stderr
    assert axc("report", "burndown", "AX", "--csv", "-").stdout.startswith("day,")


def test_hold_release_update(axc: Any, fake: FakeServer) -> None:
    waiting = fake.add_job()
    done = fake.add_job(state="succeeded")
    held = axc("hold", waiting["id"], done["id"])
    assert held.exit_code == 1  # one of them could not be held
    assert f"{waiting['id']}: pending (held)" in held.stdout
    assert f"{done['id']}: job {done['id']} is no longer pending" in held.stderr
    assert fake.jobs[waiting["id"]]["held"] is True
    updated = axc("update", waiting["id"], "-t", "90", "--priority", "3")
    assert updated.exit_code == 0, updated.output
    assert fake.bodies[-1] == {"time_limit_s": 5400, "priority": 3}
    assert axc("update", waiting["id"]).exit_code == 2  # nothing to change
    assert axc("release", waiting["id"]).exit_code == 0
    assert fake.jobs[waiting["id"]]["held"] is False


def test_requeue(axc: Any, fake: FakeServer) -> None:
    done = fake.add_job(state="failed")
    waiting = fake.add_job()
    result = axc("requeue", "--hold", done["id"], waiting["id"])
    assert result.exit_code == 1  # the pending one could not be requeued
    assert f"{done['id']}: pending (held)" in result.stdout
    assert f"{waiting['id']}: job {waiting['id']} is pending already" in result.stderr
    assert fake.jobs[done["id"]]["held"] is True


def test_an_array_id_stands_for_its_tasks(axc: Any, fake: FakeServer) -> None:
    """As Slurm's array job id: hold acts on the array's pending tasks, requeue on those
    that ran or ended, in index order; an unknown array is an error naming it."""
    done = fake.add_job(array_id="arr_1", array_index=0, state="succeeded")
    waiting = fake.add_job(array_id="arr_1", array_index=1)
    held = axc("hold", "arr_1")
    assert held.exit_code == 0, held.output
    assert held.stdout == f"{waiting['id']}: pending (held)\n"
    requeued = axc("requeue", "arr_1", "arr_nope")
    assert requeued.exit_code == 1
    assert requeued.stdout == f"{done['id']}: pending\n"
    assert "arr_nope: no array 'arr_nope'" in requeued.stderr
    assert fake.jobs[done["id"]]["state"] == "pending"
    none_left = axc("requeue", "arr_1")  # every task is pending now
    assert none_left.exit_code == 1
    assert "error: arr_1: no task of array arr_1 is running or ended" in none_left.stderr


def test_submit_held_and_sbatch_hold_directive(axc: Any, fake: FakeServer, tmp_path: Path) -> None:
    assert axc("submit", "-H", "--", "true").exit_code == 0
    assert fake.bodies[-1]["held"] is True
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\n#SBATCH --hold\ntrue\n")
    assert axc("submit", str(script)).exit_code == 0
    assert fake.bodies[-1]["held"] is True
    both = axc("submit", "--hold", "--wait", "--", "true")
    assert both.exit_code == 2 and "a held job would never end" in both.stderr


def test_a_forecast_beyond_the_calendar_says_so_in_years() -> None:
    from axcenter.cli.reports import forecast_line

    line = forecast_line(
        {"budget_won": 10**9, "remaining_won": 10**9, "rate_won_per_day": "1", "forecast": None}
    )
    assert line == (
        "1,000,000,000 of 1,000,000,000 won left; at 1 won/day (last 7 days) it lasts more "
        "than 2,739,726 years: no end in sight"
    )


def test_the_forecast_line_gives_the_band_and_the_running_jobs() -> None:
    from axcenter.cli.reports import forecast_line

    line = forecast_line(
        {
            "budget_won": 100_000,
            "remaining_won": 76_000,
            "rate_won_per_day": "2000.00",
            "forecast": "2025-04-17",
            "forecast_early": "2025-03-18",
            "forecast_late": None,
            "now": "2025-03-10T12:00:00Z",
            "running_jobs": 3,
            "accrued_won": 1_234,
        }
    )
    assert line == (
        "76,000 of 100,000 won left; at 2,000 won/day (last 7 days) the budget runs out on "
        "2025-04-17 (in 38 days); between 2025-03-18 and never at the fastest and slowest "
        "7-day rates; 3 running job(s) used 1,234 won since their last charge"
    )
