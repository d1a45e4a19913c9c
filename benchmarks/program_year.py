"""A year of a synthetic funding program run through the real services, then its evidence
report (issue 22).

Several hundred companies (size, region, industry, youth startups drawn with a seed)
apply to a program with a regional discount, youth-startup and SME terms, a self-paid
share, a concentration cap and grants in two tranches. Each request is filed, assigned,
reviewed and decided through ``service.allocations`` (some rejected, some cut, some
refused by the cap or the budget); grantees run jobs; at each grant's midpoint its
progress report is filed and accepted (a few returned first), releasing the second
tranche; projects answer the outcome survey (some late, and reminded); a monitoring
pass warns, suspends and takes back part of idle grants. The services read the time
from ``store.types.utcnow``: the generator moves a simulated clock through the year
(``SimulatedClock``), so every approval, report and notice carries its date.

The jobs' start times come from the live scheduler: the year's jobs are replayed by the
simulator (``sched.plan``) on the center's own cluster, and each run is then held and
settled by the ledger's own batch functions (``HoldBook``, ``settle_jobs``) at its start
and end, under the program's terms.

Then ``axc report evidence``'s own steps (``service.evidence``, the what-if replays,
``cli.evidence.render_evidence``) write the report, timed, and its figures are checked
against the ledger. Prints JSON rows: the generation, the report (seconds) and the
checks.

    .venv/bin/python benchmarks/program_year.py [--companies 300] [--out evidence.html]
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

import axcenter.store.types as store_types
from axcenter.accounting.ledger import HoldBook, InsufficientFunds, settle_jobs
from axcenter.model.access import Principal, Role
from axcenter.model.ids import new_id
from axcenter.service import allocations, monitoring, obligations, rules, surveys, tranches
from axcenter.service.center import Center
from axcenter.service.errors import ServiceError
from axcenter.service.program_schemas import (
    ProgramRulesIn,
    ProgressReportIn,
    ReclaimIn,
    SurveyAnswerIn,
    SurveyFormIn,
)
from axcenter.service.programs import create_program_tx, set_price_tx
from axcenter.service.schemas import ApproveIn, ProgramIn, RequestIn
from axcenter.settings import Settings
from axcenter.sim.cluster import ClusterSpec
from axcenter.sim.engine import SimOptions, simulate
from axcenter.sim.workload import TraceJob, Workload
from axcenter.store import orm
from axcenter.store.accounts import create_organization, create_user

PROGRAM = "AI Compute Voucher"
DAY = timedelta(days=1)
REGIONS = ["Gwangju"] * 25 + ["Seoul"] * 35 + ["Busan"] * 12 + ["Daejeon"] * 14 + ["Jeonnam"] * 14
SECTORS = ["manufacturing", "bio", "finance", "media", "mobility", "public", "education"]
SIZES = ["SME"] * 70 + ["mid"] * 20 + ["large"] * 10
H100_PRICE = 4500
A100_PRICE = 2800
GRANT_DAYS = 120
CLUSTER = "H100:8x3,A100:8x1"
#: the hold grace of a center with the default kill grace (service.center.HOLD_SLACK_S)
HOLD_GRACE_S = 15


# -- a clock the services read ------------------------------------------------------------


class SimulatedClock:
    """Replace ``store.types.utcnow`` wherever a loaded axcenter module imported it, so
    the services date what they write at the simulated moment (``at``)."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self._original = store_types.utcnow
        self._patched: list[Any] = []

    def __call__(self) -> datetime:
        return self.now

    def __enter__(self) -> SimulatedClock:
        for module in list(sys.modules.values()):
            name = getattr(module, "__name__", "")
            if name.startswith("axcenter") and getattr(module, "utcnow", None) is self._original:
                module.utcnow = self  # type: ignore[attr-defined]
                self._patched.append(module)
        return self

    def __exit__(self, *exc: object) -> None:
        for module in self._patched:
            module.utcnow = self._original  # type: ignore[attr-defined]


# -- the world ---------------------------------------------------------------------------


@dataclass
class Company:
    org_id: str
    name: str
    size: str
    region: str
    startup: bool
    admin: Principal
    project: str
    project_id: str
    idle: bool  # its grant will sit idle


