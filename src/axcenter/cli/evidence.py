"""``axc report evidence PROGRAM``: one self-contained report for the funder, in Korean
and English, with charts, and a PDF of it.

The figures are the server's (``GET /programs/{p}/evidence``: the ledger, the grants, the
jobs, the surveys); the what-if is computed here, as ``axc sim`` is: the center's own
history of the period replayed through the live scheduler on the live center's cluster
(both from the server) and on the cluster grown by N GPUs, and by the GPUs W won would
keep busy over the period at the list price. Charts are SVG drawn by Matplotlib's object
API and inlined, so the HTML needs nothing else; the PDF is WeasyPrint's rendering of the
same HTML (``pip install 'axcenter[pdf]'``).

Every figure that comes from the ledger is marked ``data-check="..."`` with its exact
value (``data-value``), so ``tests/accounting/test_evidence.py`` reconciles the report
with the ledger and the history.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from axcenter.sim.cluster import ClusterSpec
from axcenter.sim.whatif import SERVED_WAIT_S, Scenario, WhatIf, replay_history

__all__ = ["render_evidence", "scenarios_for", "what_ifs"]

DIM_WORDS = {
    "sector": ("산업 분야별", "by industry"),
    "size_class": ("기업 규모별", "by company size"),
    "region": ("지역별", "by region"),
    "gpu_type": ("GPU 종류별", "by GPU type"),
}

_CSS = """
body{font-family:"Noto Sans CJK KR","NanumGothic","Malgun Gothic","Apple SD Gothic Neo",
system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1b1b1b;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:2px solid #2a5d9f;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #bbb;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}
tr.total td,tr.total th{font-weight:bold;background:#f0f4fa}
.cards{display:flex;flex-wrap:wrap;gap:.8em}.card{border:1px solid #ccd;padding:.6em 1em;
min-width:11em}.card .v{font-size:1.3em;font-weight:bold}.en{color:#555}
figure{margin:1em 0}svg{max-width:100%;height:auto}.note{color:#555;font-size:.9em}
@media print{h2{break-before:auto}figure,table{break-inside:avoid}}
"""


def _bi(ko: str, en: str) -> str:
    return f"{html.escape(ko)} <span class='en'>{html.escape(en)}</span>"


def _won(v: int) -> str:
    return f"{v:,}"


def _hours(secs: int) -> str:
    return f"{secs / 3600:,.1f}"


def _dur(secs: float | None) -> str:
    if secs is None:
        return "-"
    if secs < 60:
        return f"{secs:.0f} s"
    if secs < 3600:
        return f"{secs / 60:.1f} min"
    return f"{secs / 3600:.2f} h"


def _checked(key: str, value: int, text: str | None = None) -> str:
    """A figure the reconciliation test reads back: ``data-check`` names it."""
    shown = html.escape(text if text is not None else _won(value))
    return f"<span data-check='{html.escape(key)}' data-value='{value}'>{shown}</span>"


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _bar_chart(labels: Sequence[str], values: Sequence[float], ylabel: str) -> str:
    from matplotlib.figure import Figure  # noqa: PLC0415

    fig = Figure(figsize=(6.0, 2.6))
    ax = fig.subplots()
    ax.bar(range(len(labels)), values, color="#2a5d9f")
    ax.set_xticks(range(len(labels)), [str(label)[:18] for label in labels], rotation=30)
    ax.set_ylabel(ylabel)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def _line_chart(labels: Sequence[str], series: Mapping[str, Sequence[float | None]]) -> str:
    from matplotlib.figure import Figure  # noqa: PLC0415

    fig = Figure(figsize=(6.0, 2.6))
    ax = fig.subplots()
    for name, values in series.items():
        ys = [math.nan if v is None else v / 3600 for v in values]
        ax.plot(range(len(labels)), ys, marker="o", label=name)
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_ylabel("hours")
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], total: Sequence[str] = ()) -> str:
    out = ["<table><thead><tr>", *(f"<th>{h}</th>" for h in head), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    if total:
        out.append("<tr class='total'>" + "".join(f"<td>{c}</td>" for c in total) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


# -- the what-if ----------------------------------------------------------------------------


def scenarios_for(
    data: Mapping[str, Any], more_gpus: int | None, more_won: int | None
) -> tuple[list[Scenario], dict[str, Any]]:
    """The baseline, N more GPUs, and the GPUs W won keeps busy over the period (at the
    list price of the type the program used most); and what W won buys in words."""
    cluster = data["cluster"]
    groups = cluster["node_groups"]
    if not groups:
        return [], {}
    used = {r["key"]: r["gpu_seconds"] for r in data["bought"].get("gpu_type", [])}
    types = {g["gpu_type"] for g in groups}
    gpu_type = max(types, key=lambda t: (used.get(t, 0), t))
    per = max(g["gpus_per_node"] for g in groups if g["gpu_type"] == gpu_type)
    have = sum(g["gpus_per_node"] * g["count"] for g in groups if g["gpu_type"] == gpu_type)
    n = more_gpus if more_gpus is not None else max(per, math.ceil(have / 4 / per) * per)
    budget = int(data["program"]["budget_won"])
    w = more_won if more_won is not None else budget // 5
    price = int(cluster["prices"].get(gpu_type) or 0)
    hours = (_parse(data["until"]) - _parse(data["since"])).total_seconds() / 3600
    gpu_hours = w / price if price else 0.0
    won_gpus = math.ceil(gpu_hours / hours) if hours > 0 and gpu_hours else 0
    scenarios = [Scenario("baseline")]
    if n > 0:
        scenarios.append(Scenario(f"+{n} GPUs", gpu_type, per, math.ceil(n / per)))
    if won_gpus > 0:
        scenarios.append(Scenario(f"+{w:,} won", gpu_type, per, math.ceil(won_gpus / per)))
    fundable, left = [], w
    for r in sorted(data["turned_down"], key=lambda r: (r["won"], r["request_id"])):
        if r["won"] <= left:
            fundable.append(r)
            left -= r["won"]
    money = {
        "won": w,
        "gpu_type": gpu_type,
        "price": price,
        "gpu_hours": round(gpu_hours, 1),
        "gpus_over_period": won_gpus,
        "turned_down": len(data["turned_down"]),
        "fundable": fundable,
        "fundable_orgs": sorted({r["organization"] for r in fundable}),
    }
    return scenarios, money


def _parse(text: str) -> Any:
    from datetime import datetime  # noqa: PLC0415

    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def what_ifs(
    data: Mapping[str, Any], scenarios: Sequence[Scenario], workers: int = 2
) -> list[WhatIf]:
    if not scenarios:
        return []
    cluster = ClusterSpec.model_validate(data["cluster"])
    return replay_history(data["history"], cluster, scenarios, workers=workers)


# -- the page -------------------------------------------------------------------------------


def render_evidence(
    data: Mapping[str, Any],
    results: Sequence[WhatIf],
    money: Mapping[str, Any],
    command_line: str = "",
) -> str:
    """The report as one self-contained HTML page (Korean, with English beside)."""
    program = data["program"]
    totals = data["totals"]
    reach = data["reach"]
    waits = data["waits"]
    parts = [
        "<!doctype html><html lang='ko'><head><meta charset='utf-8'>",
        f"<title>{html.escape(program['name'])}: 성과 근거 보고서 / Evidence report</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(program['name'])} — {_bi('성과 근거 보고서', 'Evidence report')}</h1>",
        f"<p>{_bi('기간', 'Period')}: {html.escape(str(data['since']))} - "
        f"{html.escape(str(data['until']))} (UTC) · {_bi('작성', 'written')} "
        f"{html.escape(str(data['generated_at']))} · {html.escape(data['time_zone'])}</p>",
    ]
    if command_line:
        parts.append(f"<p class='note'><code>{html.escape(command_line)}</code></p>")
    # 1. summary
    cards = [
        ("예산", "Budget", _checked("program.budget_won", int(program["budget_won"]))),
        ("협약액", "Granted", _checked("totals.granted_won", int(totals["granted_won"]))),
        ("집행액", "Charged", _checked("totals.charged_won", int(totals["charged_won"]))),
        ("정부 지원", "Public", _checked("totals.public_won", int(totals["public_won"]))),
        ("자부담", "Self-paid", _checked("totals.self_paid_won", int(totals["self_paid_won"]))),
        ("할인", "Discounts", _checked("totals.discount_won", int(totals["discount_won"]))),
        ("회수·반납", "Withdrawn", _checked("totals.withdrawn_won", int(totals["withdrawn_won"]))),
        (
            "GPU 시간",
            "GPU-hours",
            _checked(
                "totals.gpu_seconds", int(totals["gpu_seconds"]), _hours(totals["gpu_seconds"])
            ),
        ),
        ("실행 수", "Runs", _checked("totals.runs", int(totals["runs"]))),
    ]
    parts.append(f"<h2>{_bi('요약', 'Summary')}</h2><div class='cards'>")
    for ko, en, value in cards:
        parts.append(f"<div class='card'>{_bi(ko, en)}<div class='v'>{value}</div></div>")
    parts.append("</div><p class='note'>원 단위 정수 · amounts in won</p>")
    # 2. what the program bought
    parts.append(f"<h2>{_bi('지원 내역', 'What the program bought')}</h2>")
    for dim, (ko, en) in DIM_WORDS.items():
        rows = data["bought"].get(dim, [])
        parts.append(f"<h3>{_bi(ko, en)}</h3>")
        if not rows:
            parts.append("<p>-</p>")
            continue
        parts.append(
            "<figure>"
            + _bar_chart(
                [r["key"] for r in rows], [r["gpu_seconds"] / 3600 for r in rows], "GPU-hours"
            )
            + "</figure>"
        )
        body = [
            [
                html.escape(str(r["key"])),
                _checked(
                    f"bought.{dim}.{r['key']}.gpu_seconds",
                    r["gpu_seconds"],
                    _hours(r["gpu_seconds"]),
                ),
                _checked(f"bought.{dim}.{r['key']}.charged_won", r["charged_won"]),
                _checked(f"bought.{dim}.{r['key']}.runs", r["runs"]),
            ]
            for r in rows
        ]
        sums = [sum(int(r[k]) for r in rows) for k in ("gpu_seconds", "charged_won", "runs")]
        parts.append(
            _table(
                ["", "GPU 시간 GPU-hours", "집행액 won", "실행 runs"],
                body,
                [
                    "합계 TOTAL",
                    _checked(f"bought.{dim}.TOTAL.gpu_seconds", sums[0], _hours(sums[0])),
                    _checked(f"bought.{dim}.TOTAL.charged_won", sums[1]),
                    _checked(f"bought.{dim}.TOTAL.runs", sums[2]),
                ],
            )
        )
    # 3. reach
    parts.append(f"<h2>{_bi('수혜 기관', 'Who it reached')}</h2>")
    reach_rows = [
        (_bi("협약 기관", "organizations with a grant"), "reach.organizations"),
        (_bi("사용 기관", "organizations that ran jobs"), "reach.organizations_used"),
        (_bi("첫 지원 기관", "first-time users"), "reach.first_time"),
        (_bi("중소기업", "SMEs"), "reach.smes"),
        (_bi("과제", "projects"), "reach.projects"),
    ]
    parts.append(
        _table(
            ["", "수 count"],
            [[label, _checked(key, int(reach[key.split(".")[1]]))] for label, key in reach_rows],
        )
    )
    # 4. waits
    parts.append(f"<h2>{_bi('대기 시간', 'How long they waited')}</h2>")
    o = waits["overall"]
    parts.append(
        f"<p>{_bi('작업', 'jobs')}: {_checked('waits.overall.n', int(o['n']))} · "
        f"p50 {_dur(o['p50_s'])} · p90 {_dur(o['p90_s'])} · p95 {_dur(o['p95_s'])}</p>"
    )
    months = list(waits["by_month"])
    if months:
        parts.append(
            "<figure>"
            + _line_chart(
                months,
                {
                    "p50": [waits["by_month"][m]["p50_s"] for m in months],
                    "p95": [waits["by_month"][m]["p95_s"] for m in months],
                },
            )
            + "</figure>"
        )
        parts.append(
            _table(
                ["월 month", "작업 jobs", "p50", "p90", "p95"],
                [
                    [m, str(s["n"]), _dur(s["p50_s"]), _dur(s["p90_s"]), _dur(s["p95_s"])]
                    for m, s in waits["by_month"].items()
                ],
            )
        )
    parts.append(
        f"<h3>{_bi('기업 규모별', 'by company size')}</h3>"
        + _table(
            ["규모 size", "작업 jobs", "p50", "p90", "p95"],
            [
                [html.escape(k), str(s["n"]), _dur(s["p50_s"]), _dur(s["p90_s"]), _dur(s["p95_s"])]
                for k, s in waits["by_size"].items()
            ],
        )
    )
    # 5. outcomes
    parts.append(f"<h2>{_bi('성과', 'Outcomes (surveys)')}</h2>")
    if not data["outcomes"]:
        parts.append("<p>-</p>")
    for form in data["outcomes"]:
        parts.append(
            f"<h3>{html.escape(form['form'])} · {_bi('응답 과제', 'respondents')} "
            f"{form['respondents']}</h3>"
        )
        parts.append(
            _table(
                ["항목 item", "값 value", "응답 answered"],
                [
                    [
                        _bi(f["label_ko"], f["label_en"]),
                        _checked(f"outcomes.{form['form']}.{f['key']}", int(f["value"])),
                        str(f["answered"]),
                    ]
                    for f in form["fields"]
                ],
            )
        )
    # 6. what more GPUs or won would have changed
    title = _bi("GPU·예산 추가 시 효과", "What N more GPUs or W more won would have changed")
    parts.append(f"<h2>{title}</h2>")
    groups = data["cluster"]["node_groups"]
    parts.append(
        "<p>"
        + _bi("현재 센터 구성", "the live center")
        + ": "
        + ", ".join(f"{g['count']} x {g['gpu_type']}x{g['gpus_per_node']}" for g in groups)
        + f" · {_bi('재현한 작업', 'jobs replayed')}: {len(data['history']):,}</p>"
    )
    if results:
        base = results[0]
        parts.append(
            "<figure>"
            + _bar_chart(
                [r.scenario.label for r in results],
                [(r.program_p95_wait_s or 0.0) / 3600 for r in results],
                "program p95 wait (h)",
            )
            + "</figure>"
        )
        parts.append(
            _table(
                [
                    "시나리오 scenario",
                    "GPU",
                    "전체 p50/p95 all",
                    "사업 p50/p95 program",
                    f"1시간 초과 대기 waited >{SERVED_WAIT_S / 3600:.0f} h",
                    "신속 지원 과제 projects served",
                    "가동률 utilization",
                ],
                [
                    [
                        html.escape(r.scenario.label),
                        f"{r.gpus:,}",
                        f"{_dur(r.p50_wait_s)} / {_dur(r.p95_wait_s)}",
                        f"{_dur(r.program_p50_wait_s)} / {_dur(r.program_p95_wait_s)}",
                        f"{r.program_waited_over:,}",
                        f"{r.program_projects_served}/{r.program_projects}",
                        f"{r.utilization:.1%}",
                    ]
                    for r in results
                ],
            )
        )
        sizes = sorted({k for r in results for k in r.p95_by_size})
        parts.append(
            _table(
                ["시나리오 scenario", *(f"p95 {html.escape(s)}" for s in sizes)],
                [
                    [html.escape(r.scenario.label), *(_dur(r.p95_by_size.get(s)) for s in sizes)]
                    for r in results
                ],
            )
        )
        same = _bi(
            "모든 시나리오는 같은 작업 이력을 같은 스케줄러로 재현한 결과입니다.",
            "Every scenario replays the same history under the live scheduler; "
            "compare them with the baseline replay",
        )
        parts.append(f"<p class='note'>{same} (baseline p95 {_dur(base.program_p95_wait_s)}).</p>")
    if money:
        names = money["fundable_orgs"]
        orgs = ", ".join(html.escape(o) for o in names[:10]) or "-"
        if len(names) > 10:
            orgs += f" … +{len(names) - 10}"
        parts.append(
            f"<p>{_won(money['won'])} {_bi('원 추가 시', 'more won')}: "
            f"{money['gpu_type']} {money['gpu_hours']:,} GPU-hours "
            f"({money['price']:,} won/GPU-hour) ≈ {money['gpus_over_period']} GPUs "
            f"{_bi('기간 내내', 'over the period')}; "
            f"{_bi('미지원·감액 신청', 'requests turned down or cut')} {money['turned_down']} "
            f"{_bi('중 지원 가능', 'of which fundable')}: "
            f"{len(money['fundable'])} ({orgs})</p>"
        )
    # 7. method
    parts.append(
        f"<h2>{_bi('산출 기준', 'How the figures are made')}</h2><ul class='note'>"
        "<li>집행액·정부 지원·자부담·할인은 원장(ledger)의 해당 기간 집행(charge) "
        "합계이며 정산표와 같습니다. "
        "<span class='en'>Charged, public, self-paid and discounts are the sums of the ledger's "
        "charges in the period, as in the settlement.</span></li>"
        "<li>대기 시간은 이 사업이 지원한 작업의 제출부터 시작까지(최근 실행) 시간입니다. "
        "<span class='en'>Waits: submission to the start of the latest run, jobs funded by the "
        "program, nearest-rank percentiles.</span></li>"
        "<li>성과는 조사표별로 과제마다 가장 최근 응답을 합산합니다. "
        "<span class='en'>Outcomes: each project's latest answer per form, summed.</span></li>"
        "</ul></body></html>"
    )
    return "".join(parts)
