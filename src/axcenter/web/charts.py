"""Chart.js configurations built from service results (drawn in the browser by app.js).

Each chart also comes with its data as a table (``Chart.table``), which the page shows
under the chart for screen readers and for copying figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from axcenter.service.schemas import (
    BurndownOut,
    HistoryOut,
    ProjectDetailOut,
    ProjectUsageOut,
    UsageOverTimeOut,
    UsageReportOut,
)
from axcenter.web.i18n import label, translate, zone_name

__all__ = [
    "Chart",
    "burndown_chart",
    "grant_chart",
    "history_charts",
    "spending_chart",
    "usage_chart",
    "usage_over_time_charts",
]

#: shown for a missing value
DASH = "\u2013"
#: colour-blind-safe (Okabe-Ito), readable on white
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    config: dict[str, Any]
    #: header row, then rows, for the data table under the chart
    table: list[list[str]] = field(default_factory=list)


def _line(labels: list[str], datasets: list[dict[str, Any]], y_format: str) -> dict[str, Any]:
    return {
        "type": "line",
        "data": {"labels": labels, "datasets": datasets},
        "options": {"yFormat": y_format},
    }


def _series(label: str, values: Sequence[float | None], i: int, **extra: Any) -> dict[str, Any]:
    colour = PALETTE[i % len(PALETTE)]
    return {
        "label": label,
        "data": list(values),
        "borderColor": colour,
        "backgroundColor": colour,
        "pointRadius": 0,
        "spanGaps": True,
        **extra,
    }


def _table(header: list[str], labels: list[str], columns: list[list[Any]]) -> list[list[str]]:
    rows = [header]
    for i, name in enumerate(labels):
        rows.append([name, *(DASH if c[i] is None else str(c[i]) for c in columns)])
    return rows


def history_charts(history: HistoryOut, lang: str, zone: tzinfo) -> list[Chart]:
    """Utilization per GPU type, queue length, and wait percentiles over the window, at
    times of the center's zone."""
    long = history.until - history.since > timedelta(days=2)
    fmt = "%m-%d %H:%M" if long else "%H:%M"
    labels = [p.at.astimezone(zone).strftime(fmt) for p in history.points]
    types = list(history.capacity)
    utilization = [[round(p.utilization.get(t, 0) * 100, 1) for p in history.points] for t in types]
    pending = [p.pending_jobs for p in history.points]
    p50 = [p.wait_p50_s for p in history.points]
    p90 = [p.wait_p90_s for p in history.points]
    time = translate("chart.time", lang).format(zone=zone_name(zone, history.until))
    return [
        Chart(
            "utilization",
            translate("cluster.utilization", lang),
            _line(
                labels,
                [
                    _series(f"{t} ({history.capacity[t]})", u, i)
                    for i, (t, u) in enumerate(zip(types, utilization, strict=True))
                ],
                "percent",
            ),
            _table([time, *(f"{t} %" for t in types)], labels, utilization),
        ),
        Chart(
            "queue-length",
            translate("cluster.queue_length", lang),
            _line(labels, [_series(translate("chart.pending_jobs", lang), pending, 0)], "number"),
            _table([time, translate("chart.pending_jobs", lang)], labels, [pending]),
        ),
        Chart(
            "waits",
            translate("cluster.waits", lang),
            _line(
                labels,
                [
                    _series(translate("chart.wait_p50", lang), p50, 0),
                    _series(translate("chart.wait_p90", lang), p90, 1),
                ],
                "seconds",
            ),
            _table(
                [time, translate("chart.wait_p50", lang), translate("chart.wait_p90", lang)],
                labels,
                [p50, p90],
            ),
        ),
    ]


