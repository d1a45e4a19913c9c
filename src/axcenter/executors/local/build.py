"""The per-run supervisor program (``supervisor.c``), compiled once per source version.

The supervisor is C, not Python, because it lives as long as each job and starts with each
job: a Python interpreter costs 8 ms and 8 MiB per run, the compiled supervisor well
under a millisecond and a few hundred KiB (``benchmarks/supervisor.py``). It is linked
statically where the C library allows, so that no dynamic loading precedes a job. It is built
with the system's C compiler into a cache named by the source's hash, so an upgrade of
axcenter builds a new one while running jobs keep the binary they were started with.
``AXC_SUPERVISOR`` names a prebuilt binary instead (packagers).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from axcenter.executors.base import LaunchError

__all__ = ["SOURCE", "supervisor_binary"]

SOURCE = Path(__file__).with_name("supervisor.c")
#: part of the build's name: a change of how it is built builds it anew
_FLAGS = b"-O2 -Wall [-static]"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "axcenter"


def supervisor_binary() -> Path:
    """The supervisor to run: ``AXC_SUPERVISOR``, else the cached build of this version,
    compiled now if missing. Raises ``LaunchError`` naming what is missing."""
    given = os.environ.get("AXC_SUPERVISOR")
    if given:
        path = Path(given)
        if not os.access(path, os.X_OK):
            raise LaunchError(f"AXC_SUPERVISOR={given} is not an executable file")
        return path
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + _FLAGS).hexdigest()[:16]
    target = _cache_dir() / f"axc-supervisor-{digest}"
    if os.access(target, os.X_OK):
        return target
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise LaunchError(
            "the local engine needs a C compiler (cc) to build its job supervisor once, "
            "or AXC_SUPERVISOR naming a built one"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".axc-supervisor-", dir=target.parent)
    os.close(fd)
    try:
        # static where the C library allows it: no dynamic loading at each job's start
        for flags in (["-static"], []):
            done = subprocess.run(
                [compiler, "-O2", "-Wall", *flags, "-o", tmp, str(SOURCE)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode == 0:
                break
        else:
            raise LaunchError(f"building the job supervisor failed: {done.stderr.strip()}")
        os.chmod(tmp, 0o755)  # noqa: S103 (a program everyone runs, as /usr/bin's)
        os.replace(tmp, target)  # atomic: concurrent builders agree on the result
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
