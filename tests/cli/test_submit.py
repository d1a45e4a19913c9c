"""``axc submit`` as a Slurm user writes it: options, formats and batch scripts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from . import FakeServer


def _body(fake: FakeServer) -> dict[str, Any]:
    body = fake.bodies[-1]
    assert isinstance(body, dict)
    return body


def test_slurm_spellings(axc: Any, fake: FakeServer, tmp_path: Path) -> None:
    result = axc(
        "submit", "-t", "90", "-J", "train", "-A", "nlp", "--gres=gpu:H100:2",
        "-N", "2", "--cpus-per-task", "4", "-D", str(tmp_path), "-o", "out-%j.log",
        "-e", "err-%j.log", "--", "python", "x.py",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    body = _body(fake)
    assert body["time_limit_s"] == 90 * 60  # minutes, as in Slurm
    assert (body["name"], body["project"], body["workdir"]) == ("train", "nlp", str(tmp_path))
    assert (body["gpus_per_node"], body["gpu_types"], body["nodes"]) == (2, ["H100"], 2)
    assert body["cpus_per_node"] == 4
    assert (body["output"], body["output_path"], body["error_path"]) == (
        "log",
        "out-%j.log",
        "err-%j.log",
    )


@pytest.mark.parametrize(
    ("args", "gpus", "types"),
    [
        (["--gpus", "H100:4"], 4, ["H100"]),
        (["--gpus-per-node", "3"], 3, []),
        (["--gres", "gpu"], 1, []),
        (["--gres", "gpu:2"], 2, []),
        (["--gres", "gpu:A100"], 1, ["A100"]),
        (["--gpus", "0"], 0, []),
    ],
)
def test_gpu_requests(
    axc: Any, fake: FakeServer, args: list[str], gpus: int, types: list[str]
) -> None:
    result = axc("submit", *args, "--", "true")
    assert result.exit_code == 0, result.output
    assert (_body(fake)["gpus_per_node"], _body(fake)["gpu_types"]) == (gpus, types)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gres", "nvme:1"], "axcenter schedules GPUs only"),
        (["--gpus", "lots"], "invalid GPU request 'lots'"),
        (["--time", "1-2-3"], "invalid duration '1-2-3'"),
        (["--time", "UNLIMITED"], "every axcenter job has one"),
        (["--mem", "100T"], "at most 64T"),
        (["--array", "1,3,x"], "cannot read 'x'"),
        (["--output", "out-%q.log"], "'%q' in 'out-%q.log' is not a replacement symbol"),
        (["--error", "discard"], "--error takes a file name pattern"),
    ],
)
def test_bad_input_names_the_option(
    axc: Any, fake: FakeServer, args: list[str], message: str
) -> None:
    result = axc("submit", *args, "--", "true")
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())
    assert fake.requests == []


def test_array_list_goes_to_the_server_as_written(axc: Any, fake: FakeServer) -> None:
    result = axc("submit", "--array", "1,3,5-9:2", "--", "true")
    assert result.exit_code == 0, result.output
    assert result.stdout == "arr_1\n"
    assert fake.paths()[-1] == "POST /api/v1/arrays"


def test_output_discard_spellings(axc: Any, fake: FakeServer) -> None:
    for spelling in ("discard", "/dev/null"):
        assert axc("submit", "-o", spelling, "--", "true").exit_code == 0
        assert (_body(fake)["output"], _body(fake).get("output_path")) == ("discard", None)


def test_wrap(axc: Any, fake: FakeServer) -> None:
    assert axc("submit", "--wrap", "echo hi | wc -c").exit_code == 0
    assert _body(fake)["command"] == ["/bin/sh", "-c", "echo hi | wc -c"]


SCRIPT = """#!/bin/bash
# a comment before the directives
#SBATCH --job-name=from-script --time=1-00:00:00
#SBATCH -N 2 --gpus=8
#SBATCH --mem=64G --export=A=1,B=2
#SBATCH --mail-type=END   # ignored, with a note
#AXC --gpu-type H100,A100 --priority 3

