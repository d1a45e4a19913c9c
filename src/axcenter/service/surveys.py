"""Outcome surveys (성과 조사): forms a program defines, answers each funded project gives.

A form lists its questions (``count``: papers, patents, jobs created; ``won``: revenue,
investment; ``yes_no``; ``text``) and when it is due: each of its ``due_dates`` (a round
named by the date, answered by every project with a grant of the program that had
started by then) and, with ``at_end``, once after each grant ends (round ``final``, due
``FINAL_GRACE_DAYS`` after the grant's end). Answers are append-only: a correction is a
new row, the latest of a round counts, the history stays.

Program managers and operators define forms (``program.write``); the organization's
admins answer for their projects (``request.create``); whoever may read a project's
grants reads its answers (``allocation.read``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from axcenter.model.access import Principal
from axcenter.model.ids import new_id
from axcenter.service.access import center_target, project_target, require
from axcenter.service.audit import record
from axcenter.service.errors import Conflict, InvalidInput, NotFound
from axcenter.service.program_schemas import (
    SurveyAnswerIn,
    SurveyAnswerOut,
    SurveyFormIn,
    SurveyFormOut,
)
from axcenter.service.programs import program_by_ref
from axcenter.service.projects import project_by_ref
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = [
    "FINAL_GRACE_DAYS",
    "FINAL_ROUND",
    "answer",
    "answers",
    "create_form",
    "due_at",
    "form_by_ref",
    "list_forms",
]

FINAL_ROUND = "final"
#: how long after its grant's end a project has for the final survey
FINAL_GRACE_DAYS = 30
#: a round's answers are due by the end of its date (UTC)
_END_OF_DAY = time(23, 59, 59, tzinfo=UTC)


def due_at(day: date) -> datetime:
    return datetime.combine(day, _END_OF_DAY)


def _form_out(row: orm.SurveyForm, program: str) -> SurveyFormOut:
    return SurveyFormOut(
        id=row.id,
        program=program,
        name=row.name,
        fields=list(row.fields),
        due_dates=[date.fromisoformat(d) for d in row.due_dates],
        at_end=row.at_end,
        created_at=row.created_at,
    )


def form_by_ref(session: Session, ref: str) -> orm.SurveyForm:
    """A form by its ``srv_`` id."""
    row = session.get(orm.SurveyForm, ref)
    if row is None:
        raise NotFound("no survey form {ref!r}", ref=ref)
    return row


def create_form_tx(
    session: Session, who: Principal, program_ref: str, body: SurveyFormIn, now: datetime
) -> SurveyFormOut:
    require(who, "program.write", center_target("programs"))
    program = program_by_ref(session, program_ref)
    if session.scalar(
        select(orm.SurveyForm.id).where(
            orm.SurveyForm.program_id == program.id, orm.SurveyForm.name == body.name
        )
    ):
        raise Conflict(
            "{program} already has a survey form {name!r}", program=program.name, name=body.name
        )
    if not body.due_dates and not body.at_end:
        raise InvalidInput("due_dates", "a form is due on some date, or at_end, or both")
    row = orm.SurveyForm(
        id=new_id("srv"),
        program_id=program.id,
        name=body.name,
        fields=[f.model_dump() for f in body.fields],
        due_dates=sorted({d.isoformat() for d in body.due_dates}),
        at_end=body.at_end,
        created_by=who.user_id,
        created_at=now,
    )
    session.add(row)
    session.flush()
    record(session, who, "survey.create", "program", program.id, body.model_dump(mode="json"))
    return _form_out(row, program.name)


def create_form(
    center: Center, who: Principal, program_ref: str, body: SurveyFormIn
) -> SurveyFormOut:
    try:
        with center.store.write() as session:
            return create_form_tx(session, who, program_ref, body, utcnow())
    except IntegrityError:
        raise Conflict("the program already has a survey form {name!r}", name=body.name) from None


def list_forms(center: Center, who: Principal, program_ref: str) -> list[SurveyFormOut]:
    require(who, "program.read", center_target("programs"))
    with center.store.read() as session:
        program = program_by_ref(session, program_ref)
        rows = session.scalars(
            select(orm.SurveyForm)
            .where(orm.SurveyForm.program_id == program.id)
            .order_by(orm.SurveyForm.created_at, orm.SurveyForm.id)
        ).all()
        return [_form_out(r, program.name) for r in rows]


def _checked(form: orm.SurveyForm, given: dict[str, Any]) -> dict[str, Any]:
    """The answers, each checked against its field (InvalidInput naming the field)."""
    fields = {f["key"]: f for f in form.fields}
    unknown = sorted(set(given) - set(fields))
    if unknown:
        raise InvalidInput(
            f"answers.{unknown[0]}", "the form {form!r} asks no such thing", form=form.name
        )
    out: dict[str, Any] = {}
    for key, f in fields.items():
        value = given.get(key)
        where = f"answers.{key}"
        if value is None or value == "":
            if f["required"]:
                raise InvalidInput(
                    where,
                    "{label_en} is required",
                    label_en=f["label_en"],
                    label_ko=f.get("label_ko") or f["label_en"],
                )
            continue
        kind = f["kind"]
        if kind in ("count", "won"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                unit = "won" if kind == "won" else "a count"
                raise InvalidInput(
                    where,
                    "{label_en}: a whole number of {unit}, 0 or more",
                    label_en=f["label_en"],
                    label_ko=f.get("label_ko") or f["label_en"],
                    unit=unit,
                )
        elif kind == "yes_no":
            if not isinstance(value, bool):
                raise InvalidInput(
                    where,
                    "{label_en}: true or false",
                    label_en=f["label_en"],
                    label_ko=f.get("label_ko") or f["label_en"],
                )
        elif not isinstance(value, str) or len(value) > 20_000:
            raise InvalidInput(
                where,
                "{label_en}: text of at most 20,000 characters",
                label_en=f["label_en"],
                label_ko=f.get("label_ko") or f["label_en"],
            )
        out[key] = value
    return out


def _rounds(session: Session, form: orm.SurveyForm, project_id: str) -> set[str]:
    """The rounds ``project_id`` answers: the dates after one of its program's grants
    started, and ``final`` if the form has it and the project has such a grant."""
    grants = session.execute(
        select(orm.Allocation.starts_at).where(
            orm.Allocation.project_id == project_id,
            orm.Allocation.program_id == form.program_id,
        )
    ).all()
    if not grants:
        return set()
    first = min(g.starts_at for g in grants)
    rounds = {d for d in form.due_dates if due_at(date.fromisoformat(d)) >= first}
    if form.at_end:
        rounds.add(FINAL_ROUND)
    return rounds


def answer(center: Center, who: Principal, form_ref: str, body: SurveyAnswerIn) -> SurveyAnswerOut:
    """Record a project's answers for a round (a correction is a new row)."""
    now = utcnow()
    with center.store.write() as session:
        form = form_by_ref(session, form_ref)
        project = project_by_ref(session, body.project)
        require(who, "request.create", project_target(session, project), body.project)
        rounds = _rounds(session, form, project.id)
        if body.round not in rounds:
            if not rounds:
                raise InvalidInput(
                    "project", "{project} has no grant of this form's program", project=project.name
                )
            raise InvalidInput(
                "round",
                "{project} answers rounds {rounds}",
                project=project.name,
                rounds=", ".join(sorted(rounds)),
            )
        row = orm.SurveyAnswer(
            form_id=form.id,
            project_id=project.id,
            round=body.round,
            answers=_checked(form, body.answers),
            submitted_by=who.user_id,
            submitted_at=now,
        )
        session.add(row)
        session.flush()
        return SurveyAnswerOut(
            id=row.id,
            form=form.name,
            project=project.name,
            round=row.round,
            answers=row.answers,
            submitted_by=who.name,
            submitted_at=now,
            current=True,
        )


def answers(
    center: Center, who: Principal, form_ref: str, project_ref: str
) -> list[SurveyAnswerOut]:
    """Every answer a project gave to a form, oldest first; ``current`` marks the latest
    of each round."""
    with center.store.read() as session:
        form = form_by_ref(session, form_ref)
        project = project_by_ref(session, project_ref)
        require(who, "allocation.read", project_target(session, project), project_ref)
        rows = session.execute(
            select(orm.SurveyAnswer, orm.User.name)
            .join(orm.User, orm.User.id == orm.SurveyAnswer.submitted_by)
            .where(orm.SurveyAnswer.form_id == form.id, orm.SurveyAnswer.project_id == project.id)
            .order_by(orm.SurveyAnswer.id)
        ).all()
        latest = {r.round: r.id for r, _ in rows}
        return [
            SurveyAnswerOut(
                id=r.id,
                form=form.name,
                project=project.name,
                round=r.round,
                answers=r.answers,
                submitted_by=name,
                submitted_at=r.submitted_at,
                current=latest[r.round] == r.id,
            )
            for r, name in rows
        ]


def final_due(ends_at: datetime) -> datetime:
    return ends_at + timedelta(days=FINAL_GRACE_DAYS)
