"""Every time, memory and array format, as Slurm takes it and as axc reads it.

One table per kind: the text, whether Slurm 22.05's ``sbatch`` accepts it, and what axc
makes of it (a number, or the start of its error message). ``axc`` extends Slurm with
unit forms (``90s``, ``1h30m``) and refuses Slurm's "no limit" values, which have no
meaning on a center where every job has one; everything else Slurm accepts, axc reads
to the same value. When ``sbatch`` is installed (``../shared/peers/slurm``), the Slurm
column is checked against it: ``sbatch`` validates ``--time`` and ``--mem`` itself before
it tries to reach a controller. Arrays are validated by Slurm's controller, so their
Slurm column follows the ``sbatch`` manual instead.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from axcenter.cli.durations import parse_memory, parse_time_limit
from axcenter.model.arrays import parse_array

H, M, D = 3600, 60, 86400

#: (text, Slurm accepts it, axc: seconds or the start of its error)
TIMES: list[tuple[str, bool, int | str]] = [
    ("90", True, 90 * M),  # minutes
    ("1:30", True, 1 * M + 30),  # MM:SS
    ("90:00", True, 90 * M),  # no field is range-checked
    ("1:75", True, 1 * M + 75),
    ("01:00:00", True, 1 * H),  # HH:MM:SS
    ("36:00:00", True, 36 * H),
    ("1-", True, 1 * D),  # D-
    ("1-0", True, 1 * D),  # D-HH
    ("2-12", True, 2 * D + 12 * H),
    ("2-12:30", True, 2 * D + 12 * H + 30 * M),  # D-HH:MM
    ("1-00:00:00", True, 1 * D),  # D-HH:MM:SS
    ("1-2:3:4", True, D + 2 * H + 3 * M + 4),
    ("0", True, "'0' means no time limit in Slurm"),
    ("-1", True, "'-1' means no time limit in Slurm"),
    ("UNLIMITED", True, "'UNLIMITED' means no time limit in Slurm"),
    ("INFINITE", True, "'INFINITE' means no time limit in Slurm"),
    ("90s", False, 90),  # axcenter's units
    ("30m", False, 30 * M),
    ("2h", False, 2 * H),
    ("1d12h", False, D + 12 * H),
    ("1h30m", False, H + 30 * M),
    ("1-2-3", False, "invalid duration '1-2-3'"),
    (":30", False, "invalid duration ':30'"),
    ("1.5", False, "invalid duration '1.5'"),
    ("1:2:3:4", False, "invalid duration '1:2:3:4'"),
    ("abc", False, "invalid duration 'abc'"),
    ("", False, "empty duration"),
]

#: (text, Slurm accepts it, axc: MB or the start of its error)
MEMORY: list[tuple[str, bool, int | str]] = [
    ("512", True, 512),
    ("512M", True, 512),
    ("16G", True, 16 * 1024),
    ("16g", True, 16 * 1024),
    ("1T", True, 1024 * 1024),
    ("2048K", True, 2),
    ("16GB", True, 16 * 1024),
    ("100T", True, "100T is more memory than a node may have"),
    ("0", True, "invalid memory size '0': must be more than zero"),
    ("1.5G", False, 1536),  # axcenter takes decimals
    ("16GiB", False, 16 * 1024),
    ("lots", False, "invalid memory size 'lots'"),
]

#: (text, Slurm accepts it, axc: (indices, throttle) or the start of its error)
ARRAYS: list[tuple[str, bool, tuple[list[int], int | None] | str]] = [
    ("7", True, ([7], None)),
    ("0-3", True, ([0, 1, 2, 3], None)),
    ("0-15:4", True, ([0, 4, 8, 12], None)),
    ("1,3,5", True, ([1, 3, 5], None)),
    ("1,3,5-9:2", True, ([1, 3, 5, 7, 9], None)),
    ("3,1,3", True, ([1, 3], None)),
    ("0-99%8", True, (list(range(100)), 8)),
    ("1-3,7%2", True, ([1, 2, 3, 7], 2)),
    ("5-1", False, "array '5-1': '5-1' ends before it starts"),
    ("0-15:0", False, "array '0-15:0': the step in '0-15:0' must be 1 or more"),
    ("1-", False, "array '1-': cannot read '1-'"),
    ("abc", False, "array 'abc': cannot read 'abc'"),
    ("%4", False, "array '%4' is empty"),
    ("1-3%0", False, "array '1-3%0': the throttle after %"),
]


def _axc(parse: object, text: str) -> object:
    try:
        return parse(text)  # type: ignore[operator]
    except ValueError as exc:
        return str(exc)


@pytest.mark.parametrize(("text", "slurm", "axc"), TIMES)
def test_time(text: str, slurm: bool, axc: int | str) -> None:
    got = _axc(parse_time_limit, text)
    assert got == axc if isinstance(axc, int) else str(got).startswith(axc), got


@pytest.mark.parametrize(("text", "slurm", "axc"), MEMORY)
def test_memory(text: str, slurm: bool, axc: int | str) -> None:
    got = _axc(parse_memory, text)
    assert got == axc if isinstance(axc, int) else str(got).startswith(axc), got


@pytest.mark.parametrize(("text", "slurm", "axc"), ARRAYS)
def test_array(text: str, slurm: bool, axc: tuple[list[int], int | None] | str) -> None:
    try:
        spec = parse_array(text)
    except ValueError as exc:
        assert isinstance(axc, str) and str(exc).startswith(axc), exc
        return
    assert not isinstance(axc, str), spec
    assert (list(spec.indices), spec.throttle) == axc


def test_every_slurm_time_is_read_as_slurm_reads_it_or_refused_with_why() -> None:
    """Nothing Slurm accepts is misread: it is read to Slurm's value or refused."""
    for text, slurm, axc in TIMES:
        if slurm and isinstance(axc, str):
            assert "no time limit" in axc, text


