"""Chart configurations: a new program's burn-down says something, times are the
center's, and company sizes are words."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from axcenter.service.schemas import (
    BurndownDayOut,
    BurndownOut,
    HistoryOut,
    HistoryPointOut,
    UsageOverTimeOut,
    UsageReportOut,
    UsageRowOut,
    UsageSeriesItemOut,
)
from axcenter.web.charts import burndown_chart, history_charts, spending_chart

NOW = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)  # 12:00 in Seoul


def _burndown(days: list[BurndownDayOut], **extra: object) -> BurndownOut:
    fields: dict[str, object] = {
        "program_id": "prg_x",
        "program": "New",
        "budget_won": 3_000_000,
        "granted_won": 0,
        "charged_won": 0,
        "public_won": 0,
        "copay_won": 0,
        "remaining_won": 3_000_000,
        "rate_won_per_day": Decimal(0),
        "forecast": None,
        "starts_at": NOW,
        "ends_at": NOW + timedelta(days=30),
        "now": NOW,
        "days": days,
        "time_zone": "Asia/Seoul",
    }
    fields.update(extra)
    return BurndownOut.model_validate(fields)


def _day(d: date, remaining: int) -> BurndownDayOut:
    return BurndownDayOut(
        day=d,
        charged_won=0,
        public_won=0,
        cumulative_charged_won=3_000_000 - remaining,
        cumulative_public_won=0,
        remaining_won=remaining,
    )


def test_a_new_programs_burn_down_shows_its_plan_to_the_end() -> None:
    chart = burndown_chart(_burndown([_day(date(2026, 3, 10), 3_000_000)]), "ko")
    remaining, forecast, pace = chart.config["data"]["datasets"]
    labels = chart.config["data"]["labels"]
    assert labels[0] == "2026-03-10" and labels[-1] == "2026-04-09"  # to the end, in KST
    assert [v for v in remaining["data"] if v is not None] == [3_000_000.0]
    assert pace["data"][0] == 3_000_000 and pace["data"][-1] == 0  # even pace to zero
    assert all(v is None for v in forecast["data"])  # nothing charged: no forecast
    assert chart.table[0][0] == "날짜 (Asia/Seoul)"


def test_a_forecast_past_the_end_stops_at_the_end_above_zero() -> None:
    days = [_day(date(2026, 3, 9), 3_000_000), _day(date(2026, 3, 10), 2_900_000)]
    b = _burndown(days, remaining_won=2_900_000, forecast=date(2026, 12, 31))
    chart = burndown_chart(b, "en")
    _, forecast, _ = chart.config["data"]["datasets"]
    assert chart.config["data"]["labels"][-1] == "2026-04-09"
    assert forecast["data"][1] == 2_900_000 and 0 < forecast["data"][-1] < 2_900_000


def test_history_labels_are_the_centers_times() -> None:
    point = HistoryPointOut(
        at=NOW,
        gpus_used={"H100": 1.0},
        utilization={"H100": 0.25},
        pending_jobs=0.0,
        starts=0,
        wait_p50_s=None,
        wait_p90_s=None,
    )
    history = HistoryOut(
        since=NOW,
        until=NOW + timedelta(hours=1),
        bucket_s=3600,
        capacity={"H100": 4},
        points=[point],
    )
    utilization = history_charts(history, "ko", ZoneInfo("Asia/Seoul"))[0]
    assert utilization.config["data"]["labels"] == ["12:00"]
    assert utilization.table[0][0] == "시각 (KST)"


def test_company_sizes_are_words() -> None:
    row = UsageRowOut(
        keys={"program": "New", "size_class": "SME"},
        granted_gpu_seconds=0,
        granted_gpu_hours=Decimal(0),
        used_gpu_seconds=0,
        used_gpu_hours=Decimal(0),
        utilization=None,
        charged_won=10,
        public_won=8,
        copay_won=2,
        runs=1,
        jobs=1,
        wait_mean_s=None,
        wait_p95_s=None,
    )
    report = UsageReportOut(
        group_by=["program", "size_class"],
        since=None,
        until=None,
        generated_at=NOW,
        rows=[row],
        total=row,
    )
    chart = spending_chart("by-size", "t", report, "size_class", "ko")
    assert chart.config["data"]["labels"] == ["중소기업"]


def test_usage_over_time_marks_the_partial_bucket_and_starts_at_the_first_charge() -> None:
    from axcenter.service.usage import buckets
    from axcenter.web.charts import usage_over_time_charts

    seoul = ZoneInfo("Asia/Seoul")
    first = datetime(2026, 1, 20, 16, 0, tzinfo=UTC)  # 2026-01-21 01:00 in Seoul
    periods = buckets(first, NOW, NOW, "month", seoul)
    # January (in Seoul) to March: no month before the first charge; March not over
    assert [b.start.astimezone(seoul).date() for b in periods] == [
        date(2026, 1, 1),
        date(2026, 2, 1),
        date(2026, 3, 1),
    ]
    assert [b.partial for b in periods] == [False, False, True]
    weeks = buckets(first, NOW, NOW, "week", seoul)
    assert weeks[0].start.astimezone(seoul).date() == date(2026, 1, 19)  # a Monday
    out = UsageOverTimeOut(
        level="organization",
        period="month",
        time_zone="Asia/Seoul",
        first_at=first,
        buckets=periods,
        series=[
            UsageSeriesItemOut(
                key="org_a",
                label="Acme",
                gpu_hours=[2.0, 0.0, 1.5],
                won=[9_000, 0, 6_750],
                total_gpu_hours=3.5,
                total_won=15_750,
            )
        ],
    )
    hours, won = usage_over_time_charts(out, "ko")
    assert hours.config["data"]["labels"] == ["2026-01", "2026-02", "2026-03 (진행 중)"]
    colours = hours.config["data"]["datasets"][0]["backgroundColor"]
    assert colours[0] == colours[1] != colours[2]  # the partial month drawn lighter
    assert won.config["options"]["yFormat"] == "won"
    assert hours.table[-1] == ["2026-03 (진행 중)", "1.5"]
