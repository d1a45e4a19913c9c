"""An HTML report of a policy comparison: one page, PNG charts beside it.

The page starts with the exact command line that produced it, so anyone can run it
again, then says what was replayed (the reader's and the quota rule's notes) before any
number: a result is only as good as the rules that made the trace. Charts are drawn
with Matplotlib's object API (``Figure``, no pyplot), which needs no display and keeps
no global state, so reports can be written from worker processes.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from axcenter.sim.cluster import ClusterSpec
from axcenter.sim.metrics import SIZE_CLASSES, SimResult
from axcenter.sim.workload import Workload

__all__ = [
    "METRIC_COLUMNS",
    "binned_utilization",
    "comparison_rows",
    "html_page",
    "html_table",
    "write_report",
]

#: (heading, function of a summary dict) for the comparison table, in order
METRIC_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("jobs", lambda s: s["jobs"]),
    ("unfinished", lambda s: s["unfinished"] + s["rejected"]),
    ("mean JCT (h)", lambda s: s["jct_s"]["mean"] / 3600),
    ("median JCT (h)", lambda s: s["jct_s"]["median"] / 3600),
    ("p95 JCT (h)", lambda s: s["jct_s"]["p95"] / 3600),
    ("p99 JCT (h)", lambda s: s["jct_s"]["p99"] / 3600),
    ("mean wait (h)", lambda s: s["queueing_delay_s"]["mean"] / 3600),
    ("median wait (h)", lambda s: s["queueing_delay_s"]["median"] / 3600),
    ("p95 wait (h)", lambda s: s["queueing_delay_s"]["p95"] / 3600),
    ("p99 wait (h)", lambda s: s["queueing_delay_s"]["p99"] / 3600),
    ("makespan (h)", lambda s: s["makespan_s"] / 3600),
    ("utilization", lambda s: s["utilization"]),
    ("preemptions", lambda s: s["preemptions"]),
    ("lost GPU-h", lambda s: s["lost_gpu_hours"]),
    ("Jain index", lambda s: s["jain_index"]),
    ("quota violation (GPU-h)", lambda s: s["quota_violation_gpu_s"] / 3600),
    ("cost (won)", lambda s: s["cost_won"]),
    ("sim wall (s)", lambda s: s["wall_s"]),
)

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
pre{background:#f4f4f4;padding:.8em;white-space:pre-wrap;word-break:break-all}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#eee}
img{max-width:100%;border:1px solid #ddd;margin:.5em 0}
.note{color:#555}
"""


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if v == 0:
            return "0"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"
    return str(value)


def html_table(headings: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain HTML table; numbers formatted for reading, text escaped."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headings)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_page(title: str, command_line: str, sections: Iterable[str]) -> str:
    """A self-contained page whose first line is the command that made it."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p>Reproduce with:</p><pre>{html.escape(command_line)}</pre>"
        f"<p class='note'>written {stamp}</p>" + "".join(sections) + "</body></html>"
    )


def comparison_rows(summaries: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """One row per policy: its name, then ``METRIC_COLUMNS``."""
    return [[s["policy"], *(fn(s) for _, fn in METRIC_COLUMNS)] for s in summaries]


def workload_section(workload: Workload, cluster: ClusterSpec) -> str:
    """What was replayed on what: counts, GPU types, and every rule the readers applied."""
    by_type = ", ".join(f"{t}: {n}" for t, n in sorted(cluster.gpus_by_type().items()))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in workload.notes)
    quotas = ""
    if workload.quotas:
        rows = [
            [tenant, ", ".join(f"{t}={n}" for t, n in sorted(q.items()))]
            for tenant, q in sorted(workload.quotas.items())
        ]
        quotas = "<h3>Guaranteed quotas (GPUs)</h3>" + html_table(["tenant", "quota"], rows)
    return (
        "<h2>Workload and cluster</h2>"
        f"<p>Trace <b>{html.escape(workload.name)}</b>: {len(workload.jobs):,} jobs, "
        f"{len(workload.tenants)} tenants. Cluster <b>{html.escape(cluster.name)}</b>: "
        f"{sum(g.count for g in cluster.node_groups):,} nodes, {cluster.gpus:,} GPUs "
        f"({html.escape(by_type)}).</p><h3>Reader rules</h3><ul>{notes}</ul>{quotas}"
    )


def _cdf_chart(results: Sequence[SimResult], values: str, title: str, path: Path) -> Path:
    from matplotlib.figure import Figure  # noqa: PLC0415 (slow import: only when plotting)

    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for r in results:
        data: npt.NDArray[np.float64] = np.sort(getattr(r, values))
        if data.size == 0:
            continue
        data = np.maximum(data, 1.0)  # a log axis: waits under 1 s are drawn at 1 s
        ax.plot(data, np.arange(1, data.size + 1) / data.size, label=r.policy)
    ax.set_xscale("log")
    ax.set_xlabel("seconds (log scale; values under 1 s drawn at 1 s)")
    ax.set_ylabel("fraction of jobs")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=100)
    return path


def binned_utilization(
    result: SimResult, bins: int = 400
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(bin centres, busy / up GPUs in each bin), exact averages of the step timeline.

    The timeline can have millions of steps; integrating it (piecewise linear for a
    step function) and differencing at bin edges keeps the chart small and exact.
    """
    times = result.times
    if times.size < 2:
        return np.zeros(0), np.zeros(0)
    dt = np.diff(times)
    busy = np.concatenate([[0.0], np.cumsum(result.busy[:-1] * dt)])
    up = np.concatenate([[0.0], np.cumsum(result.capacity[:-1] * dt)])
    edges = np.linspace(times[0], times[-1], bins + 1)
    b = np.diff(np.interp(edges, times, busy))
    u = np.diff(np.interp(edges, times, up))
    with np.errstate(invalid="ignore", divide="ignore"):
        util = np.where(u > 0, b / u, 0.0)
    return (edges[:-1] + edges[1:]) / 2, util


def _utilization_chart(results: Sequence[SimResult], path: Path) -> Path:
    from matplotlib.figure import Figure  # noqa: PLC0415 (slow import: only when plotting)

    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for r in results:
        centres, util = binned_utilization(r)
        ax.plot(centres / 3600.0, util * 100, label=f"{r.policy} ({r.utilization():.1%})")
    ax.set_xlabel("hours since the first submission")
    ax.set_ylabel("busy GPUs (% of up GPUs)")
    ax.set_ylim(0, 105)
    ax.set_title("Utilization over time")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=100)
    return path


