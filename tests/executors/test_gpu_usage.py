"""GPU utilisation of runs: the local engine samples ``nvidia-smi`` for its runs' devices
where real GPUs are (here a stand-in on PATH that prints what the real one prints), and
reports each run's summary with its end."""

from __future__ import annotations

from pathlib import Path

import pytest

from axcenter.executors.base import NodeInventory, Outcome
from axcenter.executors.gpus import GpuSampler, parse_utilization
from axcenter.executors.local import LocalEngine
from tests.executors.test_local import Harness

#: ``nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader,nounits``
#: on a machine of four H100s (device 3 of an older driver answers [N/A])
REAL_OUTPUT = "0, 97, 71234\n1, 0, 4\n2, 3, 1021\n3, [N/A], [N/A]\n"

#: answers both queries the platform makes, as the real one would for two H100s; the
#: utilisation of each device is read from the file $FAKE_SMI_UTIL ("index, %, MiB" lines)
FAKE_SMI = """#!/bin/sh
case "$*" in
  *index,name,memory.total*)
    printf '0, NVIDIA H100 80GB HBM3, 81559\\n1, NVIDIA H100 80GB HBM3, 81559\\n' ;;
  *index,utilization.gpu,memory.used*)
    cat "$FAKE_SMI_UTIL" ;;
  *) echo "nvidia-smi: unknown query" >&2; exit 2 ;;
esac
"""


@pytest.fixture
def smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in ``nvidia-smi`` first on PATH; returns the file of its figures."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "nvidia-smi"
    script.write_text(FAKE_SMI)
    script.chmod(0o755)
    figures = tmp_path / "util.csv"
    figures.write_text("0, 2, 512\n1, 88, 40960\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("FAKE_SMI_UTIL", str(figures))
    return figures


def test_real_output_is_parsed() -> None:
    assert parse_utilization(REAL_OUTPUT) == {0: (97, 71234), 1: (0, 4), 2: (3, 1021)}


def test_a_sampler_summarises_each_runs_devices(smi: Path) -> None:
    sampler = GpuSampler(every_s=60)  # not started: sampled by hand
    sampler.track("busy.1", (1,))
    sampler.track("idle.1", (0,))
    sampler.track("both.1", (0, 1))
    assert sampler.sample_once()
    smi.write_text("0, 4, 600\n1, 91, 41000\n")
    assert sampler.sample_once()
    busy, idle, both = (sampler.finish(r) for r in ("busy.1", "idle.1", "both.1"))
    assert busy is not None and idle is not None and both is not None
    assert (busy.samples, busy.util_mean_pct, busy.util_max_pct, busy.idle_samples) == (
        2,
        90,  # (88 + 91) / 2 = 89.5, rounded half up
        91,
        0,
    )
    assert busy.memory_max_mib == 41000
    assert (idle.util_mean_pct, idle.idle_samples, idle.idle_share) == (3, 2, 1.0)
    assert (both.samples, both.idle_samples) == (4, 2)
    assert sampler.finish("busy.1") is None  # no longer tracked
    smi.write_text("garbage\n")
    sampler.track("x.1", (0,))
    assert sampler.sample_once() and sampler.finish("x.1") is None  # nothing it could read


def test_the_local_engine_reports_a_runs_gpu_use_with_its_end(smi: Path, tmp_path: Path) -> None:
    node = NodeInventory("gpu-host", "H100", 2, 8, 64_000, logical=False, device_ids=(0, 1))
    h = Harness(tmp_path, [node])
    h.engine.close()
    h.engine = LocalEngine(
        [node],
        h.events.put,
        state_dir=tmp_path / "engine",
        logs_dir=tmp_path / "logs",
        grace_s=1.0,
        gpu_sample_s=0.05,
    )
    try:
        h.run("busy", "sleep 0.6", devices=(("gpu-host", (1,)),))
        ended = h.end("busy.1")
        assert ended.outcome is Outcome.SUCCEEDED and ended.gpu_usage is not None
        assert ended.gpu_usage.samples >= 3
        assert (ended.gpu_usage.util_mean_pct, ended.gpu_usage.idle_samples) == (88, 0)
        h.run("idle", "sleep 0.6", devices=(("gpu-host", (0,)),))
        ended = h.end("idle.1")
        assert ended.gpu_usage is not None and ended.gpu_usage.idle_share == 1.0
    finally:
        h.engine.close(stop_runs=True, grace_s=0.5)


def test_logical_gpus_report_no_use(smi: Path, tmp_path: Path) -> None:
    h = Harness(tmp_path)  # logical nodes: nothing real to sample
    try:
        assert h.engine._sampler is None
        h.run("j", "true")
        assert h.end().gpu_usage is None
    finally:
        h.engine.close()