@dataclass
class Year:
    start: datetime
    companies: list[Company]
    staff: dict[str, Principal]
    grants: dict[str, str] = field(default_factory=dict)  # project -> allocation id
    refused: dict[str, int] = field(default_factory=dict)
    jobs: int = 0
    unfunded: int = 0
    notices: int = 0


def _principal(user: orm.User) -> Principal:
    return Principal(user.id, user.name, user.organization_id, Role(user.role))


def _world(center: Center, rng: random.Random, n: int, start: datetime) -> Year:
    with center.store.write() as s:
        ops = create_organization(s, "Center Operations")
        panel = create_organization(s, "Review Panel")
        staff = {
            "operator": _principal(create_user(s, "operator", ops.id, Role.OPERATOR)),
            "pm": _principal(create_user(s, "pm", ops.id, Role.PROGRAM_MANAGER)),
        }
        for i in range(3):
            staff[f"rev{i}"] = _principal(create_user(s, f"reviewer-{i}", panel.id, Role.REVIEWER))
        companies = []
        for i in range(n):
            size, region = rng.choice(SIZES), rng.choice(REGIONS)
            org = create_organization(s, f"Company {i:03d}", size_class=size, region=region)
            org.youth_startup = size == "SME" and rng.random() < 0.2
            admin = create_user(s, f"admin-{i:03d}", org.id, Role.ORG_ADMIN)
            project = orm.Project(
                id=new_id("prj"),
                name=f"p-{i:03d}",
                organization_id=org.id,
                sector=rng.choice(SECTORS),
            )
            s.add(project)
            s.flush()
            s.add(orm.ProjectMember(project_id=project.id, user_id=admin.id))
            companies.append(
                Company(
                    org.id,
                    org.name,
                    size,
                    region,
                    bool(org.youth_startup),
                    _principal(admin),
                    project.name,
                    project.id,
                    idle=rng.random() < 0.08,
                )
            )
    return Year(start, companies, staff)


def _program(center: Center, year: Year, budget_won: int) -> str:
    pm, op = year.staff["pm"], year.staff["operator"]
    with center.store.write() as s:
        set_price_tx(s, op, "H100", H100_PRICE)
        set_price_tx(s, op, "A100", A100_PRICE)
        out = create_program_tx(
            s,
            pm,
            ProgramIn(
                name=PROGRAM,
                budget_won=budget_won,
                starts_at=year.start,
                ends_at=year.start + 365 * DAY,
                public_share_bp=7000,
                description="synthetic year (benchmarks/program_year.py)",
            ),
        )
        s.flush()
        for c in year.companies:
            s.get(orm.Project, c.project_id).program_id = out.id
        rules.set_rules_tx(
            s,
            pm,
            out.id,
            ProgramRulesIn.model_validate(
                {
                    "self_paid_bp": 2000,
                    "modifiers": [
                        {"kind": "region", "match": "Gwangju", "discount_bp": 5000},
                        {"kind": "startup", "discount_bp": 3000},
                        {"kind": "size", "match": "SME", "discount_bp": 1000},
                    ],
                    "caps": {"org_gpu_hours": 2500},
                    "tranches_bp": [5000, 5000],
                }
            ),
            store_types.utcnow(),
        )
        surveys.create_form_tx(
            s,
            pm,
            out.id,
            SurveyFormIn.model_validate(
                {
                    "name": "Outcomes",
                    "fields": [
                        _field("models_built", "Models built", "개발 모델 수", "count"),
                        _field(
                            "services_launched",
                            "Products or services launched",
                            "출시 제품·서비스",
                            "count",
                        ),
                        _field("revenue_won", "Revenue", "매출", "won"),
                        _field("patents", "Patents", "특허", "count"),
                        _field("papers", "Papers", "논문", "count"),
                        _field("jobs_created", "Jobs created", "신규 고용", "count"),
                        _field("datasets", "Data sets", "데이터셋", "count"),
                        _field("commercialised", "Commercialised", "사업화 여부", "yes_no"),
                    ],
                    "due_dates": [(year.start + 182 * DAY).date().isoformat()],
                    "at_end": True,
                }
            ),
            store_types.utcnow(),
        )
        return out.id


def _field(key: str, en: str, ko: str, kind: str) -> dict[str, Any]:
    return {"key": key, "label_en": en, "label_ko": ko, "kind": kind}


# -- the year's events --------------------------------------------------------------------


