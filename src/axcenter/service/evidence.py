"""The evidence a funder decides on: what a program bought, whom it reached, how long
they waited, what came of it, and what its center's own history needs for a what-if.

``evidence`` reads everything from the store for a program and a period ``[since,
until)``; ``axc report evidence`` (``cli/evidence.py``) replays ``history`` on the live
center's cluster (``cluster``) and on larger ones (the simulator is the CLI's, as for
``axc sim``) and writes the report. Definitions (docs/accounting.md §13):

- bought: the program's ``charge`` rows booked in the period (as usage reports count
  them), by industry (the project's sector), company size, region and GPU type; their
  sums are the totals, which equal the ledger's;
- reached: organizations with a grant of the program approved before ``until``; of
  them, those that ran something in the period, first-time users (their first grant in
  any program was approved in the period) and SMEs;
- waits: jobs funded by the program (their allocation's program) that started in the
  period, ``started_at - submitted_at`` of their latest run, nearest-rank percentiles
  per month (UTC) and per company size;
- outcomes: per survey form, each project's latest answer (over all rounds) counts
  once: numbers summed, yes counted;
- turned down: requests of the program rejected, or approved for fewer GPU-hours than
  asked, in the period, with the won of what was not granted at today's prices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import case, func, select

from axcenter.accounting.ledger import CHARGE_KINDS
from axcenter.accounting.prices import prices_at
from axcenter.accounting.settlement import SettlementRow, settlement, total
from axcenter.model.access import Principal, Role
from axcenter.model.jobs import TERMINAL
from axcenter.service.errors import Forbidden, InvalidInput
from axcenter.service.programs import program_by_ref
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = ["DIMENSIONS", "EvidenceOut", "evidence", "percentile"]

#: breakdowns of what the program bought: (name, column)
DIMENSIONS = ("sector", "size_class", "region", "gpu_type")


class EvidenceOut(BaseModel):
    program: dict[str, Any]
    since: datetime
    until: datetime
    generated_at: datetime
    time_zone: str
    #: the settlement's TOTAL row (granted, charged, public, self-paid, ...)
    totals: dict[str, Any]
    #: dimension -> rows of {key, gpu_seconds, charged_won, runs}
    bought: dict[str, list[dict[str, Any]]]
    reach: dict[str, int]
    #: {"overall": {...}, "by_size": {size: {...}}, "by_month": {YYYY-MM: {...}}}:
    #: n, p50_s, p90_s, p95_s
    waits: dict[str, Any]
    outcomes: list[dict[str, Any]]
    turned_down: list[dict[str, Any]]
    #: the live center as a simulator cluster spec (node groups, prices)
    cluster: dict[str, Any]
    #: every job of the center that ran in the period (native trace columns, plus the
    #: program it was funded by and its organization's size class)
    history: list[dict[str, Any]]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least ``q`` of them at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


def _wait_stats(values: Sequence[float]) -> dict[str, Any]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 1)

    return {
        "n": len(values),
        "p50_s": r(percentile(values, 0.5)),
        "p90_s": r(percentile(values, 0.9)),
        "p95_s": r(percentile(values, 0.95)),
    }


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _cluster(session: Any) -> dict[str, Any]:
    """The center's nodes as simulator node groups (one per kind of node), with the
    prices in force: the live configuration, so no cluster file is written by hand."""
    groups: dict[tuple[str, int, int, int], int] = {}
    for node in session.scalars(select(orm.Node)):
        if node.gpu_count < 1:
            continue
        key = (node.gpu_type, node.gpu_count, node.cpus, node.memory_mb)
        groups[key] = groups.get(key, 0) + 1
    return {
        "name": "live center",
        "node_groups": [
            {
                "name": f"{gpu_type.lower()}-{gpus}g-{i}",
                "gpu_type": gpu_type,
                "gpus_per_node": gpus,
                "count": count,
                "cpus": cpus,
                "memory_mb": memory,
            }
            for i, ((gpu_type, gpus, cpus, memory), count) in enumerate(sorted(groups.items()))
        ],
        "prices": prices_at(session, utcnow()),
    }


def evidence(
    center: Center,
    who: Principal,
    program_ref: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> EvidenceOut:
    """Everything the evidence report says of a program over ``[since, until)``
    (default: its period, or its creation, up to now). Operators and program managers."""
    if who.role not in (Role.OPERATOR, Role.PROGRAM_MANAGER):
        raise Forbidden("only operators and program managers may see a program's evidence")
    now = utcnow()
    with center.store.read() as session:
        program = program_by_ref(session, program_ref)
        end = _aware(until) if until else min(now, program.ends_at or now)
        start = _aware(since) if since else (program.starts_at or program.created_at)
        if end <= start:
            raise InvalidInput("until", "must be after since")
        rows = settlement(session, program.id, start, end, orm.Project.id.is_not(None))
        e = orm.LedgerEntry
        org = orm.Organization
        columns = {
            "sector": orm.Project.sector,
            "size_class": org.size_class,
            "region": org.region,
            "gpu_type": e.gpu_type,
        }
        bought: dict[str, list[dict[str, Any]]] = {}
        for dim, column in columns.items():
            found = session.execute(
                select(
                    column,
                    func.coalesce(func.sum(case((e.kind == "charge", 1), else_=0)), 0),
                    func.coalesce(func.sum(e.gpu_seconds), 0),
                    func.coalesce(func.sum(e.amount_won), 0),
                )
                .join(orm.Project, orm.Project.id == e.project_id)
                .join(org, org.id == orm.Project.organization_id)
                .where(
                    e.kind.in_(CHARGE_KINDS), e.program_id == program.id, e.at >= start, e.at < end
                )
                .group_by(column)
                .order_by(column)
            ).all()
            bought[dim] = [
                {"key": key or "-", "runs": int(n), "gpu_seconds": int(s), "charged_won": int(w)}
                for key, n, s, w in found
            ]
        reach = _reach(session, program.id, start, end)
        waits, history = _waits_and_history(session, program.id, start, end)
        outcomes = _outcomes(session, program.id, end)
        turned_down = _turned_down(session, program.id, start, end, now)
        cluster = _cluster(session)
        program_info = {
            "id": program.id,
            "name": program.name,
            "budget_won": program.budget_won,
            "public_share_bp": program.public_share_bp,
            "starts_at": program.starts_at.isoformat() if program.starts_at else None,
            "ends_at": program.ends_at.isoformat() if program.ends_at else None,
            "description": program.description,
        }
    return EvidenceOut(
        program=program_info,
        since=start,
        until=end,
        generated_at=now,
        time_zone=center.settings.time_zone,
        totals=total(SettlementRow, rows, "organization"),
        bought=bought,
        reach=reach,
        waits=waits,
        outcomes=outcomes,
        turned_down=turned_down,
        cluster=cluster,
        history=history,
    )


def _reach(session: Any, program_id: str, start: datetime, end: datetime) -> dict[str, int]:
    a, p, o = orm.Allocation, orm.Project, orm.Organization
    granted = set(
        session.scalars(
            select(p.organization_id)
            .join(a, a.project_id == p.id)
            .where(a.program_id == program_id, a.created_at < end)
        )
    )
    used = set(
        session.scalars(
            select(p.organization_id)
            .join(orm.LedgerEntry, orm.LedgerEntry.project_id == p.id)
            .where(
                orm.LedgerEntry.program_id == program_id,
                orm.LedgerEntry.kind.in_(CHARGE_KINDS),
                orm.LedgerEntry.at >= start,
                orm.LedgerEntry.at < end,
            )
        )
    )
    first = dict(
        session.execute(
            select(p.organization_id, func.min(a.created_at))
            .join(a, a.project_id == p.id)
            .where(p.organization_id.in_(granted))
            .group_by(p.organization_id)
        )
        .tuples()
        .all()
    )
    smes = set(session.scalars(select(o.id).where(o.id.in_(granted), o.size_class == "SME")))
    return {
        "organizations": len(granted),
        "organizations_used": len(used & granted),
        "first_time": sum(1 for org_id in granted if start <= _aware(first[org_id]) < end),
        "smes": len(smes),
        "projects": int(
            session.scalar(
                select(func.count(func.distinct(a.project_id))).where(
                    a.program_id == program_id, a.created_at < end
                )
            )
            or 0
        ),
    }


def _waits_and_history(
    session: Any, program_id: str, start: datetime, end: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    j, p, o = orm.Job, orm.Project, orm.Organization
    rows = session.execute(
        select(
            j.id,
            j.submitted_at,
            j.started_at,
            j.ended_at,
            j.gpus_per_node,
            j.nodes,
            j.gpu_types,
            j.gpu_type,
            j.state,
            j.time_limit_s,
            j.priority,
            p.name,
            o.size_class,
            orm.Allocation.program_id,
        )
        .join(p, p.id == j.project_id)
        .join(o, o.id == p.organization_id)
        .outerjoin(orm.Allocation, orm.Allocation.id == j.allocation_id)
        .where(j.started_at.is_not(None), j.started_at >= start, j.started_at < end)
        .order_by(j.submitted_at, j.id)
    ).all()
    overall: list[float] = []
    by_size: dict[str, list[float]] = {}
    by_month: dict[str, list[float]] = {}
    history = []
    terminal = {s.value for s in TERMINAL}
    for r in rows:
        wait = (_aware(r.started_at) - _aware(r.submitted_at)).total_seconds()
        mine = r.program_id == program_id
        if mine:
            overall.append(wait)
            by_size.setdefault(r.size_class or "-", []).append(wait)
            by_month.setdefault(f"{_aware(r.started_at):%Y-%m}", []).append(wait)
        if r.ended_at is not None and r.state in terminal and r.gpus_per_node > 0:
            duration = (_aware(r.ended_at) - _aware(r.started_at)).total_seconds()
            if duration > 0:
                history.append(
                    {
                        "id": r.id,
                        "submit": (_aware(r.submitted_at) - start).total_seconds(),
                        "duration": duration,
                        "wait": wait,
                        "gpus_per_node": r.gpus_per_node,
                        "nodes": r.nodes,
                        "gpu_types": list(r.gpu_types or ([r.gpu_type] if r.gpu_type else [])),
                        "tenant": r.name,
                        "time_limit": r.time_limit_s,
                        "priority": r.priority,
                        "program": mine,
                        "size_class": r.size_class or "-",
                    }
                )
    waits = {
        "overall": _wait_stats(overall),
        "by_size": {k: _wait_stats(v) for k, v in sorted(by_size.items())},
        "by_month": {k: _wait_stats(v) for k, v in sorted(by_month.items())},
    }
    return waits, history


def _outcomes(session: Any, program_id: str, end: datetime) -> list[dict[str, Any]]:
    out = []
    forms = session.scalars(
        select(orm.SurveyForm)
        .where(orm.SurveyForm.program_id == program_id)
        .order_by(orm.SurveyForm.created_at, orm.SurveyForm.id)
    ).all()
    for form in forms:
        latest: dict[str, dict[str, Any]] = {}
        for project_id, answers in session.execute(
            select(orm.SurveyAnswer.project_id, orm.SurveyAnswer.answers)
            .where(orm.SurveyAnswer.form_id == form.id, orm.SurveyAnswer.submitted_at < end)
            .order_by(orm.SurveyAnswer.id)
        ).tuples():
            latest[project_id] = answers
        fields = []
        for f in form.fields:
            values: list[Any] = [
                a[f["key"]] for a in latest.values() if a.get(f["key"]) is not None
            ]
            value: int
            if f["kind"] in ("count", "won"):
                value = sum(int(v) for v in values)
            elif f["kind"] == "yes_no":
                value = sum(1 for v in values if v is True)
            else:
                value = len(values)
            fields.append(
                {
                    "key": f["key"],
                    "label_en": f["label_en"],
                    "label_ko": f["label_ko"],
                    "kind": f["kind"],
                    "value": value,
                    "answered": len(values),
                }
            )
        out.append({"form": form.name, "respondents": len(latest), "fields": fields})
    return out


def _turned_down(
    session: Any, program_id: str, start: datetime, end: datetime, now: datetime
) -> list[dict[str, Any]]:
    """Requests rejected, or approved for less than asked, in the period: what more money
    could have granted."""
    prices = prices_at(session, now)
    req, ev = orm.AllocationRequest, orm.RequestEvent
    out = []
    decisions = session.execute(
        select(req, ev.action, ev.items, orm.Organization.name, orm.Organization.size_class)
        .join(ev, ev.request_id == req.id)
        .join(orm.Project, orm.Project.id == req.project_id)
        .join(orm.Organization, orm.Organization.id == orm.Project.organization_id)
        .where(
            req.program_id == program_id,
            req.kind.in_(("new", "topup")),
            ev.action.in_(("approved", "rejected")),
            ev.at >= start,
            ev.at < end,
        )
        .order_by(ev.at, ev.id)
    ).all()
    for row, action, granted, org_name, size in decisions:
        asked = {k: int(v) for k, v in row.items.items()}
        given = {k: int(v) for k, v in (granted or {}).items()} if action == "approved" else {}
        short = {k: asked[k] - given.get(k, 0) for k in asked if asked[k] > given.get(k, 0)}
        if not short:
            continue
        out.append(
            {
                "request_id": row.id,
                "organization": org_name,
                "size_class": size or "-",
                "decision": action,
                "gpu_hours": short,
                "won": sum(h * prices.get(t, 0) for t, h in short.items()),
            }
        )
    return out
