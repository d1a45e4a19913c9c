"""Program rules from the store: the rules in force at a moment, and the terms of a
project's charges (``model.terms``).

Rules are effective-dated like prices: the rules a run is charged under are those in force
when it started (as its price is), so a booked charge can always be recomputed.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from axcenter.model.terms import OrgFacts, ProgramRules, Terms, terms
from axcenter.store import orm

__all__ = ["TermsBook", "org_facts", "rules_at"]


def rules_at(session: Session, program_id: str, at: datetime) -> ProgramRules | None:
    """The program's rules in force at ``at`` (None: it never set any by then)."""
    row = session.scalar(
        select(orm.ProgramRule.rules)
        .where(orm.ProgramRule.program_id == program_id, orm.ProgramRule.effective_from <= at)
        .order_by(orm.ProgramRule.effective_from.desc())
        .limit(1)
    )
    return None if row is None else ProgramRules.from_json(row)


def org_facts(session: Session, project_ids: Iterable[str]) -> dict[str, OrgFacts]:
    """Project id -> what the rules look at in its organization."""
    ids = sorted(set(project_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(
            orm.Project.id,
            orm.Organization.region,
            orm.Organization.size_class,
            orm.Organization.youth_startup,
        )
        .join(orm.Organization, orm.Organization.id == orm.Project.organization_id)
        .where(orm.Project.id.in_(ids))
    ).tuples()
    return {pid: OrgFacts(region, size, bool(startup)) for pid, region, size, startup in rows}


class TermsBook:
    """The terms of a batch of charges, with each program's rules and each project's
    organization read once."""

    def __init__(
        self, session: Session, program_ids: Iterable[str], project_ids: Iterable[str]
    ) -> None:
        self._rules: dict[str, tuple[list[datetime], list[ProgramRules]]] = {}
        ids = sorted(set(program_ids))
        if ids:
            for program_id, effective, data in session.execute(
                select(
                    orm.ProgramRule.program_id,
                    orm.ProgramRule.effective_from,
                    orm.ProgramRule.rules,
                )
                .where(orm.ProgramRule.program_id.in_(ids))
                .order_by(orm.ProgramRule.program_id, orm.ProgramRule.effective_from)
            ).tuples():
                dates, rules = self._rules.setdefault(program_id, ([], []))
                dates.append(effective)
                rules.append(ProgramRules.from_json(data))
        self._orgs = org_facts(session, project_ids)

    def rules(self, program_id: str, at: datetime) -> ProgramRules | None:
        found = self._rules.get(program_id)
        if found is None:
            return None
        dates, rules = found
        i = bisect.bisect_right(dates, at)
        return rules[i - 1] if i else None

    def terms(self, program_id: str, public_share_bp: int, project_id: str, at: datetime) -> Terms:
        return terms(
            self.rules(program_id, at),
            public_share_bp,
            self._orgs.get(project_id, OrgFacts()),
        )