class Events:
    """Actions in time order; each runs with the clock at its moment."""

    def __init__(self, clock: SimulatedClock) -> None:
        self.clock = clock
        self._heap: list[tuple[datetime, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def at(self, when: datetime, action: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), action))

    def run(self, until: datetime | None = None) -> None:
        while self._heap and (until is None or self._heap[0][0] <= until):
            when, _, action = heapq.heappop(self._heap)
            self.clock.now = max(self.clock.now, when)
            action()


def _requests(center: Center, year: Year, events: Events, rng: random.Random) -> None:
    """Every company applies once in the first eight months; reviewed and decided."""
    pm = year.staff["pm"]
    reviewers = [year.staff[f"rev{i}"] for i in range(3)]

    def file(c: Company, filed: datetime) -> None:
        hours = int(min(max(rng.lognormvariate(math.log(700), 0.7), 100), 3000))
        ends = min(filed + GRANT_DAYS * DAY, year.start + 365 * DAY - DAY)
        try:
            with center.store.write() as s:
                req = allocations.create_request_tx(
                    s,
                    c.admin,
                    RequestIn(
                        project=c.project,
                        items={"H100": hours},
                        starts_at=filed + 10 * DAY,
                        ends_at=ends,
                        justification=f"{c.name}: model training and a pilot service",
                    ),
                )
        except ServiceError as exc:
            year.refused[type(exc).__name__] = year.refused.get(type(exc).__name__, 0) + 1
            return
        events.at(filed + 3 * DAY, lambda: assign(c, req.id))

    def assign(c: Company, request_id: str) -> None:
        names = [r.name for r in rng.sample(reviewers, 2)]
        with center.store.write() as s:
            allocations.assign_tx(s, pm, request_id, names, store_types.utcnow())
        events.at(store_types.utcnow() + 4 * DAY, lambda: review(c, request_id, names))

    def review(c: Company, request_id: str, names: list[str]) -> None:
        scores = []
        for name in names:
            who = next(r for r in reviewers if r.name == name)
            score = min(5, max(1, round(rng.gauss(3.6, 0.9))))
            scores.append(score)
            with center.store.write() as s:
                allocations.review_tx(s, who, request_id, score, "reviewed", store_types.utcnow())
        events.at(store_types.utcnow() + 3 * DAY, lambda: decide(c, request_id, sum(scores) / 2))

    def decide(c: Company, request_id: str, mean: float) -> None:
        now = store_types.utcnow()
        if mean < 2.6:
            allocations.reject(center, pm, request_id, f"mean score {mean:.1f} below the line")
            year.refused["low score"] = year.refused.get("low score", 0) + 1
            return
        with center.store.read() as s:
            asked = int(s.get(orm.AllocationRequest, request_id).items["H100"])
        items = {"H100": max(50, int(asked * 0.7))} if mean < 3.2 else None
        try:
            with center.store.write() as s:
                out = allocations.approve_tx(
                    s,
                    pm,
                    request_id,
                    ApproveIn(items=items, starts_at=now, comment="approved"),
                    now,
                )
        except ServiceError as exc:
            reason = "cap" if "concentration cap" in exc.message else "budget"
            allocations.reject(center, pm, request_id, exc.message)
            year.refused[reason] = year.refused.get(reason, 0) + 1
            return
        assert out.allocation_id is not None
        year.grants[c.project] = out.allocation_id

    for c in year.companies:
        filed = year.start + timedelta(days=rng.uniform(0, 240))
        events.at(filed, lambda c=c, filed=filed: file(c, filed))


# -- jobs: demand per grant, starts from the scheduler, money from the ledger ---------------


@dataclass(frozen=True)
class Demand:
    job_id: str
    project_id: str
    allocation_id: str
    user_id: str
    submit: datetime
    gpus: int
    seconds: int
    limit_s: int


