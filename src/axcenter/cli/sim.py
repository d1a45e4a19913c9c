"""``axc sim``: replay traces offline, compare policies, plan capacity, make traces.

These commands run locally (no server): they read a trace, replay it through the
scheduler in simulated time, print a comparison and optionally write an HTML report.
Every run prints its full command line first, defaults included, so that a result on a
screen or in a report can always be reproduced exactly. Bad input (a missing file, a
cluster YAML with a wrong field, an unknown policy) prints one ``error:`` line and exits
2, without a traceback.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from axcenter.cli import render
from axcenter.cli.common import new_app
from axcenter.sim.cluster import ClusterSpec, load_cluster
from axcenter.sim.policies import POLICIES
from axcenter.sim.workload import Workload

if TYPE_CHECKING:
    from axcenter.sim.capacity import RunProgress
    from axcenter.sim.limits import LimitRule

# The engine (NumPy), trace readers, reports and capacity sweeps (Polars, matplotlib) are
# imported by the commands that use them, so that every other `axc` command starts fast.

__all__ = ["app"]

app = new_app(
    help="Replay traces in simulated time: compare policies, plan capacity, make traces.",
    no_args_is_help=True,  # a sub-app of `axc`, loaded on use (cli/main.py)
)

EXIT_USAGE = 2

TraceArg = Annotated[
    str,
    typer.Argument(
        help="A trace: a shared trace file or folder, native:FILE, or synth:N:TRACE.",
        show_default=False,
    ),
]
ClusterOpt = Annotated[
    Path | None,
    typer.Option(
        "--cluster",
        "-c",
        help="Cluster spec YAML (default: the trace's node list, OpenB only).",
        show_default=False,
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of every random choice.")]
LimitsOpt = Annotated[
    str,
    typer.Option(
        "--limits",
        help="Time limits jobs ask for: buckets (1h..7d covering the run), trace (as "
        "recorded), oracle (2x the true duration; not what users give).",
    ),
]
AskMaxOpt = Annotated[
    float,
    typer.Option("--ask-max", min=0.0, max=1.0, help="Share of jobs asking the maximum, 7 d."),
]
LimitOpt = Annotated[
    int | None,
    typer.Option("--limit", min=1, help="Replay only the first N jobs.", show_default=False),
]
JobsOpt = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        min=1,
        help="Replay N synthetic jobs drawn from the trace's distributions instead.",
        show_default=False,
    ),
]
IntervalOpt = Annotated[
    float, typer.Option("--interval", min=0, help="Seconds between scheduling cycles.")
]
QuotaOpt = Annotated[
    float,
    typer.Option(
        "--quota-fraction",
        min=0,
        max=1,
        help="Share of each GPU type guaranteed to tenants by their usage when the trace "
        "has no quotas (0: none).",
    ),
]
WorkersOpt = Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")]


class UsageError(Exception):
    """Bad local input: printed as one line, exit status 2."""


@contextmanager
def _errors() -> Iterator[None]:
    from axcenter.sim.traces import TraceError

    try:
        yield
    except (UsageError, TraceError, ValueError, OSError) as exc:
        render.print_error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None


def _limit_rule(kind: str, ask_max: float) -> LimitRule:
    from axcenter.sim.limits import KINDS, LimitRule

    if kind not in KINDS:
        raise UsageError(f"unknown --limits {kind!r} (known: {', '.join(KINDS)})")
    return LimitRule(kind, max_share=ask_max)


def _command(name: str, positional: Sequence[str], options: Sequence[tuple[str, Any]]) -> str:
    """The full command line, defaults included; repeated options for lists."""
    words = ["axc", "sim", name, *positional]
    for flag, value in options:
        if value is None or value is False:
            continue
        if value is True:
            words.append(flag)
        elif isinstance(value, list | tuple):
            for v in value:
                words += [flag, str(v)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def _cluster(path: Path | None, trace: str) -> ClusterSpec:
    from axcenter.sim.traces import node_list_cluster

    if path is not None:
        if not path.is_file():
            raise UsageError(f"{path}: no such cluster file")
        try:
            return load_cluster(path)
        except yaml.YAMLError as exc:
            raise UsageError(f"{path}: not valid YAML: {exc}") from None
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'top level'}: {e['msg']}"
                for e in exc.errors()
            )
            raise UsageError(f"{path}: {problems}") from None
    base = Path(trace.rsplit(":", maxsplit=1)[-1])
    spec = node_list_cluster(base) if base.exists() else None
    if spec is None:
        raise UsageError(f"--cluster is required: {base} has no node list")
    return spec


def _workload(
    trace: str, seed: int, limit: int | None, jobs: int | None, rate: float, tenants: int | None
) -> Workload:
    from axcenter.sim.synth import synthesize
    from axcenter.sim.traces import read_trace

    workload = read_trace(trace, seed=seed, limit=None if jobs else limit, tenants=tenants)
    if jobs:
        workload = synthesize(workload, jobs, seed, rate_scale=rate, tenants=tenants)
    return workload


def _quotas(workload: Workload, cluster: ClusterSpec, fraction: float) -> Workload:
    from axcenter.sim.quotas import with_usage_quotas

    return with_usage_quotas(workload, cluster, fraction) if fraction > 0 else workload


@contextmanager
def _bars(labels: Sequence[str]) -> Iterator[RunProgress]:
    """One bar per run on stderr; yields the ``progress(run, fraction)`` callback.

    No refresh thread (``auto_refresh=False``): worker processes are forked while the
    bars are shown, and forking a process that runs threads is asking for a deadlock.
    """
    with Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        console=render.err_console(),
        auto_refresh=False,
    ) as bars:
        tasks = [bars.add_task(label, total=1.0) for label in labels]
        bars.refresh()

        def update(index: int, fraction: float) -> None:
            bars.update(tasks[index], completed=fraction)
            bars.refresh()

        yield update


def _header(command: str, workload: Workload, cluster: ClusterSpec, rule: LimitRule) -> None:
    out = render.out_console()
    out.print(f"$ {command}", soft_wrap=True, markup=False, highlight=False)
    out.print(
        f"trace {workload.name}: {len(workload.jobs):,} jobs, {len(workload.tenants)} tenants; "
        f"cluster {cluster.name}: {cluster.gpus:,} GPUs",
        markup=False,
        soft_wrap=True,
    )
    for note in (*workload.notes, rule.describe()):
        out.print(f"  - {note}", markup=False, soft_wrap=True, highlight=False)


def _table(title: str, headings: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(title=title)
    for h in headings:
        table.add_column(h, justify="left" if h in ("policy",) else "right")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    return table


def _comparison(summaries: Sequence[dict[str, Any]]) -> Table:
    """Metrics as rows, one column per policy: readable however many metrics there are."""
    from axcenter.sim.report import METRIC_COLUMNS, comparison_rows

    rows = comparison_rows(summaries)
    table = Table(title="policies compared")
    table.add_column("metric")
    for s in summaries:
        table.add_column(str(s["policy"]), justify="right")
    for k, (heading, _) in enumerate(METRIC_COLUMNS, start=1):
        table.add_row(heading, *(_cell(row[k]) for row in rows))
    return table


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@app.command("run")
def run(
    trace: TraceArg,
    cluster_path: ClusterOpt = None,
    policy: Annotated[
        list[str] | None,
        typer.Option(
            "--policy",
            "-p",
            help=f"Policy to replay (repeatable): {', '.join(POLICIES)}. Default: all.",
            show_default=False,
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write an HTML report in this folder.", show_default=False),
    ] = None,
    interval: IntervalOpt = 30.0,
    seed: SeedOpt = 0,
    limit: LimitOpt = None,
    jobs: JobsOpt = None,
    rate_scale: Annotated[
        float, typer.Option("--rate-scale", min=0.001, help="With --jobs: arrival speed-up.")
    ] = 1.0,
    tenants: Annotated[
        int | None,
        typer.Option("--tenants", min=1, help="Tenants to invent where a trace has none."),
    ] = None,
    quota_fraction: QuotaOpt = 0.8,
    limits: LimitsOpt = "buckets",
    ask_max: AskMaxOpt = 0.3,
    workers: WorkersOpt = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summaries as JSON.")] = False,
) -> None:
    """Replay a trace under several policies side by side and compare them."""
    from axcenter.sim.capacity import Run, run_many
    from axcenter.sim.engine import SimOptions
    from axcenter.sim.report import write_report

    with _errors():
        policies = list(dict.fromkeys(policy or POLICIES))
        unknown = [p for p in policies if p not in POLICIES]
        if unknown:
            raise UsageError(f"unknown policy {unknown[0]!r} (known: {', '.join(POLICIES)})")
        command = _command(
            "run",
            [trace],
            [
                ("--cluster", cluster_path),
                ("--policy", policies),
                ("--interval", interval),
                ("--seed", seed),
                ("--limit", limit),
                ("--jobs", jobs),
                ("--rate-scale", rate_scale if jobs else None),
                ("--tenants", tenants),
                ("--quota-fraction", quota_fraction),
                ("--limits", limits),
                ("--ask-max", ask_max),
                ("--report", report),
            ],
        )
        cluster = _cluster(cluster_path, trace)
        workload = _workload(trace, seed, limit, jobs, rate_scale, tenants)
        workload = _quotas(workload, cluster, quota_fraction)
        options = SimOptions(interval_s=interval, seed=seed, limits=_limit_rule(limits, ask_max))
        if not as_json:
            _header(command, workload, cluster, options.limits)
        runs = [Run(cluster, p, options) for p in policies]
        with _bars(policies) as update:
            results = run_many(workload, runs, workers=workers, progress=update)
        summaries = [r.summary() for r in results]
        if as_json:
            typer.echo(json.dumps({"command": command, "summaries": summaries}, indent=2))
        else:
            render.out_console().print(_comparison(summaries))
        if report is not None:
            page = write_report(results, workload, cluster, command, report)
            render.err_console().print(f"report: {page}", soft_wrap=True, markup=False)


@app.command("capacity")
def capacity(
    trace: TraceArg,
    add: Annotated[
        str,
        typer.Option(
            "--add",
            help="Nodes to add: TYPExGPUS:FROM..TO (e.g. H100x8:0..16).",
            show_default=False,
        ),
    ],
    cluster_path: ClusterOpt = None,
    step: Annotated[int, typer.Option("--step", min=1, help="Step through the range.")] = 1,
    budget: Annotated[
        int | None,
        typer.Option("--budget", min=0, help="Budget in won: sweep 0..budget/price nodes."),
    ] = None,
    node_price: Annotated[
        int | None,
        typer.Option("--node-price", min=1, help="Purchase price of one node in won."),
    ] = None,
    policy: Annotated[str, typer.Option("--policy", "-p", help="Policy.")] = "axcenter",
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write an HTML report in this folder.", show_default=False),
    ] = None,
    interval: IntervalOpt = 30.0,
    seed: SeedOpt = 0,
    limit: LimitOpt = None,
    quota_fraction: QuotaOpt = 0.8,
    limits: LimitsOpt = "buckets",
    ask_max: AskMaxOpt = 0.3,
    workers: WorkersOpt = 2,
) -> None:
    """Replay a trace with more nodes of one type: p95 wait and utilization per step."""
    from axcenter.sim.capacity import (
        CAPACITY_HEADINGS,
        capacity_rows,
        parse_add,
        sweep_capacity,
        write_capacity_report,
    )
    from axcenter.sim.engine import SimOptions
    from axcenter.sim.traces import read_trace

    with _errors():
        if policy not in POLICIES:
            raise UsageError(f"unknown policy {policy!r} (known: {', '.join(POLICIES)})")
        gpu_type, per, counts = parse_add(add, step, budget, node_price)
        command = _command(
            "capacity",
            [trace],
            [
                ("--cluster", cluster_path),
                ("--add", add),
                ("--step", step),
                ("--budget", budget),
                ("--node-price", node_price),
                ("--policy", policy),
                ("--interval", interval),
                ("--seed", seed),
                ("--limit", limit),
                ("--quota-fraction", quota_fraction),
                ("--limits", limits),
                ("--ask-max", ask_max),
                ("--report", report),
            ],
        )
        cluster = _cluster(cluster_path, trace)
        workload = _quotas(read_trace(trace, seed=seed, limit=limit), cluster, quota_fraction)
        options = SimOptions(interval_s=interval, seed=seed, limits=_limit_rule(limits, ask_max))
        _header(command, workload, cluster, options.limits)
        with _bars([f"+{c} {gpu_type}x{per}" for c in counts]) as update:
            points, _ = sweep_capacity(
                workload,
                cluster,
                gpu_type,
                per,
                counts,
                policy,
                options,
                workers,
                node_price_won=node_price,
                progress=update,
            )
        render.out_console().print(
            _table(
                f"adding {gpu_type}x{per} nodes ({policy})",
                CAPACITY_HEADINGS,
                capacity_rows(points),
            )
        )
        if report is not None:
            description = (
                f"Adding nodes of {per} {gpu_type} GPUs to {cluster.name} under {policy}"
                + (f", {node_price:,} won a node" if node_price else "")
            )
            page = write_capacity_report(points, workload, cluster, description, command, report)
            render.err_console().print(f"report: {page}", soft_wrap=True, markup=False)


@app.command("synth")
def synth(
    source: Annotated[
        str, typer.Option("--from", help="The trace whose distributions to draw from.")
    ],
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Jobs to generate.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (.parquet or .csv).")],
    seed: SeedOpt = 0,
    rate_scale: Annotated[
        float, typer.Option("--rate-scale", min=0.001, help="Arrivals this many times faster.")
    ] = 1.0,
    tenants: Annotated[
        int | None, typer.Option("--tenants", min=1, help="Replace tenants by this many.")
    ] = None,
) -> None:
    """Generate a synthetic trace in the native format from a real trace's distributions."""
    from axcenter.sim.synth import synthesize
    from axcenter.sim.traces import read_trace, write_native

    with _errors():
        base = read_trace(source, seed=seed)
        workload = synthesize(base, jobs, seed, rate_scale=rate_scale, tenants=tenants)
        write_native(workload, out)
        render.err_console().print(
            f"wrote {len(workload.jobs):,} jobs to {out}", soft_wrap=True, markup=False
        )


@app.command("cluster")
def cluster(
    trace: TraceArg,
    scale: Annotated[float, typer.Option("--scale", min=0.001, help="Multiply node counts.")] = 1.0,
) -> None:
    """Print a cluster spec YAML from a node list (OpenB's, or the GFS fleet's)."""
    from axcenter.sim.synth import scale_cluster
    from axcenter.sim.traces import node_list_cluster

    with _errors():
        base = Path(trace.rsplit(":", maxsplit=1)[-1])
        found = node_list_cluster(base) if base.exists() else None
        if found is None:
            raise UsageError(
                f"{base}: no node list here (OpenB's openb_node_list_gpu_node.csv or the "
                "GFS fleet's node_info_df.csv)"
            )
        spec = found
        if scale != 1.0:
            spec = scale_cluster(spec, scale)
        typer.echo(yaml.safe_dump(spec.model_dump(exclude_defaults=True), sort_keys=False))