def grant_chart(project: ProjectDetailOut, lang: str) -> Chart | None:
    """GPU-hours used vs granted per GPU type, over the project's active allocations."""
    granted: dict[str, float] = {}
    used: dict[str, float] = {}
    for alloc in project.allocations:
        if alloc.status != "active":
            continue
        for item in alloc.balance.items:
            granted[item.gpu_type] = granted.get(item.gpu_type, 0) + item.granted_gpu_seconds
            used[item.gpu_type] = used.get(item.gpu_type, 0) + item.used_gpu_seconds
    if not granted:
        return None
    types = sorted(granted)
    g = [round(granted[t] / 3600, 1) for t in types]
    u = [round(used[t] / 3600, 1) for t in types]
    return Chart(
        "grant",
        translate("projects.gpu_hours", lang),
        {
            "type": "bar",
            "data": {
                "labels": types,
                "datasets": [
                    _series(translate("chart.used", lang), list(u), 1),
                    _series(translate("chart.granted", lang), list(g), 0),
                ],
            },
            "options": {"yFormat": "number"},
        },
        _table(
            [
                translate("cluster.type", lang),
                translate("chart.used", lang),
                translate("chart.granted", lang),
            ],
            types,
            [u, g],
        ),
    )


def burndown_chart(b: BurndownOut, lang: str) -> Chart:
    """Remaining budget per day from the program's first day; a dashed forecast to the
    day it reaches zero at the current rate, within a shaded band between the fastest and
    the slowest 7-day rate of the last 28 days; and, where the program has an end, the
    even pace that would spend the budget exactly by then, so a program a day old already
    shows where it stands against its plan."""
    days = [d.day for d in b.days]
    actual = {d.day: float(d.remaining_won) for d in b.days}
    today = days[-1] if days else b.now.date()
    end = b.ends_at.astimezone(ZoneInfo(b.time_zone)).date() if b.ends_at else None
    # up to the program's end (a forecast beyond it stops there, above zero), else to
    # the forecast day (or the band's late side, within two years)
    horizon = max(today, end if end is not None else (b.forecast or today))
    if end is None and b.forecast_late is not None:
        horizon = max(horizon, min(b.forecast_late, today + timedelta(days=730)))
    axis = days + _days_between(today, horizon)
    first = axis[0]
    forecast: list[float | None] = []
    pace: list[float | None] = []
    early: list[float | None] = []
    late: list[float | None] = []
    for day in axis:
        forecast.append(_towards_zero(b.remaining_won, today, b.forecast, day))
        pace.append(_towards_zero(b.budget_won, first, end, day) if end else None)
        early.append(_towards_zero(b.remaining_won, today, b.forecast_early, day))
        # no late side (a zero slowest rate): the budget may last
        late.append(
            _towards_zero(b.remaining_won, today, b.forecast_late, day)
            if b.forecast_late is not None
            else (float(b.remaining_won) if day >= today and b.forecast_early else None)
        )
    remaining = [actual.get(day) for day in axis]
    labels = [day.isoformat() for day in axis]
    series = [
        _series(translate("chart.remaining", lang), remaining, 0, fill=False),
        _series(translate("chart.forecast", lang), forecast, 1, borderDash=[6, 4]),
    ]
    columns: list[list[Any]] = [remaining, forecast]
    header = [
        translate("chart.day", lang).format(zone=b.time_zone),
        translate("chart.remaining", lang),
        translate("chart.forecast", lang),
    ]
    if end is not None:
        series.append(_series(translate("chart.even_pace", lang), pace, 2, borderDash=[2, 3]))
        columns.append(pace)
        header.append(translate("chart.even_pace", lang))
    if b.forecast_early is not None:
        band = {"borderWidth": 1, "borderDash": [1, 3]}
        series.append(_series(translate("chart.forecast_early", lang), early, 1, **band))
        shade = {**band, "fill": "-1", "backgroundColor": "rgba(128, 128, 128, 0.15)"}
        series.append(_series(translate("chart.forecast_late", lang), late, 1, **shade))
        columns += [early, late]
        header += [translate("chart.forecast_early", lang), translate("chart.forecast_late", lang)]
    return Chart(
        "burndown",
        translate("programs.burndown", lang),
        _line(labels, series, f"won-{lang}"),
        _table(header, labels, columns),
    )


def _towards_zero(start_won: int, since: date, until: date | None, day: date) -> float | None:
    """A straight line from ``start_won`` on ``since`` to zero on ``until`` (None off it)."""
    if until is None or day < since or day > until:
        return None
    span = (until - since).days
    if span <= 0:
        return 0.0
    return float(round(start_won * (until - day).days / span))