echo start
#SBATCH --time=5   # after the first command: not a directive
"""


def test_batch_script_directives(axc: Any, fake: FakeServer, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text(SCRIPT)
    result = axc("submit", "--priority", "7", "--env", "B=cli", str(script), "one", "two")
    assert result.exit_code == 0, result.output
    body = _body(fake)
    # the script's content goes with the job, as sbatch ships it; its path names it
    assert body["command"] == [str(script.resolve()), "one", "two"]
    assert body["script"] == SCRIPT
    assert body["name"] == "from-script"
    assert body["time_limit_s"] == 86400  # the first command ends the directives
    assert (body["nodes"], body["gpus_per_node"]) == (2, 4)  # --gpus is for all nodes
    assert body["memory_mb_per_node"] == 64 * 1024
    assert body["gpu_types"] == ["H100", "A100"]
    assert body["priority"] == 7  # the command line wins
    assert body["env"] == {"A": "1", "B": "cli"}
    assert "line 6 (#SBATCH --mail-type=END): --mail-type ignored: axcenter sends no mail" in (
        " ".join(result.stderr.split())
    )


def test_batch_script_refusals_name_each_line(axc: Any, fake: FakeServer, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/sh\n#SBATCH --constraint=a100\n#SBATCH --mem-per-cpu=4G -p gpu\n"
        "#SBATCH --frobnicate\ntrue\n"
    )
    result = axc("submit", str(script))
    assert result.exit_code == 2
    err = " ".join(result.stderr.split())
    assert "line 2 (#SBATCH --constraint=a100): --constraint refused: axcenter has no node" in err
    assert "line 3 (#SBATCH --mem-per-cpu=4G -p gpu): --mem-per-cpu refused" in err
    assert "line 4 (#SBATCH --frobnicate): --frobnicate is not an sbatch option" in err
    assert fake.requests == []


def test_batch_script_bad_value_names_its_line(axc: Any, fake: FakeServer, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\n#SBATCH --time=soon\ntrue\n")
    result = axc("submit", str(script))
    assert result.exit_code == 2
    err = " ".join(result.stderr.split())
    assert "line 2 (#SBATCH --time=soon)" in err and "invalid duration 'soon'" in err


def test_batch_script_needs_an_interpreter_line(axc: Any, fake: FakeServer, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#SBATCH -t 5\ntrue\n")
    result = axc("submit", str(script))
    assert result.exit_code == 2
    assert "must be #! and its interpreter" in " ".join(result.stderr.split())


def test_a_script_after_dashes_runs_as_a_command(
    axc: Any, fake: FakeServer, tmp_path: Path
) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\n#SBATCH --time=5\ntrue\n")
    assert axc("submit", "--", str(script)).exit_code == 0
    assert _body(fake)["command"] == [str(script)]
    assert "time_limit_s" not in _body(fake)


def test_relative_script_path_is_resolved(
    axc: Any, fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("run.sh").write_text("#!/usr/bin/env bash\ntrue\n")
    assert axc("submit", "run.sh").exit_code == 0
    body = _body(fake)
    assert body["command"] == [os.path.join(tmp_path, "run.sh")]
    assert body["script"] == "#!/usr/bin/env bash\ntrue\n"


def test_dependency_on_the_command_line_and_in_a_script(
    axc: Any, fake: FakeServer, tmp_path: Path
) -> None:
    assert axc("submit", "-d", "afterok:job_1:job_2,singleton", "--", "true").exit_code == 0
    assert _body(fake)["dependency"] == "afterok:job_1:job_2,singleton"
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\n#SBATCH --dependency=afterany:arr_x_3\ntrue\n")
    assert axc("submit", str(script)).exit_code == 0
    assert _body(fake)["dependency"] == "afterany:arr_x_3"
    bad = axc("submit", "--dependency", "after:5", "--", "true")
    assert bad.exit_code == 2 and "cannot read 'after:5'" in " ".join(bad.stderr.split())
    either = axc("submit", "--dependency", "afterok:job_1?afterok:job_2", "--", "true")
    assert either.exit_code == 2 and "'?' (any of) is not supported" in either.stderr


def test_exclusive(axc: Any, fake: FakeServer, tmp_path: Path) -> None:
    assert axc("submit", "--exclusive", "--gpu-type", "H100", "--", "true").exit_code == 0
    assert _body(fake)["exclusive"] is True
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\n#SBATCH --exclusive\ntrue\n")
    assert axc("submit", str(script)).exit_code == 0
    assert _body(fake)["exclusive"] is True
