"""What each grant owes its program, where each thing stands, and the reminders chased.

A grant owes a progress report for each tranche still pending (``tranches``) and an
answer to each round of its program's survey forms (``surveys``). Each obligation is
``not_due`` (due later than ``DUE_SOON_DAYS``), ``due`` (within them), ``overdue``,
``submitted`` (a report awaiting its decision) or ``done``. ``remind`` writes a reminder
notice (``grant_notices``) for each overdue obligation that has had none for
``REMIND_EVERY_DAYS``; the ``Reminders`` thread of the center does so every hour for
every program; notices reach the organization through its notification feed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from axcenter.model.access import Principal
from axcenter.service.access import (
    allocation_for,
    center_target,
    require,
    visible_allocations,
)
from axcenter.service.program_schemas import (
    GrantNoticeOut,
    ObligationOut,
    ObligationsOut,
    ObligationState,
    SurveyDueOut,
)
from axcenter.service.programs import program_by_ref
from axcenter.service.surveys import FINAL_ROUND, due_at, final_due
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = [
    "DUE_SOON_DAYS",
    "REMIND_CHECK_S",
    "REMIND_EVERY_DAYS",
    "Reminders",
    "grant_obligations",
    "list_notices",
    "notice_out",
    "obligations",
    "one_grant",
    "remind",
    "remind_tx",
]

DUE_SOON_DAYS = 14
REMIND_EVERY_DAYS = 7
#: how often the ``Reminders`` thread looks for what is overdue
REMIND_CHECK_S = 3600.0

log = logging.getLogger(__name__)


def _state(due: datetime, now: datetime) -> ObligationState:
    if now > due:
        return "overdue"
    if due - now <= timedelta(days=DUE_SOON_DAYS):
        return "due"
    return "not_due"


def grant_obligations(
    session: Session,
    allocation: orm.Allocation,
    forms: Sequence[orm.SurveyForm],
    now: datetime,
) -> ObligationOut:
    """One grant's obligations at ``now``."""
    project = session.get(orm.Project, allocation.project_id)
    org = session.get(orm.Organization, project.organization_id) if project else None
    tranches = session.scalars(
        select(orm.GrantTranche)
        .where(orm.GrantTranche.allocation_id == allocation.id)
        .order_by(orm.GrantTranche.seq)
    ).all()
    released = sum(1 for t in tranches if t.status == "released") if tranches else 1
    pending = next((t for t in tranches if t.status == "pending"), None)
    report_state: ObligationState | None = None
    if pending is not None and allocation.status == "active":
        waiting = session.scalar(
            select(orm.ProgressReport.id).where(
                orm.ProgressReport.allocation_id == allocation.id,
                orm.ProgressReport.tranche_seq == pending.seq,
                orm.ProgressReport.status == "submitted",
            )
        )
        assert pending.report_due_at is not None
        report_state = "submitted" if waiting else _state(pending.report_due_at, now)
    answered = {
        (form_id, rnd)
        for form_id, rnd in session.execute(
            select(orm.SurveyAnswer.form_id, orm.SurveyAnswer.round).where(
                orm.SurveyAnswer.project_id == allocation.project_id
            )
        ).tuples()
    }
    surveys = []
    last_day = final_due(allocation.ends_at)
    for form in forms:
        rounds = [
            (d, due_at(date.fromisoformat(d)))
            for d in form.due_dates
            if allocation.starts_at <= due_at(date.fromisoformat(d)) <= last_day
        ]
        if form.at_end:
            rounds.append((FINAL_ROUND, last_day))
        for rnd, due in rounds:
            state: ObligationState = "done" if (form.id, rnd) in answered else _state(due, now)
            surveys.append(SurveyDueOut(form=form.name, round=rnd, due_at=due, state=state))
    overdue = sum(1 for s in surveys if s.state == "overdue") + (report_state == "overdue")
    return ObligationOut(
        allocation_id=allocation.id,
        project=project.name if project else "?",
        organization=org.name if org else "?",
        status=allocation.status,
        ends_at=allocation.ends_at,
        tranches_released=released,
        tranches_total=len(tranches) or 1,
        report_seq=pending.seq if pending is not None else None,
        report_due_at=pending.report_due_at if pending is not None else None,
        report_state=report_state,
        surveys=surveys,
        overdue=overdue,
    )


def _forms(session: Session, program_id: str) -> list[orm.SurveyForm]:
    return list(
        session.scalars(
            select(orm.SurveyForm)
            .where(orm.SurveyForm.program_id == program_id)
            .order_by(orm.SurveyForm.created_at, orm.SurveyForm.id)
        ).all()
    )


def obligations(
    center: Center, who: Principal, program_ref: str, *, at: datetime | None = None
) -> ObligationsOut:
    """Every grant of the program the caller may read, with what it owes (overdue first)."""
    require(who, "program.read", center_target("programs"))
    now = at or utcnow()
    with center.store.read() as session:
        program = program_by_ref(session, program_ref)
        forms = _forms(session, program.id)
        rows = session.scalars(
            select(orm.Allocation)
            .where(orm.Allocation.program_id == program.id, visible_allocations(who))
            .order_by(orm.Allocation.id)
        ).all()
        items = [grant_obligations(session, a, forms, now) for a in rows]
    items.sort(key=lambda o: (-o.overdue, o.project))
    return ObligationsOut(
        program=program.name,
        at=now,
        items=items,
        overdue_grants=sum(1 for o in items if o.overdue),
    )