def _days_between(last: date, forecast: date, most: int = 120) -> list[date]:
    """Days after ``last`` up to ``forecast``, thinned to at most ``most`` points."""
    span = (forecast - last).days
    if span <= 0:
        return []
    stride = max(1, span // most)
    days = [last + timedelta(days=d) for d in range(stride, span + 1, stride)]
    if days[-1] != forecast:
        days.append(forecast)
    return days


def spending_chart(chart_id: str, title: str, report: UsageReportOut, dim: str, lang: str) -> Chart:
    """Won charged per group of ``dim`` (public and co-pay stacked)."""
    rows = sorted(report.rows, key=lambda r: -r.charged_won)
    group = "size" if dim == "size_class" else None
    labels = [
        (label(group, r.keys.get(dim), lang) if group else r.keys.get(dim)) or DASH for r in rows
    ]
    public = [r.public_won for r in rows]
    copay = [r.copay_won for r in rows]
    return Chart(
        chart_id,
        title,
        {
            "type": "bar",
            "data": {
                "labels": labels,
                "datasets": [
                    _series(translate("report.public", lang), list(public), 0),
                    _series(translate("report.copay", lang), list(copay), 4),
                ],
            },
            "options": {"yFormat": f"won-{lang}", "stacked": True, "horizontal": True},
        },
        _table(
            [
                translate("report.group", lang),
                translate("report.public", lang),
                translate("report.copay", lang),
            ],
            labels,
            [public, copay],
        ),
    )


def usage_chart(usage: ProjectUsageOut, today: date, lang: str) -> Chart:
    """GPU-hours charged per day over the window, stacked by user (who used the grant)."""
    days = [today - timedelta(days=n) for n in range(usage.days - 1, -1, -1)]
    users = sorted({r.user for r in usage.rows})
    hours = {(r.day, r.user): round(r.gpu_seconds / 3600, 2) for r in usage.rows}
    columns = [[hours.get((d, u), 0) for d in days] for u in users]
    labels = [d.isoformat() for d in days]
    return Chart(
        "usage",
        translate("projects.usage", lang).format(days=usage.days),
        {
            "type": "bar",
            "data": {
                "labels": labels,
                "datasets": [
                    _series(u, c, i) for i, (u, c) in enumerate(zip(users, columns, strict=True))
                ],
            },
            "options": {"yFormat": "number", "stacked": True},
        },
        _table(
            [translate("chart.day", lang).format(zone=usage.time_zone), *users],
            labels,
            columns,
        ),
    )


def bucket_label(start: date, period: str, partial: bool, lang: str) -> str:
    """``2026-12``, ``2026-12-07`` or ``2026-12-07~`` (a week), with "(so far)" when the
    bucket is not over: its figure is not a whole period's."""
    text = f"{start:%Y-%m}" if period == "month" else start.isoformat()
    if period == "week":
        text += "~"
    return text + (" " + translate("usage.partial", lang) if partial else "")


def usage_over_time_charts(out: UsageOverTimeOut, lang: str) -> list[Chart]:
    """GPU-hours and won per bucket, stacked by organization, project or user; the
    bucket not over yet is labelled so, and drawn lighter."""
    zone = ZoneInfo(out.time_zone)
    labels = [
        bucket_label(b.start.astimezone(zone).date(), out.period, b.partial, lang)
        for b in out.buckets
    ]
    charts = []
    for metric, key, y_format in (
        ("gpu_hours", "chart.gpu_hours", "number"),
        ("won", "usage.won", "won"),
    ):
        datasets = []
        columns: list[list[Any]] = []
        for i, item in enumerate(out.series):
            values = list(getattr(item, metric))
            columns.append(values)
            colour = PALETTE[i % len(PALETTE)]
            datasets.append(
                {
                    "label": item.label,
                    "data": values,
                    "borderColor": colour,
                    # the partial bucket lighter: its bar is not a whole period's
                    "backgroundColor": [colour + ("55" if b.partial else "") for b in out.buckets],
                }
            )
        charts.append(
            Chart(
                f"usage-{metric}",
                translate(key, lang) + " · " + translate(f"usage.per_{out.period}", lang),
                {
                    "type": "bar",
                    "data": {"labels": labels, "datasets": datasets},
                    "options": {"yFormat": y_format, "stacked": True},
                },
                _table(
                    [
                        translate("usage.period_of", lang).format(zone=zone_name(zone)),
                        *(item.label for item in out.series),
                    ],
                    labels,
                    columns,
                ),
            )
        )
    return charts