def _demand(center: Center, year: Year, rng: random.Random) -> list[Demand]:
    """Jobs of each grant over its window: together 50-90% of the grant (under 5% for an
    idle one), each half of the window within its tranche."""
    out = []
    by_project = {c.project: c for c in year.companies}
    with center.store.read() as s:
        for project, alloc_id in year.grants.items():
            c = by_project[project]
            a = s.get(orm.Allocation, alloc_id)
            full = s.scalar(
                select(func.sum(orm.GrantTranche.gpu_seconds)).where(
                    orm.GrantTranche.allocation_id == alloc_id
                )
            ) or s.scalar(
                select(func.sum(orm.AllocationItem.gpu_seconds)).where(
                    orm.AllocationItem.allocation_id == alloc_id
                )
            )
            share = rng.uniform(0.0, 0.05) if c.idle else rng.uniform(0.5, 0.9)
            window = (a.ends_at - a.starts_at).total_seconds()
            for half in (0, 1):
                target = int(full) * share / 2
                used = 0.0
                while used < target:
                    gpus = rng.choice([1, 1, 2, 2, 4, 8])
                    seconds = int(
                        min(max(rng.lognormvariate(math.log(3 * 3600), 1.0), 600), 36 * 3600)
                    )
                    if used + gpus * seconds > target:
                        break
                    offset = window * (half + rng.uniform(0.02, 0.85)) / 2
                    limit = min(72 * 3600, max(3600, int(seconds * rng.uniform(1.2, 3.0))))
                    out.append(
                        Demand(
                            new_id("job"),
                            c.project_id,
                            alloc_id,
                            c.admin.user_id,
                            a.starts_at + timedelta(seconds=offset),
                            gpus,
                            seconds,
                            limit,
                        )
                    )
                    used += gpus * seconds
    out.sort(key=lambda d: (d.submit, d.job_id))
    return out


def _schedule(
    center: Center, demand: list[Demand], start: datetime
) -> dict[str, tuple[float, float]]:
    """Each job's (start, end) in seconds from ``start``, from the scheduler on the live
    center's cluster (the simulator replays them through ``sched.plan``)."""
    with center.store.read() as s:
        groups: dict[tuple[str, int], int] = {}
        for node in s.scalars(select(orm.Node)):
            groups[node.gpu_type, node.gpu_count] = (
                groups.get((node.gpu_type, node.gpu_count), 0) + 1
            )
    cluster = ClusterSpec(
        name="live",
        node_groups=[
            {"name": f"{t.lower()}-{g}", "gpu_type": t, "gpus_per_node": g, "count": n}
            for (t, g), n in sorted(groups.items())
        ],
    )
    workload = Workload(
        name="program-year",
        jobs=[
            TraceJob(
                id=d.job_id,
                submit=(d.submit - start).total_seconds(),
                duration=float(d.seconds),
                gpus_per_node=d.gpus,
                gpu_types=("H100",),
                tenant=d.project_id,
                time_limit=float(d.limit_s),
            )
            for d in demand
        ],
    )
    result = simulate(workload, cluster, "axcenter", SimOptions(interval_s=60.0))
    out = {}
    for job_id, first, end in zip(result.ids, result.first_start, result.end, strict=True):
        if not (math.isnan(first) or math.isnan(end)):
            out[job_id] = (float(first), float(end))
    return out


def _jobs(
    center: Center,
    year: Year,
    events: Events,
    demand: list[Demand],
    times: dict[str, tuple[float, float]],
) -> None:
    """Hold each job's worst case at its start and settle it at its end (the ledger's
    batch functions, as the control loop calls them)."""

    def start(d: Demand, started: datetime, ended: datetime) -> None:
        with center.store.write() as s:
            book = HoldBook(s, started)
            funding = book.allocation(d.project_id, "H100")
            try:
                if funding is None:
                    raise InsufficientFunds("no grant in force")
                book.hold(funding, d.job_id, "H100", d.gpus, d.limit_s + HOLD_GRACE_S)
            except InsufficientFunds:
                year.unfunded += 1  # it would have waited for budget: it never ran
                return
            s.add(
                orm.Job(
                    id=d.job_id,
                    project_id=d.project_id,
                    user_id=d.user_id,
                    command=["train"],
                    workdir="/tmp",
                    env={},
                    gpus_per_node=d.gpus,
                    nodes=1,
                    cpus_per_node=4,
                    memory_mb_per_node=16_384,
                    time_limit_s=d.limit_s,
                    priority=0,
                    gpu_types=["H100"],
                    state="succeeded",
                    gpu_type="H100",
                    submitted_at=d.submit,
                    started_at=started,
                    ended_at=ended,
                    exit_code=0,
                    attempts=1,
                    allocation_id=d.allocation_id,
                )
            )
            s.flush()
            book.write()
        year.jobs += 1
        events.at(ended, lambda: settle(d, ended))

    def settle(d: Demand, ended: datetime) -> None:
        with center.store.write() as s:
            settle_jobs(s, [(d.job_id, ended)])

    for d in demand:
        if d.job_id not in times:
            continue
        first, end = times[d.job_id]
        started = year.start + timedelta(seconds=first)
        ended = year.start + timedelta(seconds=end)
        events.at(started, lambda d=d, started=started, ended=ended: start(d, started, ended))


