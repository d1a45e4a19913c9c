"""The ``axc`` commands, run in-process against ``FakeServer`` via ``main.client_factory``."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from axcenter.cli import main
from axcenter.client import Config

from . import TOKEN, URL, FakeServer

# -- submit ---------------------------------------------------------------------------------


def test_submit_prints_only_the_id_and_sends_the_spec(
    axc: Any, fake: FakeServer, tmp_path: Path
) -> None:
    result = axc(
        "submit",
        "--project", "nlp",
        "--gpus", "2",
        "--gpu-type", "H100",
        "--gpu-type", "A100,L40S",
        "--nodes", "2",
        "--cpus", "8",
        "--mem", "16G",
        "--time-limit", "1h30m",
        "--priority", "5",
        "--name", "train",
        "--env", "A=1",
        "--env", "B=x=y",
        "--idempotency-key", "k-1",
        "--output", "discard",
        "--workdir", str(tmp_path),
        "--",
        "python", "train.py", "--lr", "3e-4",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (job_id,) = fake.jobs
    assert result.stdout == f"{job_id}\n"
    assert fake.bodies[-1] == {
        "project": "nlp",
        "name": "train",
        "command": ["python", "train.py", "--lr", "3e-4"],
        "workdir": str(tmp_path),
        "env": {"A": "1", "B": "x=y"},
        "gpus_per_node": 2,
        "nodes": 2,
        "cpus_per_node": 8,
        "memory_mb_per_node": 16384,
        "time_limit_s": 5400,
        "priority": 5,
        "gpu_types": ["H100", "A100", "L40S"],
        "output": "discard",
        "idempotency_key": "k-1",
    }


def test_submit_defaults(axc: Any, fake: FakeServer) -> None:
    result = axc("submit", "--", "true")
    assert result.exit_code == 0, result.output
    body = fake.bodies[-1]
    assert body.pop("idempotency_key").startswith("axc-")  # always sent, for retries
    assert body == {
        "command": ["true"],
        "env": {},
        "gpus_per_node": 1,
        "nodes": 1,
        "priority": 0,
        "gpu_types": [],
        "output": "log",
    }  # no working directory: the user's home on the center


def test_submit_relative_workdir_becomes_absolute(axc: Any, fake: FakeServer) -> None:
    assert axc("submit", "-w", "sub/dir", "--", "true").exit_code == 0
    assert fake.bodies[-1]["workdir"] == os.path.join(os.getcwd(), "sub", "dir")


def test_submit_without_dashes_keeps_command_options(axc: Any, fake: FakeServer) -> None:
    result = axc("submit", "--gpus", "0", "python", "x.py", "--gpus", "9")
    assert result.exit_code == 0, result.output
    assert fake.bodies[-1]["command"] == ["python", "x.py", "--gpus", "9"]
    assert fake.bodies[-1]["gpus_per_node"] == 0


def test_submit_env_key_alone_copies_local_value(axc: Any, fake: FakeServer) -> None:
    result = axc("submit", "--env", "AXC_TEST_VAR", "--", "env", env={"AXC_TEST_VAR": "v"})
    assert result.exit_code == 0, result.output
    assert fake.bodies[-1]["env"] == {"AXC_TEST_VAR": "v"}


def test_submit_empty_command_is_usage_error(axc: Any, fake: FakeServer) -> None:
    for args in (["submit"], ["submit", "--gpus", "1", "--"]):
        result = axc(*args)
        assert result.exit_code == 2
        assert "error: no command given" in result.stderr
        assert result.stdout == ""
    assert fake.requests == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--time-limit", "soon"], "invalid duration"),
        (["--time", "0"], "no time limit in Slurm"),
        (["--mem", "lots"], "invalid memory size"),
        (["--gpus", "-1"], "--gpus"),
        (["--env", "=x"], "KEY=VALUE"),
    ],
)
def test_submit_bad_local_input_exits_2(
    axc: Any, fake: FakeServer, args: list[str], message: str
) -> None:
    result = axc("submit", *args, "--", "true")
    assert result.exit_code == 2
    assert message in result.stderr
    assert fake.requests == []


def test_submit_api_validation_error_exits_1(axc: Any, fake: FakeServer) -> None:
    result = axc("submit", "--project", "nope", "--", "true")
    assert result.exit_code == 1
    assert result.stderr == "error: --project (project): unknown project 'nope'\n"
    assert result.stdout == ""
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_submit_wait_exits_like_wait(axc: Any, fake: FakeServer) -> None:
    original = fake._submit

    def submit_and_fail(user: str, spec: dict[str, Any]) -> Any:
        response = original(user, spec)
        fake.set_state(response.json()["id"], "failed", exit_code=3)
        return response

    fake._submit = submit_and_fail  # type: ignore[method-assign]
    result = axc("submit", "--wait", "--", "false")
    assert result.exit_code == 3
    (job_id,) = fake.jobs
    assert result.stdout == f"{job_id}\n"
    assert f"{job_id}: failed (exit code 3)" in result.stderr


# -- wait -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "fields", "code"),
    [
        ("succeeded", {"exit_code": 0}, 0),
        ("failed", {"exit_code": 3}, 3),
        ("failed", {"exit_code": None, "reason": "node lost"}, 1),
        ("failed", {"exit_code": -9}, 1),
        ("cancelled", {}, 1),
        ("timed_out", {}, 1),
    ],
)
def test_wait_exit_codes(
    axc: Any, fake: FakeServer, state: str, fields: dict[str, Any], code: int
) -> None:
    job = fake.add_job(state="running")
    fake.set_state(job["id"], state, **fields)
    result = axc("wait", job["id"])
    assert result.exit_code == code
    assert result.stdout == ""
    assert result.stderr.startswith(f"{job['id']}: {state}")


def test_wait_polls_until_done(axc: Any, fake: FakeServer) -> None:
    job = fake.add_job(state="running")
    fake.finish_after_polls[job["id"]] = 2
    result = axc("wait", job["id"], "--timeout", "30s")
    assert result.exit_code == 0
    assert fake.paths().count(f"GET /api/v1/jobs/{job['id']}/wait") == 2


def test_wait_timeout_exits_124(axc: Any, fake: FakeServer) -> None:
    job = fake.add_job(state="running")
    result = axc("wait", job["id"], "--timeout", "0.2")
    assert result.exit_code == 124
    assert "running (not finished" in result.stderr


def test_wait_unknown_job(axc: Any) -> None:
    result = axc("wait", "job_nope")
    assert result.exit_code == 1
    assert result.stderr == "error: no job job_nope\n"


# -- jobs, show, cancel, logs ---------------------------------------------------------------


def test_jobs_table(axc: Any, fake: FakeServer) -> None:
    prep = fake.add_job(name="prep", state="succeeded", gpus_per_node=0)
    train = fake.add_job(
        name="train",
        state="running",
        gpu_type="H100",
        gpus_per_node=2,
        started_at="2020-01-01T00:00:00Z",
    )
    ev = fake.add_job(name="eval", reason="waiting for GPUs", gpu_types=["A100"], nodes=2)
    result = axc("jobs")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "ID", "NAME", "PROJECT", "USER", "STATE", "GPUS", "REASON", "AGE", "RUNTIME",
    ]  # fmt: skip
    assert [line.split()[0] for line in lines[1:]] == [ev["id"], train["id"], prep["id"]]
    assert "1xA100 x2n" in lines[1]
    assert "waiting for GPUs" in lines[1]
    assert "2xH100" in lines[2]
    assert "d" in lines[2].split()[-1]  # running for years: days in the runtime column
    assert " cpu " in lines[3]
    assert fake.requests[-1].url.params["limit"] == "50"


def test_jobs_table_fits_the_terminal(axc: Any, fake: FakeServer) -> None:
    """One line per job within the terminal's width, whole ids, long text cut with …"""
    long = fake.add_job(name="n" * 60, reason="waiting for GPUs " * 5, project="hanbit-adas")
    short = fake.add_job(name="eval", state="running")
    result = axc("jobs", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all(len(line) <= 80 for line in lines), lines
    assert [line.split()[0] for line in lines[1:]] == [short["id"], long["id"]]
    assert "…" in lines[2] and "\x1b" not in result.stdout  # no colours into a pipe
    wide = axc("jobs", env={"COLUMNS": "200"}).stdout.splitlines()
    assert "n" * 24 not in wide[2] and "n" * 23 + "…" in wide[2]  # NAME: 24 at most


def test_jobs_filters_and_json(axc: Any, fake: FakeServer) -> None:
    mine = fake.add_job(state="running")
    fake.add_job(state="pending", user="bob")
    result = axc("jobs", "--state", "running", "-s", "pending", "--mine", "--json")
    assert result.exit_code == 0, result.output
    assert [j["id"] for j in json.loads(result.stdout)] == [mine["id"]]
    assert fake.requests[-1].url.params.get_list("state") == ["running", "pending"]


def test_jobs_all_follows_pages(axc: Any, fake: FakeServer) -> None:
    for _ in range(120):
        fake.add_job()
    result = axc("jobs", "--all", "--json")
    assert len(json.loads(result.stdout)) == 120
    assert len(json.loads(axc("jobs", "--json").stdout)) == 50


def test_jobs_unknown_state_is_usage_error(axc: Any, fake: FakeServer) -> None:
    assert axc("jobs", "--state", "sleeping").exit_code == 2
    assert fake.requests == []


def test_show(axc: Any, fake: FakeServer) -> None:
    job = fake.add_job(
        name="train",
        command=["python", "train.py", "--msg", "hello world"],
        env={"SEED": "1"},
        gpu_type="H100",
        placement=[{"node": "gpu-a", "devices": [0, 1]}],
        started_at="2024-05-01T10:00:00Z",
    )
    fake.set_state(job["id"], "failed", exit_code=3, reason="exit code 3")
    result = axc("show", job["id"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in (
        job["id"],
        "failed",
        "exit code 3",
        "python train.py --msg 'hello world'",
        "SEED=1",
        "gpu-a[0,1]",
        "2024-05-01 10:00:00 UTC",
        "events",
        "pending",
    ):
        assert text in out, text
    assert json.loads(axc("show", job["id"], "--json").stdout)["id"] == job["id"]


def test_show_says_where_a_waiting_job_is_in_the_queue(axc: Any, fake: FakeServer) -> None:
    job = fake.add_job(queue_position=4, queue_length=9)
    result = axc("show", job["id"])
    assert result.exit_code == 0, result.output
    assert "#4 of 9 waiting jobs" in result.stdout


def test_show_gives_each_runs_gpu_use(axc: Any, fake: FakeServer) -> None:
    usage = {
        "attempt": 1,
        "ended_at": "2024-05-01T11:00:00Z",
        "samples": 360,
        "util_mean_pct": 2,
        "util_max_pct": 7,
        "memory_max_mib": 1024,
        "idle_bp": 9722,
    }
    job = fake.add_job(state="succeeded", gpu_usage=[usage])
    result = axc("show", job["id"])
    assert result.exit_code == 0, result.output
    assert "GPU use" in result.stdout
    assert "run 1: mean 2%, peak 7%, memory peak 1,024 MiB, idle 97.22% of 360 samples" in (
        " ".join(result.stdout.split())
    )


def test_cancel_reports_each_job(axc: Any, fake: FakeServer) -> None:
    running = fake.add_job(state="running")
    done = fake.add_job(state="succeeded")
    result = axc("cancel", running["id"], done["id"], "job_nope")
    assert result.exit_code == 1
    assert result.stdout == f"{running['id']}: cancelled\n"
    assert f"error: {done['id']}: job {done['id']} is already succeeded" in result.stderr
    assert "error: job_nope: no job job_nope" in result.stderr


def test_checkpoint_reports_the_job_of_its_environment(axc: Any, fake: FakeServer) -> None:
    running = fake.add_job(state="running")
    result = axc("checkpoint", env={"AXC_JOB_ID": running["id"]})  # as inside the job
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{running['id']}: checkpoint at 20")
    assert running["last_checkpoint_at"] is not None
    assert "last checkpoint" in axc("show", running["id"]).stdout
    done = fake.add_job(state="succeeded")
    refused = axc("checkpoint", done["id"])
    assert refused.exit_code == 1
    assert "only a running job checkpoints" in refused.stderr
    missing = axc("checkpoint", env={"AXC_JOB_ID": None})
    assert missing.exit_code == 2 and "JOB" in missing.output


def test_logs_prints_bytes(axc: Any, fake: FakeServer) -> None:
    job = fake.add_job(state="succeeded")
    fake.logs[job["id"]] = b"line 1\n\xffbinary\n"
    result = axc("logs", job["id"])
    assert result.exit_code == 0
    assert result.stdout_bytes == b"line 1\n\xffbinary\n"


def test_logs_follow_reads_until_terminal_and_drained(axc: Any, fake: FakeServer) -> None:
    job = fake.add_job(state="running")
    fake.log_script[job["id"]] = [b"one\n", b"", b"two\n", b"three\n"]
    result = axc("logs", "-f", job["id"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "one\ntwo\nthree\n"
    offsets = [r.url.params["offset"] for r in fake.requests if r.url.path.endswith("/log")]
    assert offsets == ["0", "4", "4", "8", "14"]


def test_logs_without_follow_stops_at_the_end(axc: Any, fake: FakeServer) -> None:
    job = fake.add_job(state="running")
    fake.logs[job["id"]] = b"partial\n"
    result = axc("logs", job["id"])
    assert result.stdout == "partial\n"
    assert result.exit_code == 0


# -- cluster, whoami ------------------------------------------------------------------------


def test_cluster_renders_nodes_devices_and_summary(axc: Any) -> None:
    result = axc("cluster")
    assert result.exit_code == 0, result.output
    out = result.stdout
    node_a = next(line for line in out.splitlines() if line.startswith("gpu-a") and "H100" in line)
    assert node_a.split() == ["gpu-a", "H100", "logical", "up", "1/2", "32", "256G"]
    node_b = next(line for line in out.splitlines() if line.startswith("gpu-b") and "A100" in line)
    assert node_b.split() == ["gpu-b", "A100", "physical", "drain", "1/1", "16", "128G"]
    holder = next(line for line in out.splitlines() if "job_000000000000000042" in line)
    assert holder.split() == ["gpu-a", "0", "job_000000000000000042", "alice", "vision"]
    free = [line.split() for line in out.splitlines() if "free" in line]
    assert free == [["gpu-a", "1", "free"]]
    hidden = next(line for line in out.splitlines() if "other tenant" in line)
    assert hidden.split()[:3] == ["gpu-b", "0", "busy"]
    assert "GPUs 2/3 used" in out
    assert "pending 4" in out
    assert json.loads(axc("cluster", "--json").stdout)["summary"]["gpus_used"] == 2


def test_whoami(axc: Any) -> None:
    result = axc("whoami")
    assert result.exit_code == 0
    assert "alice" in result.stdout
    assert URL in result.stdout
    assert json.loads(axc("whoami", "--json").stdout)["role"] == "member"


def test_bad_token_hints_login(axc: Any) -> None:
    result = axc("whoami", env={"AXC_TOKEN": "wrong"})
    assert result.exit_code == 1
    assert "error: invalid or missing token (run `axc login`" in result.stderr


def test_unreachable_server_is_one_line_error(axc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(main, "client_factory", main.default_client_factory)
    result = axc("whoami", env={"AXC_URL": "http://127.0.0.1:9", "AXC_RETRY_S": "0"})
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot reach axcenter at http://127.0.0.1:9")
    assert "Traceback" not in result.output


# -- login and config -----------------------------------------------------------------------

NO_ENV: dict[str, str | None] = {"AXC_URL": None, "AXC_TOKEN": None}


def test_no_config_is_an_error_naming_login(axc: Any) -> None:
    result = axc("jobs", env=NO_ENV)
    assert result.exit_code == 2
    assert "axc login" in result.stderr
    assert "AXC_URL" in result.stderr


def test_login_writes_private_config_used_later(axc: Any, xdg: Path, configs: list[Config]) -> None:
    result = axc("login", "--url", URL, input=f"{TOKEN}\n", env=NO_ENV)
    assert result.exit_code == 0, result.output
    assert "alice" in result.stdout
    assert TOKEN not in result.output  # the prompt hides the token
    path = xdg / "axcenter" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"url": URL, "token": TOKEN}

    assert axc("whoami", env=NO_ENV).exit_code == 0
    assert configs[-1] == Config(URL, TOKEN)

    # the environment beats the file, and flags beat the environment
    axc("whoami", env={"AXC_URL": "http://env:1", "AXC_TOKEN": None})
    assert configs[-1] == Config("http://env:1", TOKEN)
    axc("whoami", env={"AXC_URL": None, "AXC_TOKEN": "tok-bob"})
    assert configs[-1] == Config(URL, "tok-bob")
    axc("--url", "http://flag:2", "--token", "t", "whoami", env={"AXC_TOKEN": "tok-bob"})
    assert configs[-1] == Config("http://flag:2", "t")


def test_login_with_token_option_and_global_url(axc: Any, xdg: Path) -> None:
    result = axc("--url", URL, "login", "--token", "tok-bob", env=NO_ENV)
    assert result.exit_code == 0, result.output
    assert "bob" in result.stdout
    saved = json.loads((xdg / "axcenter" / "config.json").read_text())
    assert saved == {"url": URL, "token": "tok-bob"}


def test_login_replaces_a_broken_config(axc: Any, xdg: Path) -> None:
    path = xdg / "axcenter" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text("{oops")
    assert axc("whoami", env=NO_ENV).exit_code == 2
    result = axc("login", "--url", URL, "--token", TOKEN, env=NO_ENV)
    assert result.exit_code == 0, result.output
    assert json.loads(path.read_text())["token"] == TOKEN


def test_login_with_bad_token_writes_nothing(axc: Any, xdg: Path) -> None:
    result = axc("login", "--url", URL, "--token", "wrong", env=NO_ENV)
    assert result.exit_code == 1
    assert "invalid or missing token" in result.stderr
    assert not (xdg / "axcenter" / "config.json").exists()


def test_version(axc: Any) -> None:
    result = axc("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("axc ")


def test_commands_start_without_the_simulator() -> None:
    """`axc submit` does not import the scheduler or the simulator: `axc sim` loads them."""
    code = (
        "import sys, axcenter.cli.main; "
        "print([m for m in sys.modules if m.startswith(('axcenter.sim', 'axcenter.sched'))])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_sim_is_listed_and_loaded_on_use() -> None:
    runner = CliRunner()
    listed = runner.invoke(main.app, ["--help"])
    assert listed.exit_code == 0 and "Replay traces in simulated time" in listed.output
    shown = runner.invoke(main.app, ["sim", "--help"])
    assert shown.exit_code == 0, shown.output
    assert "capacity" in shown.output and "--install-completion" not in shown.output


def _all_commands() -> list[list[str]]:
    """Every command and sub-command of ``axc``, as words (loads each lazily)."""
    root = typer.main.get_command(main.app)
    ctx = root.make_context("axc", ["--help"], resilient_parsing=True)
    found = []
    for name in root.list_commands(ctx):
        command = root.get_command(ctx, name)
        found.append([name])
        for sub in getattr(command, "commands", {}):
            found.append([name, sub])
    return found


#: Typer's placeholders, brackets doubled, dots tripled twice
_PLACEHOLDER = r"<[a-z][a-z _|.-]*>|\{[A-Z-][^}]*\}|\[\[|\]\.\.\.\.\."


def test_every_help_renders_as_written() -> None:
    """No Rich markup eats brackets, no reStructuredText quotes leak into help."""
    runner = CliRunner()
    commands = _all_commands()
    assert ["submit"] in commands and ["quota", "set"] in commands and ["sim", "run"] in commands
    assert ["export", "history"] in commands  # a group of one command stays a group
    for words in commands:
        result = runner.invoke(main.app, [*words, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (words, result.output)
        assert "``" not in result.output, words
        # Typer's own placeholders (``<str>``, ``<int range>``, ``<a|b>``, ``{JOB}``) read
        # as markup: every value and argument is named as Click and Slurm name them
        placeholder = re.search(
            r"<[a-z][a-z _|.-]*>|\{[A-Z-][^}]*\}|\[\[|\]\.\.\.\.\.", result.output
        )
        assert placeholder is None, (words, placeholder and placeholder.group())
    up = runner.invoke(main.app, ["up", "--help"], env={"COLUMNS": "200"}).output
    assert "[env AXC_PORT]" in up and "TYPE:GPUS[xNODES]" in up
    show = runner.invoke(main.app, ["show", "--help"]).output
    assert "Usage: axc show [OPTIONS] JOB\n" in show
    cancel = runner.invoke(main.app, ["cancel", "--help"], env={"COLUMNS": "200"}).output
    assert "--user USER " in cancel and "[JOB...]  Job ids" in cancel
    assert "--state [pending|admitted|" in cancel


def test_the_root_help_lists_each_command_with_its_own_words() -> None:
    """``axc --help`` lists commands from main's tables without importing them: the
    tables must say what each command says of itself."""
    root = typer.main.get_command(main.app)
    ctx = root.make_context("axc", ["--help"], resilient_parsing=True)
    for name, (_, _, text) in {**main._COMMANDS, **main._GROUPS}.items():
        assert root.get_command(ctx, name).get_short_help_str(limit=1000) == text, name
    code = "import sys; from axcenter.cli.main import app; app(['--help'])"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "sim          Replay traces" in done.stdout
    loaded = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
    assert not loaded & {"rich", "httpx", "axcenter.cli.alloc", "axcenter.cli.sim"}


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [("axc su", 1, "submit"), ("axc quota ", 2, "set"), ("axc submit --gre", 2, "--gres")],
)
def test_bash_completion(words: str, cword: int, expected: str) -> None:
    """What completions/axc.bash asks ``axc`` for on each TAB, lazy commands included."""
    env = {**os.environ, "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    env["_AXC_COMPLETE"] = "complete_bash"
    code = "from axcenter.cli.main import app; app(prog_name='axc')"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, check=False, capture_output=True, text=True
    )
    assert expected in done.stdout.split(), done


def test_completion_scripts_are_what_axc_generates() -> None:
    scripts = Path(__file__).parents[2] / "completions"
    for shell, name in (("bash", "axc.bash"), ("zsh", "_axc")):
        env = {**os.environ, "_AXC_COMPLETE": f"source_{shell}"}
        code = "from axcenter.cli.main import app; app(prog_name='axc')"
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, check=False, capture_output=True, text=True
        )
        assert done.stdout == (scripts / name).read_text(), shell


def test_a_window_past_the_calendar_is_a_usage_error(axc: Any, fake: FakeServer) -> None:
    """Days or durations that leave years 1-9999 name the option (no traceback)."""
    result = axc("acct", "-S", "99999999d")
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--since': 273,785 years before" in result.stderr
    assert "is before the year 1" in result.stderr
    assert fake.requests == []


def test_srun_needs_a_job_and_exits_like_its_step(axc: Any) -> None:
    """Outside a job, `axc srun` asks which job; its exit status is the step's own."""
    from axcenter.cli.steps import _step_exit_status

    result = axc("srun", "--", "true", env={"AXC_JOB_ID": None})
    assert result.exit_code == 2 and "give --jobid JOB" in result.stderr
    bad = axc("srun", "--jobid", "job_x", "--env", "NOEQUALS", "--", "true")
    assert bad.exit_code == 2 and "--env takes KEY=VALUE" in bad.stderr
    assert [_step_exit_status({"exit_code": c}) for c in (0, 3, -9, None)] == [0, 3, 137, 1]
