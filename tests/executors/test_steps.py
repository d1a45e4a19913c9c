"""``Engine.run_step`` (srun in a live run's allocation) on the local and fake engines:
the step gets the run's environment and devices, its output as it comes, its exit code;
cancelling ends it and everything it started; the run's end ends it; a run that is not
live refuses it. Confinement (the run's uid and control group) is proven against a real
center as root in tests/api/test_steps.py."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from axcenter.executors.base import LaunchError, Outcome, RunSpec, StepEnded, StepSpec, StopReason
from axcenter.executors.fake import FakeEngine
from tests.executors.test_local import NODES, Harness, gone, wait_for


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    harness = Harness(tmp_path)
    yield harness  # type: ignore[misc]
    harness.engine.close(stop_runs=True, grace_s=0.5)


def _step(run: RunSpec, n: int, script: str, **env: str) -> StepSpec:
    return StepSpec(run, n, ("sh", "-c", script), env)


def test_a_step_runs_in_the_runs_environment_and_streams_its_output(h: Harness) -> None:
    run = h.run(
        "j1", "sleep 30", devices=(("local-1", (2, 3)),), extra_env={"AXC_ARRAY_INDEX": "4"}
    )
    chunks: list[bytes] = []
    script = "echo $CUDA_VISIBLE_DEVICES $AXC_JOB_ID $AXC_RUN_ID $AXC_STEP_ID $AXC_ARRAY_INDEX $V"
    script += "; exit 5"
    ended = h.engine.run_step(
        _step(run, 0, script, V="mine", AXC_JOB_ID="forged"), chunks.append, threading.Event()
    )
    assert b"".join(chunks) == b"2,3 j1 j1.1 0 4 mine\n"  # axcenter's variables win
    assert (ended.outcome, ended.exit_code) == (Outcome.FAILED, 5)
    assert ended.started_at is not None and ended.ended_at >= ended.started_at
    assert h.log("j1") == ""  # a step's output is its caller's, not the job's log


def test_cancel_ends_the_step_and_what_it_started(h: Harness, tmp_path: Path) -> None:
    run = h.run("j2", "sleep 30")
    pids = tmp_path / "pids"
    cancel = threading.Event()
    result: list[StepEnded] = []
    script = f"sleep 300 & echo $! > {pids}; echo started; wait"

    def output(chunk: bytes) -> None:
        if b"started" in chunk:
            cancel.set()

    thread = threading.Thread(
        target=lambda: result.append(h.engine.run_step(_step(run, 0, script), output, cancel))
    )
    thread.start()
    thread.join(15)
    assert not thread.is_alive() and result[0].outcome is Outcome.CANCELLED, result
    wait_for(lambda: gone(int(pids.read_text())), "the step's child to be killed")
    assert run.run_id in h.engine.running()  # the run itself goes on


def test_the_runs_end_ends_its_steps(h: Harness) -> None:
    run = h.run("j3", "sleep 30")
    result: list[StepEnded] = []
    started = threading.Event()
    thread = threading.Thread(
        target=lambda: result.append(
            h.engine.run_step(
                _step(run, 0, "echo up; exec sleep 300"),
                lambda chunk: started.set(),
                threading.Event(),
            )
        )
    )
    thread.start()
    assert started.wait(10)
    h.engine.stop(run.run_id, StopReason.CANCEL, 0.5)
    thread.join(15)
    assert not thread.is_alive(), "the step outlived its run"
    # unconfined, the engine ends it; confined, the run's group is emptied as well
    # (tests/api/test_steps.py)
    assert result[0].outcome is Outcome.FAILED, result
    assert result[0].message.startswith("ended with its job"), result


def test_no_step_outside_a_live_run(h: Harness) -> None:
    run = h.run("j4", "true")
    h.end()
    with pytest.raises(LaunchError, match="is not running"):
        h.engine.run_step(_step(run, 0, "true"), lambda c: None, threading.Event())


def test_the_fake_engine_runs_steps_of_live_runs_only() -> None:
    fake = FakeEngine(NODES, lambda event: None)
    run = RunSpec("f1", 1, ("x",), "/", {}, (("local-0", (0,)),), 60)
    with pytest.raises(LaunchError):
        fake.run_step(_step(run, 0, "true"), lambda c: None, threading.Event())
    fake.submit(run)
    out: list[bytes] = []
    fake.step_exit_code = 3
    ended = fake.run_step(_step(run, 0, "true"), out.append, threading.Event())
    assert (ended.outcome, ended.exit_code) == (Outcome.FAILED, 3) and out
    fake.hold_steps = True
    result: list[StepEnded] = []
    thread = threading.Thread(
        target=lambda: result.append(
            fake.run_step(_step(run, 1, "x"), out.append, threading.Event())
        )
    )
    thread.start()
    time.sleep(0)  # let it begin; it waits for the run's end, whenever it comes
    fake.end(run.run_id)
    thread.join(5)
    assert result[0].message.startswith("ended with its job")
    assert [s.step for s in fake.steps] == [0, 1]
    assert os.getpid()  # nothing of this process was touched