def one_grant(center: Center, who: Principal, allocation_id: str) -> ObligationOut:
    """What one grant owes (404 unless the caller may read the grant)."""
    with center.store.read() as session:
        allocation, _ = allocation_for(session, who, allocation_id, "allocation.read")
        return grant_obligations(
            session, allocation, _forms(session, allocation.program_id), utcnow()
        )


def notice_out(session: Session, row: orm.GrantNotice) -> GrantNoticeOut:
    allocation = session.get(orm.Allocation, row.allocation_id)
    project = session.get(orm.Project, allocation.project_id) if allocation else None
    actor = session.get(orm.User, row.actor_id) if row.actor_id else None
    return GrantNoticeOut(
        id=row.id,
        allocation_id=row.allocation_id,
        project=project.name if project else "?",
        kind=row.kind,
        subject=row.subject,
        reason=row.reason,
        evidence=row.evidence,
        gpu_seconds=row.gpu_seconds,
        won=row.won,
        actor=actor.name if actor else None,
        at=row.at,
    )


def remind(
    center: Center, who: Principal, program_ref: str, *, at: datetime | None = None
) -> list[GrantNoticeOut]:
    """Write a reminder for each overdue report and survey round of the program's grants
    that has had none in the last ``REMIND_EVERY_DAYS``; returns the reminders written."""
    require(who, "program.write", center_target("programs"))
    with center.store.write() as session:
        program = program_by_ref(session, program_ref)
        return remind_tx(session, program.id, who.user_id, at or utcnow())


def remind_tx(
    session: Session, program_id: str, actor_id: str | None, now: datetime
) -> list[GrantNoticeOut]:
    """``remind`` inside the caller's transaction (``actor_id`` None: the center itself,
    as the ``Reminders`` thread sends them)."""
    out = []
    forms = _forms(session, program_id)
    grants = session.scalars(
        select(orm.Allocation)
        .where(orm.Allocation.program_id == program_id)
        .order_by(orm.Allocation.id)
    ).all()
    recent = {
        (a, s)
        for a, s in session.execute(
            select(orm.GrantNotice.allocation_id, orm.GrantNotice.subject).where(
                orm.GrantNotice.kind == "reminder",
                orm.GrantNotice.at > now - timedelta(days=REMIND_EVERY_DAYS),
            )
        ).tuples()
    }
    for allocation in grants:
        o = grant_obligations(session, allocation, forms, now)
        owed: list[tuple[str, str, datetime]] = []
        if o.report_state == "overdue":
            assert o.report_due_at is not None and o.report_seq is not None
            owed.append(
                (
                    f"report:{o.report_seq}",
                    f"the progress report for tranche {o.report_seq} is overdue",
                    o.report_due_at,
                )
            )
        for s in o.surveys:
            if s.state == "overdue":
                owed.append(
                    (
                        f"survey:{s.form}:{s.round}"[:64],
                        f"the outcome survey {s.form!r} ({s.round}) is overdue",
                        s.due_at,
                    )
                )
        for subject, reason, due in owed:
            if (allocation.id, subject) in recent:
                continue
            row = orm.GrantNotice(
                allocation_id=allocation.id,
                kind="reminder",
                subject=subject,
                reason=reason,
                evidence={"due_at": due.isoformat(), "days_late": (now - due).days},
                gpu_seconds=0,
                won=0,
                actor_id=actor_id,
                at=now,
            )
            session.add(row)
            session.flush()
            out.append(notice_out(session, row))
    return out


class Reminders:
    """A thread of the ``Center``: every ``every_s`` (and at start) it reminds the grants
    of every program of what they owe overdue, as ``remind`` does (at most once a week
    per obligation), so that nobody has to remember to chase them."""

    def __init__(self, center: Center, every_s: float = REMIND_CHECK_S) -> None:
        self.center = center
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="axc-reminders", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def run_once(self, now: datetime | None = None) -> int:
        """Remind every program's grants once; returns the reminders written."""
        at = now or utcnow()
        sent = 0
        with self.center.store.write() as session:
            for program_id in session.scalars(select(orm.Program.id).order_by(orm.Program.id)):
                sent += len(remind_tx(session, program_id, None, at))
        return sent

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a failing pass is retried at the next one
                log.exception("reminding overdue reports and surveys failed")
            self._stop.wait(self.every_s)


def list_notices(center: Center, who: Principal, allocation_id: str) -> list[GrantNoticeOut]:
    """The notices sent about a grant, oldest first."""
    with center.store.read() as session:
        allocation, _ = allocation_for(session, who, allocation_id, "allocation.read")
        rows = session.scalars(
            select(orm.GrantNotice)
            .where(orm.GrantNotice.allocation_id == allocation.id)
            .order_by(orm.GrantNotice.id)
        ).all()
        return [notice_out(session, r) for r in rows]