SBATCH = shutil.which("sbatch")


@pytest.fixture(scope="module")
def slurm_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A configuration naming a controller that is not there: enough for ``sbatch`` to
    parse its options, which is all that is asked of it here."""
    conf = tmp_path_factory.mktemp("slurm") / "slurm.conf"
    conf.write_text(
        "ClusterName=axc\nSlurmctldHost=localhost\nSlurmctldPort=1\n"
        "NodeName=n1 CPUs=1\nPartitionName=p Nodes=n1 Default=YES\n"
    )
    return conf


_PROBES = [("--time", t, s) for t, s, _ in TIMES if t] + [("--mem", m, s) for m, s, _ in MEMORY]


@pytest.fixture(scope="module")
def sbatch_refused(slurm_conf: Path) -> set[tuple[str, str]]:
    """The (option, text) that ``sbatch`` refuses as an invalid specification, probed
    all at once. A valid one makes it go on to the (absent) controller, which it keeps
    trying: it is stopped after a moment, its options long parsed."""
    env = {"SLURM_CONF": str(slurm_conf), "PATH": "/usr/bin:/bin"}
    running = [
        (
            option,
            text,
            subprocess.Popen(
                [SBATCH or "sbatch", option, text, "--wrap", "true"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for option, text, _ in _PROBES
    ]
    refused = set()
    deadline = time.monotonic() + 2
    for option, text, process in running:
        try:
            _, stderr = process.communicate(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        if f"Invalid {option} specification" in stderr:
            refused.add((option, text))
    return refused


@pytest.mark.skipif(SBATCH is None, reason="sbatch is not installed (../shared/peers/slurm)")
@pytest.mark.parametrize(("option", "text", "slurm"), _PROBES)
def test_the_slurm_column_is_what_sbatch_does(
    sbatch_refused: set[tuple[str, str]], option: str, text: str, slurm: bool
) -> None:
    assert ((option, text) in sbatch_refused) is not slurm
