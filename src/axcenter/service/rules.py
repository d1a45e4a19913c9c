"""A program's rules: set from a moment on, listed with the one in force, and the
concentration caps checked when a grant is approved.

Rules are effective-dated like prices and never retroactive: a charge is booked under the
rules in force when its run started, a grant under those in force when it was approved, so
a new rule takes effect now or later, and each change is in the audit log
(``program.rules``). The values and how they price a charge are ``model.terms``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from axcenter.accounting.terms import rules_at
from axcenter.model.access import Principal
from axcenter.model.ids import new_id
from axcenter.model.rubric import Criterion, Preference
from axcenter.model.terms import Caps, Modifier, ProgramRules
from axcenter.service.access import center_target, require
from axcenter.service.audit import record
from axcenter.service.errors import Conflict, InvalidInput, NotFound
from axcenter.service.program_schemas import ProgramRulesIn, ProgramRulesOut
from axcenter.service.programs import PRICE_SKEW, program_by_ref
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = ["check_caps", "list_rules", "remove_rules", "set_rules", "set_rules_tx"]

SECONDS_PER_HOUR = 3600
SIZE_CLASSES = ("SME", "mid", "large")


def _rules(body: ProgramRulesIn) -> ProgramRules:
    modifiers = []
    for i, m in enumerate(body.modifiers):
        field = f"modifiers[{i}].match"
        if m.kind == "startup" and m.match is not None:
            raise InvalidInput(field, "a startup modifier matches youth-startup organizations")
        if m.kind != "startup" and m.match is None:
            raise InvalidInput(field, "name the {kind} the discount is for", kind=m.kind)
        if m.kind == "size" and m.match not in SIZE_CLASSES:
            raise InvalidInput(
                field, "a size class is one of {SIZE_CLASSES}", SIZE_CLASSES=", ".join(SIZE_CLASSES)
            )
        modifiers.append(Modifier(kind=m.kind, discount_bp=m.discount_bp, match=m.match))
    preferences = []
    for i, p in enumerate(body.preferences):
        field = f"preferences[{i}].match"
        if p.kind == "startup" and p.match is not None:
            raise InvalidInput(field, "a startup preference matches youth-startup organizations")
        if p.kind != "startup" and p.match is None:
            raise InvalidInput(field, "name the {kind} the preference is for", kind=p.kind)
        if p.kind == "size" and p.match not in SIZE_CLASSES:
            raise InvalidInput(
                field, "a size class is one of {SIZE_CLASSES}", SIZE_CLASSES=", ".join(SIZE_CLASSES)
            )
        preferences.append(Preference(kind=p.kind, points=p.points, match=p.match))
    return ProgramRules(
        self_paid_bp=body.self_paid_bp,
        modifiers=tuple(modifiers),
        caps=Caps(org_gpu_hours=body.caps.org_gpu_hours, org_won=body.caps.org_won),
        tranches_bp=tuple(body.tranches_bp),
        accrual_period=body.accrual_period,
        rubric=tuple(
            Criterion(key=c.key, label=c.label, weight=c.weight, scale=c.scale) for c in body.rubric
        ),
        preferences=tuple(preferences),
    )


def _out(
    row: orm.ProgramRule, program: str, in_force: bool, creator: str | None
) -> ProgramRulesOut:
    rules = ProgramRules.from_json(row.rules).to_json()
    return ProgramRulesOut(
        id=row.id,
        program=program,
        effective_from=row.effective_from,
        in_force=in_force,
        self_paid_bp=rules["self_paid_bp"],
        modifiers=rules["modifiers"],
        caps=rules["caps"],
        tranches_bp=rules["tranches_bp"],
        accrual_period=rules["accrual_period"],
        rubric=rules["rubric"],
        preferences=rules["preferences"],
        created_by=creator,
        created_at=row.created_at,
    )


def set_rules_tx(
    session: Session, who: Principal, ref: str, body: ProgramRulesIn, now: datetime
) -> ProgramRulesOut:
    require(who, "program.write", center_target("programs"))
    program = program_by_ref(session, ref, lock=True)
    start = body.effective_from or now
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    if start < now - PRICE_SKEW:
        raise InvalidInput(
            "effective_from",
            (
                "{start:%Y-%m-%d %H:%M} UTC is in the past: rules are not retroactive "
                "(booked charges and grants were made under the rules then in force)"
            ),
            start=start,
        )
    clash = session.scalar(
        select(orm.ProgramRule.id).where(
            orm.ProgramRule.program_id == program.id, orm.ProgramRule.effective_from == start
        )
    )
    if clash is not None:
        raise Conflict(
            "{program} already has rules from {start:%Y-%m-%d %H:%M:%S} UTC",
            program=program.name,
            start=start,
        )
    rules = _rules(body)
    row = orm.ProgramRule(
        id=new_id("rul"),
        program_id=program.id,
        effective_from=start,
        rules=rules.to_json(),
        created_by=who.user_id,
        created_at=now,
    )
    session.add(row)
    session.flush()
    before = rules_at(session, program.id, start - timedelta(microseconds=1))
    record(
        session,
        who,
        "program.rules",
        "program",
        program.id,
        {
            "effective_from": start,
            "before": before.to_json() if before else None,
            "after": rules.to_json(),
        },
    )
    return _out(row, program.name, start <= now, who.name)


def set_rules(center: Center, who: Principal, ref: str, body: ProgramRulesIn) -> ProgramRulesOut:
    """Add rules to a program from ``effective_from`` (default now) on; the scheduler is
    told, as for a price (holds are rated at list price, so nothing it plans changes)."""
    try:
        with center.store.write() as session:
            return set_rules_tx(session, who, ref, body, utcnow())
    except IntegrityError:
        raise Conflict("the program already has rules from that moment") from None


def remove_rules(center: Center, who: Principal, ref: str, rules_id: str) -> ProgramRulesOut:
    """Withdraw a program's rules before they take effect (a typo, a decision reversed).
    Rules in force or past priced charges and grants: they stay (409), and new rules
    change them from now on. Audited (``program.rules_remove``, with the rules withdrawn
    and those that stay in force from then)."""
    require(who, "program.write", center_target("programs"))
    with center.store.write() as session:
        program = program_by_ref(session, ref, lock=True)
        row = session.get(orm.ProgramRule, rules_id)
        if row is None or row.program_id != program.id:
            raise NotFound(
                "{program} has no rules {rules_id!r}", program=program.name, rules_id=rules_id
            )
        now = utcnow()
        if row.effective_from <= now:
            raise Conflict(
                (
                    "the rules {rules_id} of {program} have been in force since "
                    "{effective_from:%Y-%m-%d %H:%M} UTC, and charges and grants were made "
                    "under them: they cannot be withdrawn; set new rules from now on instead"
                ),
                rules_id=rules_id,
                program=program.name,
                effective_from=row.effective_from,
            )
        creator = session.scalar(select(orm.User.name).where(orm.User.id == row.created_by))
        out = _out(row, program.name, False, creator)
        withdrawn = ProgramRules.from_json(row.rules)
        session.delete(row)
        session.flush()
        instead = rules_at(session, program.id, row.effective_from)
        record(
            session,
            who,
            "program.rules_remove",
            "program",
            program.id,
            {
                "rules_id": rules_id,
                "effective_from": row.effective_from,
                "withdrawn": withdrawn.to_json(),
                "in_force_instead": instead.to_json() if instead else None,
            },
        )
    return out


def list_rules(
    center: Center, who: Principal, ref: str, at: datetime | None = None
) -> list[ProgramRulesOut]:
    """Every rule set of a program, oldest first; ``in_force`` marks the one in force at
    ``at`` (default now)."""
    require(who, "program.read", center_target("programs"))
    moment = at or utcnow()
    with center.store.read() as session:
        program = program_by_ref(session, ref)
        rows = session.execute(
            select(orm.ProgramRule, orm.User.name)
            .outerjoin(orm.User, orm.User.id == orm.ProgramRule.created_by)
            .where(orm.ProgramRule.program_id == program.id)
            .order_by(orm.ProgramRule.effective_from)
        ).all()
        current = None
        for row, _ in rows:
            if row.effective_from <= moment:
                current = row.id
        return [_out(row, program.name, row.id == current, creator) for row, creator in rows]


# -- concentration caps ---------------------------------------------------------------------


def _granted(session: Session, allocation_ids: Select[tuple[str]]) -> tuple[int, int]:
    """(GPU-seconds, won) granted to the allocations ``allocation_ids`` selects: released
    items plus tranches still pending."""
    item = orm.AllocationItem
    secs, won = session.execute(
        select(
            func.coalesce(func.sum(item.gpu_seconds), 0), func.coalesce(func.sum(item.won), 0)
        ).where(item.allocation_id.in_(allocation_ids))
    ).one()
    t = orm.GrantTranche
    p_secs, p_won = session.execute(
        select(func.coalesce(func.sum(t.gpu_seconds), 0), func.coalesce(func.sum(t.won), 0)).where(
            t.allocation_id.in_(allocation_ids), t.status == "pending"
        )
    ).one()
    return int(secs) + int(p_secs), int(won) + int(p_won)


def check_caps(
    session: Session,
    program: orm.Program,
    project_id: str,
    extra_gpu_seconds: int,
    extra_won: int,
    at: datetime,
) -> None:
    """Conflict naming the cap if granting this much more to the project's organization
    would take it past a concentration cap of the program's rules in force at ``at``.

    The caller holds the program's row lock (and, on SQLite, the store's write lock);
    this takes the organization's, so grants of other programs to it are counted as
    committed, never as racing.
    """
    project = session.get(orm.Project, project_id)
    assert project is not None
    # the organization's row lock, taken by every grant whatever its program's rules: two
    # programs approving grants to one organization at once (each under its own
    # program's lock) must not both see the same headroom
    org = session.scalars(
        select(orm.Organization)
        .where(orm.Organization.id == project.organization_id)
        .with_for_update()
    ).one()
    rules = rules_at(session, program.id, at)
    if rules is None or (rules.caps.org_gpu_hours is None and rules.caps.org_won is None):
        return
    of_org = select(orm.Project.id).where(orm.Project.organization_id == org.id)
    since = rules_effective(session, program.id, at)
    if rules.caps.org_gpu_hours is not None:
        open_grants = select(orm.Allocation.id).where(
            orm.Allocation.project_id.in_(of_org),
            orm.Allocation.status == "active",
            orm.Allocation.ends_at > at,
        )
        held, _ = _granted(session, open_grants)
        total = held + extra_gpu_seconds
        cap = rules.caps.org_gpu_hours * SECONDS_PER_HOUR
        if total > cap:
            raise Conflict(
                (
                    "concentration cap of {program} (rules from {since}): {org} would hold "
                    "{total_hours:,.0f} GPU-hours in grants not yet ended across programs "
                    "({held_hours:,.0f} already, this grant {extra_hours:,.0f}), over the "
                    "cap of {org_gpu_hours:,} GPU-hours per organization"
                ),
                program=program.name,
                since=since,
                org=org.name,
                total_hours=total / SECONDS_PER_HOUR,
                held_hours=held / SECONDS_PER_HOUR,
                extra_hours=extra_gpu_seconds / SECONDS_PER_HOUR,
                org_gpu_hours=rules.caps.org_gpu_hours,
            )
    if rules.caps.org_won is not None:
        in_program = select(orm.Allocation.id).where(
            orm.Allocation.project_id.in_(of_org), orm.Allocation.program_id == program.id
        )
        _, granted = _granted(session, in_program)
        total = granted + extra_won
        if total > rules.caps.org_won:
            raise Conflict(
                (
                    "concentration cap of {program} (rules from {since}): {org} would be "
                    "granted {total_won:,} won by this program ({granted_won:,} already, "
                    "this grant {extra_won:,}), over the cap of {org_won:,} won per organization"
                ),
                program=program.name,
                since=since,
                org=org.name,
                total_won=total,
                granted_won=granted,
                extra_won=extra_won,
                org_won=rules.caps.org_won,
            )


def rules_effective(session: Session, program_id: str, at: datetime) -> str:
    """When the rules in force at ``at`` took effect, as a refusal names them."""
    start = session.scalar(
        select(func.max(orm.ProgramRule.effective_from)).where(
            orm.ProgramRule.program_id == program_id, orm.ProgramRule.effective_from <= at
        )
    )
    return f"{start:%Y-%m-%d %H:%M} UTC" if start is not None else "-"