def _reports_and_surveys(center: Center, year: Year, events: Events, rng: random.Random) -> None:
    pm = year.staff["pm"]
    by_project = {c.project: c for c in year.companies}
    with center.store.read() as s:
        form_id = s.scalar(select(orm.SurveyForm.id))
        due = [date.fromisoformat(d) for d in s.get(orm.SurveyForm, form_id).due_dates]
        windows = {
            p: (a.starts_at, a.ends_at)
            for p, alloc_id in year.grants.items()
            if (a := s.get(orm.Allocation, alloc_id)) is not None
        }

    def report(c: Company, alloc_id: str, returned_once: bool) -> None:
        try:
            out = tranches.submit_report(
                center, c.admin, alloc_id, ProgressReportIn(summary="models trained; pilot running")
            )
        except ServiceError:
            return
        later = store_types.utcnow() + timedelta(days=rng.uniform(2, 10))

        def decide() -> None:
            if not returned_once and rng.random() < 0.1:
                tranches.return_report(center, pm, out.id, "add the usage figures")
                events.at(store_types.utcnow() + 7 * DAY, lambda: report(c, alloc_id, True))
            else:
                with suppress(ServiceError):
                    tranches.accept_report(center, pm, out.id, "progress as planned")

        events.at(later, decide)

    def answer(c: Company, rnd: str) -> None:
        scale = {"SME": 1, "mid": 2, "large": 4}[c.size]
        values = {
            "models_built": rng.randint(0, 3) * scale,
            "services_launched": rng.randint(0, 2),
            "revenue_won": rng.randint(0, 50) * 10_000_000 * scale,
            "patents": rng.randint(0, 2),
            "papers": rng.randint(0, 2),
            "jobs_created": rng.randint(0, 5) * scale,
            "datasets": rng.randint(0, 3),
            "commercialised": rng.random() < 0.4,
        }
        with suppress(ServiceError):
            surveys.answer(
                center,
                c.admin,
                form_id,
                SurveyAnswerIn(project=c.project, round=rnd, answers=values),
            )

    for project, alloc_id in year.grants.items():
        c = by_project[project]
        begin, end = windows[project]
        if rng.random() < 0.9 and not c.idle:  # the rest never report: overdue, reminded
            late = rng.uniform(-10, 20) if rng.random() < 0.8 else rng.uniform(20, 40)
            events.at(
                begin + (end - begin) / 2 + timedelta(days=late),
                lambda c=c, a=alloc_id: report(c, a, False),
            )
        for d in due:
            moment = datetime.combine(d, datetime.min.time(), UTC)
            if begin <= moment <= end + 30 * DAY and rng.random() < 0.85:
                events.at(
                    moment - timedelta(days=rng.uniform(-15, 10)),
                    lambda c=c, r=d.isoformat(): answer(c, r),
                )
        if rng.random() < 0.8:
            events.at(
                end + timedelta(days=rng.uniform(1, 40)), lambda c=c: answer(c, surveys.FINAL_ROUND)
            )


def _monitoring(center: Center, year: Year, events: Events, program_id: str) -> None:
    """Monthly: reminders of what is overdue; every quarter, idle grants are warned, and
    those warned before are suspended and a part taken back."""
    pm = year.staff["pm"]
    warned: set[str] = set()

    def monthly() -> None:
        year.notices += len(obligations.remind(center, pm, program_id))

    def quarterly() -> None:
        for g in monitoring.idle_grants(center, pm, program_id).items:
            if g.status != "active":
                continue
            if g.allocation_id not in warned:
                monitoring.warn(
                    center, pm, g.allocation_id, "GPUs unused: use them or they are taken back"
                )
                warned.add(g.allocation_id)
            else:
                monitoring.suspend(center, pm, g.allocation_id, "idle after a warning")
                hours = g.suggested_reclaim_gpu_hours
                if hours:
                    monitoring.reclaim(
                        center,
                        pm,
                        g.allocation_id,
                        ReclaimIn(
                            reason="idle after a warning", gpu_hours=hours, withdraw_pending=True
                        ),
                    )
                year.notices += 1
            year.notices += 1

    for month in range(1, 13):
        events.at(year.start + timedelta(days=30 * month), monthly)
    for quarter in (75, 150, 225, 300):
        events.at(year.start + timedelta(days=quarter), quarterly)


