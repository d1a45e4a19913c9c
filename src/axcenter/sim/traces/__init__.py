"""Trace readers and the one entry point that picks among them: ``read_trace(spec)``.

A spec is one of:

- a path to a shared trace file or folder: the format is recognised from the CSV header
  (OpenB pod list, ITP cluster file, Philly/Chronus, native), a folder from its files
  (OpenB: the default pod list; ITP: all cluster files merged; Philly: its one trace);
- ``native:PATH`` / ``history:PATH``: a native CSV or Parquet file (``axc export history``);
- ``openb:PATH``, ``itp:PATH``, ``philly:PATH``: force a reader;
- ``synth:N[,rate=X][,tenants=K]:SPEC``: N jobs drawn (with ``seed``) from the
  distributions of the trace SPEC, arrivals ``X`` times as fast.

Each reader writes its rules (tenants, rounding, dropped rows) into ``Workload.notes``.
"""

from __future__ import annotations

from pathlib import Path

from axcenter.sim.cluster import ClusterSpec
from axcenter.sim.synth import synthesize
from axcenter.sim.traces.fleet import find_fleet_list, fleet_cluster
from axcenter.sim.traces.history import read_history
from axcenter.sim.traces.itp import cluster_files, read_itp
from axcenter.sim.traces.native import TraceError, read_native, write_native
from axcenter.sim.traces.openb import find_node_list, openb_cluster, read_openb
from axcenter.sim.traces.philly import read_philly
from axcenter.sim.workload import Workload

__all__ = [
    "TraceError",
    "detect_format",
    "find_node_list",
    "node_list_cluster",
    "openb_cluster",
    "read_trace",
    "write_native",
]

FORMATS = ("openb", "itp", "philly", "native", "history")
_OPENB_DEFAULT = "openb_pod_list_default.csv"


def node_list_cluster(path: Path) -> ClusterSpec | None:
    """The cluster a trace's node list describes (OpenB's, or the GFS fleet's), if any."""
    if find_node_list(path) is not None or path.name.startswith("openb_node_list"):
        return openb_cluster(path)
    if find_fleet_list(path) is not None:
        return fleet_cluster(path)
    return None


def _header(path: Path) -> set[str]:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            line = f.readline()
    except OSError as exc:
        raise TraceError(f"{path}: cannot read: {exc}") from exc
    return {c.strip().strip('"') for c in line.strip().split(",")}


def detect_format(path: Path) -> tuple[str, Path]:
    """``(format, file or folder to read)`` for a path; ``TraceError`` if unknown."""
    if not path.exists():
        raise TraceError(f"{path}: no such file or folder")
    if path.is_dir():
        if (path / _OPENB_DEFAULT).is_file():
            return "openb", path / _OPENB_DEFAULT
        if cluster_files(path):
            return "itp", path
        philly = sorted(path.glob("trace_job_Philly_*.csv"))
        if len(philly) == 1:
            return "philly", philly[0]
        raise TraceError(f"{path}: a folder with no known trace (OpenB, ITP or Philly) in it")
    if path.suffix.lower() in (".parquet", ".pq"):
        return "native", path
    columns = _header(path)
    if {"name", "gpu_milli", "scheduled_time"} <= columns:
        return "openb", path
    if {"user", "best_effort", "submit_time", "num_gpu"} <= columns:
        return "philly", path
    if {"job_id", "submission_time", "duration", "num_gpu"} <= columns:
        return "itp", path
    if {"id", "submit", "duration", "gpus_per_node"} <= columns:
        return "native", path
    raise TraceError(
        f"{path}: unknown trace format (header {','.join(sorted(columns))[:200]}); "
        "use the native columns id,submit,duration,gpus_per_node,..."
    )


def _read(fmt: str, path: Path, *, seed: int, limit: int | None, tenants: int | None) -> Workload:
    if not path.exists():
        raise TraceError(f"{path}: no such file or folder")
    if fmt == "openb":
        return read_openb(path / _OPENB_DEFAULT if path.is_dir() else path, limit=limit)
    if fmt == "itp":
        return read_itp(path, seed=seed, tenants=tenants, limit=limit)
    if fmt == "philly":
        return read_philly(detect_format(path)[1] if path.is_dir() else path, limit=limit)
    if fmt == "history":
        return read_history(path, limit=limit)
    return read_native(path, limit=limit)


def _synth(spec: str, *, seed: int, tenants: int | None) -> Workload:
    head, sep, base = spec.partition(":")
    if not sep or not base:
        raise TraceError(f"synth:{spec}: use synth:N[,rate=X][,tenants=K]:TRACE")
    parts = head.split(",")
    try:
        jobs = int(parts[0].replace("_", ""))
        options = dict(p.split("=", 1) for p in parts[1:])
        rate = float(options.pop("rate", 1.0))
        count = int(options.pop("tenants", tenants or 0)) or None
    except ValueError as exc:
        raise TraceError(f"synth:{spec}: {exc}") from exc
    if options:
        raise TraceError(f"synth:{spec}: unknown option(s) {', '.join(options)}")
    if jobs <= 0 or rate <= 0:
        raise TraceError(f"synth:{spec}: N and rate must be positive")
    return synthesize(read_trace(base, seed=seed), jobs, seed, rate_scale=rate, tenants=count)


def read_trace(
    spec: str | Path,
    *,
    seed: int = 0,
    limit: int | None = None,
    tenants: int | None = None,
) -> Workload:
    """The workload a spec names (see the module doc); ``limit``: the first N by submit.

    ``seed`` drives every random choice (ITP tenant draws, synthetic traces), so a spec
    and a seed always give the same jobs. ``tenants`` sets the tenant count where a
    reader has to invent tenants (one ITP file, synthetic traces).
    """
    text = str(spec)
    prefix, sep, rest = text.partition(":")
    if sep and prefix == "synth":
        workload = _synth(rest, seed=seed, tenants=tenants)
        if limit is not None and len(workload.jobs) > limit:
            return Workload(workload.name, workload.jobs[:limit], workload.notes, workload.quotas)
        return workload
    if sep and prefix in FORMATS:
        return _read(prefix, Path(rest), seed=seed, limit=limit, tenants=tenants)
    fmt, path = detect_format(Path(text))
    return _read(fmt, path, seed=seed, limit=limit, tenants=tenants)