def tenant_shares(
    result: SimResult,
) -> tuple[list[str], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(tenants, share of delivered GPU-seconds, entitlement), as ``metrics`` defines them:
    entitlement = share of guaranteed quota when there are quotas, else equal parts."""
    n = len(result.tenants)
    delivered = np.bincount(result.tenant, weights=result.gpu_seconds, minlength=n)
    total = float(delivered.sum())
    share = delivered / total if total > 0 else np.zeros(n)
    if result.quota.any():
        entitled = result.quota.astype(np.float64) / float(result.quota.sum())
    else:
        submitted = (np.bincount(result.tenant, minlength=n) > 0).astype(np.float64)
        entitled = submitted / max(float(submitted.sum()), 1.0)
    return list(result.tenants), share, entitled


def _share_chart(results: Sequence[SimResult], path: Path, top: int = 20) -> Path:
    tenants, _, entitled = tenant_shares(results[0])
    shares = [tenant_shares(r)[1] for r in results]
    order = np.argsort(-(entitled + np.mean(shares, axis=0)))[:top]
    from matplotlib.figure import Figure  # noqa: PLC0415 (slow import: only when plotting)

    fig = Figure(figsize=(max(8, len(order) * 0.6), 4.5), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / (len(results) + 1)
    x = np.arange(len(order))
    ax.bar(x, entitled[order] * 100, width, label="entitlement", color="#bbb")
    for k, (r, share) in enumerate(zip(results, shares, strict=True)):
        ax.bar(x + (k + 1) * width, share[order] * 100, width, label=r.policy)
    ax.set_xticks(
        x + width * len(results) / 2, [tenants[i] for i in order], rotation=45, ha="right"
    )
    ax.set_ylabel("% of delivered GPU-seconds")
    more = f" (top {top} of {len(tenants)})" if len(tenants) > top else ""
    ax.set_title(f"Per-tenant share vs entitlement{more}")
    ax.legend()
    fig.savefig(path, dpi=100)
    return path


def _by_size_rows(summaries: Sequence[dict[str, Any]], key: str) -> list[list[Any]]:
    return [[s["policy"], *(s[key][c]["mean"] / 3600 for c in SIZE_CLASSES)] for s in summaries]


def write_report(
    results: Sequence[SimResult],
    workload: Workload,
    cluster: ClusterSpec,
    command_line: str,
    out_dir: Path,
) -> Path:
    """Write ``out_dir/index.html`` and its PNG charts; returns the page's path."""
    if not results:
        raise ValueError("no results to report")
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = [r.summary() for r in results]
    charts = [
        _cdf_chart(results, "jct", "CDF of job completion time", out_dir / "cdf_jct.png"),
        _cdf_chart(
            results, "queueing_delay", "CDF of queueing delay", out_dir / "cdf_queueing.png"
        ),
        _utilization_chart(results, out_dir / "utilization.png"),
        _share_chart(results, out_dir / "tenant_share.png"),
    ]
    headings = ["policy", *(h for h, _ in METRIC_COLUMNS)]
    sizes = ["policy", *(f"{c} GPUs" for c in SIZE_CLASSES)]
    sections = [
        workload_section(workload, cluster),
        "<h2>Policies compared</h2>",
        html_table(headings, comparison_rows(summaries)),
        "<h3>Mean queueing delay (h) by job size</h3>",
        html_table(sizes, _by_size_rows(summaries, "queueing_delay_by_size")),
        "<h3>Mean JCT (h) by job size</h3>",
        html_table(sizes, _by_size_rows(summaries, "jct_by_size")),
        "<h2>Charts</h2>",
        *(f"<img src='{p.name}' alt='{p.stem}'>" for p in charts),
        _HOW_TO_READ,
    ]
    page = out_dir / "index.html"
    page.write_text(html_page("axcenter simulation report", command_line, sections), "utf-8")
    return page


_HOW_TO_READ = """
<h2>How to read this</h2><ul>
<li><b>JCT</b>: end - submit of jobs that ended; <b>wait</b> (queueing delay): first start
- submit. Unfinished jobs (still queued or running when the trace ran out) are counted
but not in these statistics: compare the unfinished column first.</li>
<li><b>Utilization</b>: busy GPU-seconds / up GPU-seconds over the whole replay.</li>
<li><b>Preemptions</b> and <b>lost GPU-h</b>: run time thrown away by preemption.</li>
<li><b>Jain index</b> over share / entitlement: 1 is proportional to quotas (or equal
when there are none); 1/n is one tenant taking everything.</li>
<li><b>Quota violation</b>: GPU-hours a tenant waited while below what its quota
guaranteed.</li>
<li>CDF charts: a curve further left and higher is better. Share chart: bars near the grey
entitlement bar mean the policy delivered what the quotas promise.</li></ul>
"""