@contextmanager
def program_center(data_dir: Path, database_url: str | None = None) -> Iterator[Center]:
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url or f"sqlite:///{data_dir / 'axcenter.db'}",
        local_gpus=CLUSTER,
        stop_jobs_on_shutdown=True,
    )
    center = Center(settings)
    center.start()
    try:
        yield center
    finally:
        center.stop()


def generate(
    center: Center, companies: int = 300, seed: int = 0, end: datetime | None = None
) -> dict[str, Any]:
    """Run a year of the program ending at ``end`` (default: today, midnight UTC)."""
    rng = random.Random(seed)
    finish = end or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = finish - 365 * DAY
    with SimulatedClock(start) as clock:
        year = _world(center, rng, companies, start)
        budget = companies * 900 * H100_PRICE  # about 900 H100 hours a company
        program_id = _program(center, year, budget)
        events = Events(clock)
        _requests(center, year, events, rng)
        events.run()  # the calls: every grant is decided before the jobs are drawn
        demand = _demand(center, year, rng)
        times = _schedule(center, demand, start)
        clock.now = start
        _jobs(center, year, events, demand, times)
        _reports_and_surveys(center, year, events, rng)
        _monitoring(center, year, events, program_id)
        events.run(until=finish)
    return {
        "program": PROGRAM,
        "program_id": program_id,
        "companies": companies,
        "grants": len(year.grants),
        "refused": year.refused,
        "jobs_run": year.jobs,
        "jobs_unfunded": year.unfunded,
        "notices": year.notices,
        "since": start.isoformat(),
        "until": finish.isoformat(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("evidence.html"))
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    from axcenter.cli.evidence import render_evidence, scenarios_for, what_ifs  # noqa: PLC0415
    from axcenter.service.evidence import evidence  # noqa: PLC0415

    with (
        tempfile.TemporaryDirectory() as tmp,
        program_center(Path(tmp), args.database_url) as center,
    ):
        t0 = time.perf_counter()
        summary = generate(center, args.companies, args.seed)
        print(json.dumps({"step": "generate", "s": round(time.perf_counter() - t0, 1), **summary}))
        pm = Principal("usr_x", "pm", "org_x", Role.PROGRAM_MANAGER)
        t0 = time.perf_counter()
        data = evidence(center, pm, PROGRAM).model_dump(mode="json")
        t1 = time.perf_counter()
        scenarios, money = scenarios_for(data, None, None)
        results = what_ifs(data, scenarios, workers=2)
        t2 = time.perf_counter()
        page = render_evidence(data, results, money, "benchmarks/program_year.py")
        args.out.write_text(page, encoding="utf-8")
        t3 = time.perf_counter()
        print(
            json.dumps(
                {
                    "step": "evidence report",
                    "s": round(t3 - t0, 1),
                    "figures_s": round(t1 - t0, 1),
                    "replays_s": round(t2 - t1, 1),
                    "render_s": round(t3 - t2, 1),
                    "jobs_replayed": len(data["history"]),
                    "scenarios": [
                        {
                            "label": r.scenario.label,
                            "gpus": r.gpus,
                            "program_p95_wait_s": r.program_p95_wait_s,
                            "projects_served": f"{r.program_projects_served}/{r.program_projects}",
                        }
                        for r in results
                    ],
                    "out": str(args.out),
                }
            )
        )
        with center.store.read() as s:
            e = orm.LedgerEntry
            charged = s.scalar(
                select(func.coalesce(func.sum(e.amount_won), 0)).where(
                    e.kind == "charge", e.program_id == summary["program_id"]
                )
            )
        print(
            json.dumps(
                {
                    "step": "check",
                    "report_charged_won": data["totals"]["charged_won"],
                    "ledger_charged_won": int(charged),
                    "equal": data["totals"]["charged_won"] == int(charged),
                }
            )
        )


if __name__ == "__main__":
    main()
