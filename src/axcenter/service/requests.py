"""Allocation requests as callers read them, and the checks a request's content passes.

``allocations`` takes requests through their review; this module answers what a request
is (``request_out``, with its history and the reviewers' mean score; read alone, also what
a reviewer weighs: the applicant's size, the request's worth in won at today's prices and
the project's current spending), finds one for a step
(``find_request``: 404 before 403, row locked), and checks what a request asks for its
kind (``validated``), as filed and as resubmitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from statistics import fmean
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from axcenter.accounting.accrual import accrual
from axcenter.accounting.ledger import CHARGE_KINDS, balances
from axcenter.accounting.prices import prices_at
from axcenter.accounting.terms import org_facts, rules_at
from axcenter.model.access import Principal, Role
from axcenter.model.rubric import preference_points
from axcenter.model.terms import ProgramRules
from axcenter.service.access import (
    allowed,
    project_named,
    request_target,
    require,
    visible_requests,
)
from axcenter.service.errors import Conflict, InvalidInput, NotFound
from axcenter.service.programs import program_by_ref
from axcenter.service.schemas import AttachmentOut, RequestContextOut, RequestEventOut, RequestOut
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = [
    "OPEN",
    "PSEUDONYM",
    "STEPS",
    "Step",
    "attachment_out",
    "attachments_of",
    "filed_rules",
    "find_request",
    "get_request",
    "list_requests",
    "request_out",
    "target_allocation",
    "utc",
    "validated",
    "when",
]


def utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


# -- reading --------------------------------------------------------------------------------


#: statuses after a decision: the applicant then reads the reviews' consolidated feedback
DECIDED = ("approved", "rejected", "returned")
#: how a reviewer is named to those who may not know who it is
PSEUDONYM = "reviewer {n}"


def filed_rules(session: Session, row: orm.AllocationRequest) -> ProgramRules:
    """The program's rules in force when the request was filed: the call the applicant
    answered, whose rubric and preferences its review follows (rules set later apply to
    requests filed later, as they do to charges)."""
    return rules_at(session, row.program_id, row.created_at) or ProgramRules()


def request_out(
    session: Session,
    row: orm.AllocationRequest,
    who: Principal,
    *,
    events: bool = False,
    actions: list[str] | None = None,
) -> RequestOut:
    """A request as ``who`` may read it (review confidentiality, docs/security.md):

    - operators and program managers read everything;
    - reviewers are anonymous to the applicant and to each other: others read them as
      "reviewer 1", "reviewer 2" (``PSEUDONYM``, in the order they first reviewed, then
      as assigned), and the ``assigned`` event without its comment (which names them);
    - an assigned reviewer reads no other reviewer's score or comment before submitting
      their own (nor the mean);
    - the applicant reads the reviews (scores, comments, mean) only once the request is
      decided (approved, rejected or returned): consolidated, without names.

    Only the scores of reviewers assigned now count: an operator's review, or that of a
    reviewer whose assignment ended, stays in the history but not in the mean. Under a
    rubric (``filed_rules``) each review has a weighted total, the request the mean of
    them, plus the preference points of the applicant's organization, named.
    """
    project = session.get(orm.Project, row.project_id)
    program = session.get(orm.Program, row.program_id)
    creator = session.get(orm.User, row.created_by)
    assigned = session.execute(
        select(orm.User.id, orm.User.name)
        .join(orm.RequestReviewer, orm.RequestReviewer.reviewer_id == orm.User.id)
        .where(orm.RequestReviewer.request_id == row.id)
        .order_by(orm.User.name)
    ).all()
    history = session.execute(
        select(orm.RequestEvent, orm.User.name)
        .join(orm.User, orm.User.id == orm.RequestEvent.actor_id)
        .where(orm.RequestEvent.request_id == row.id)
        .order_by(orm.RequestEvent.id)
    ).all()
    reviewer_ids = {user_id for user_id, _ in assigned}
    latest: dict[str, int] = {}
    totals: dict[str, float] = {}
    for event, _ in history:
        if event.action != "reviewed" or event.actor_id not in reviewer_ids:
            continue
        if event.scores is not None:
            totals[event.actor_id] = float(event.scores["total"])
        elif event.score is not None:
            latest[event.actor_id] = event.score
    rules = filed_rules(session, row)
    facts = org_facts(session, [row.project_id]).get(row.project_id)
    points, preferences = preference_points(rules.preferences, facts) if facts else (0, [])
    oversees = who.role in (Role.OPERATOR, Role.PROGRAM_MANAGER)
    reviewed_own = any(e.action == "reviewed" and e.actor_id == who.user_id for e, _ in history)
    if oversees:
        reviews_visible = True
    elif who.user_id in reviewer_ids:
        reviews_visible = reviewed_own
    else:
        reviews_visible = row.status in DECIDED
    # pseudonyms: every reviewer (assigned now, or who reviewed) by order of appearance
    pseudonym: dict[str, str] = {}
    for event, _ in history:
        if event.action == "reviewed" and event.actor_id not in pseudonym:
            pseudonym[event.actor_id] = PSEUDONYM.format(n=len(pseudonym) + 1)
    for user_id, _ in sorted(assigned):
        pseudonym.setdefault(user_id, PSEUDONYM.format(n=len(pseudonym) + 1))

    def shown(user_id: str, name: str) -> tuple[str, str]:
        if oversees or user_id == who.user_id or user_id not in pseudonym:
            return name, user_id
        return pseudonym[user_id], ""

    shown_events = []
    for e, actor in history:
        if e.action == "reviewed" and not (reviews_visible or e.actor_id == who.user_id):
            continue
        name, actor_id = shown(e.actor_id, actor)
        comment = e.comment
        if e.action == "assigned" and not oversees:
            comment = ""  # it names the reviewers
        shown_events.append(
            RequestEventOut(
                at=e.at,
                actor=name,
                actor_id=actor_id,
                action=e.action,
                score=e.score,
                comment=comment,
                items=e.items,
                scores=e.scores["scores"] if e.scores else None,
                total=e.scores["total"] if e.scores else None,
            )
        )
    weighted = round(fmean(totals.values()), 2) if totals and reviews_visible else None
    return RequestOut(
        id=row.id,
        project=project.name if project else "?",
        project_id=row.project_id,
        program=program.name if program else "?",
        program_id=row.program_id,
        kind=row.kind,
        allocation_id=row.allocation_id,
        items={k: int(v) for k, v in row.items.items()},
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        justification=row.justification,
        status=row.status,
        created_by=creator.name if creator else "?",
        created_at=row.created_at,
        updated_at=row.updated_at,
        reviewers=[shown(user_id, name)[0] for user_id, name in assigned],
        mean_score=round(fmean(latest.values()), 2) if latest and reviews_visible else None,
        rubric=[c.to_json() for c in rules.rubric],
        weighted_total=weighted,
        preference_points=points,
        preferences=preferences,
        total=round(weighted + points, 2) if weighted is not None else None,
        events=shown_events if events else None,
        actions=actions,
    )


def list_requests(
    center: Center,
    who: Principal,
    *,
    project: str | None = None,
    program: str | None = None,
    status: str | None = None,
) -> list[RequestOut]:
    """Requests ``who`` may read (reviewers: those assigned to them), newest first."""
    query = select(orm.AllocationRequest).where(visible_requests(who))
    if status:
        query = query.where(orm.AllocationRequest.status == status)
    with center.store.read() as session:
        if project:
            query = query.where(
                orm.AllocationRequest.project_id.in_(
                    select(orm.Project.id).where(project_named(project))
                )
            )
        if program:
            column = orm.Program.id if program.startswith("prg_") else orm.Program.name
            query = query.where(
                orm.AllocationRequest.program_id.in_(
                    select(orm.Program.id).where(column == program)
                )
            )
        rows = session.scalars(query.order_by(orm.AllocationRequest.id.desc())).all()
        return [request_out(session, r, who) for r in rows]


#: statuses of a request still on its way to a decision
OPEN = ("submitted", "in_review")


class Step(NamedTuple):
    """A step on a request: the access rule it needs and the statuses that admit it."""

    rule: str
    statuses: tuple[str, ...]


#: ``service.allocations`` checks both on every step; a request's ``actions`` answer
#: from the same table
STEPS: Mapping[str, Step] = {
    "review": Step("request.review", ("in_review",)),
    "decide": Step("request.decide", OPEN),
    # the applicant's: send a returned request back (edited), or take it back
    "resubmit": Step("request.change", ("returned",)),
    "withdraw": Step("request.change", (*OPEN, "returned")),
    # files (``service.attachments``): before review starts, and while returned
    "attach": Step("request.change", ("submitted", "returned")),
}


def get_request(center: Center, who: Principal, request_id: str) -> RequestOut:
    """A request with its whole history and the steps the caller may take now."""
    with center.store.read() as session:
        row, project = _lookup(session, request_id, lock=False)
        target = request_target(session, row, project)
        require(who, "request.read", target, request_id)
        actions = [
            name
            for name, step in STEPS.items()
            if row.status in step.statuses and allowed(who, step.rule, target)
        ]
        out = request_out(session, row, who, events=True, actions=actions)
        out.context = _context(session, row, project)
        out.attachments = attachments_of(session, row.id)
        return out


def attachment_out(row: orm.RequestAttachment, uploader: str) -> AttachmentOut:
    return AttachmentOut(
        id=row.id,
        filename=row.filename,
        content_type=row.content_type,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        uploaded_by=uploader,
        uploaded_at=row.uploaded_at,
    )


def attachments_of(session: Session, request_id: str) -> list[AttachmentOut]:
    """The request's attachments (``service.attachments``), oldest first; the caller
    checked that its reader may read the request."""
    rows = session.execute(
        select(orm.RequestAttachment, orm.User.name)
        .join(orm.User, orm.User.id == orm.RequestAttachment.uploaded_by)
        .where(orm.RequestAttachment.request_id == request_id)
        .order_by(orm.RequestAttachment.id)
    ).all()
    return [attachment_out(row, name) for row, name in rows]


#: the window of a request's "current burn"
BURN_DAYS = 30


def _context(
    session: Session, row: orm.AllocationRequest, project: orm.Project
) -> RequestContextOut:
    """The applicant, the request's worth in won, and how the project spends now."""
    now = utcnow()
    org = session.get(orm.Organization, project.organization_id)
    prices = prices_at(session, now)
    entry = orm.LedgerEntry
    charged = session.scalar(
        select(func.coalesce(func.sum(entry.amount_won), 0)).where(
            entry.project_id == project.id,
            entry.kind.in_(CHARGE_KINDS),
            entry.at > now - timedelta(days=BURN_DAYS),
        )
    )
    active = session.scalars(
        select(orm.Allocation.id).where(
            orm.Allocation.project_id == project.id, orm.Allocation.status == "active"
        )
    ).all()
    return RequestContextOut(
        organization=org.name if org else "?",
        size_class=org.size_class if org else None,
        value_won=sum(int(hours) * prices.get(t, 0) for t, hours in row.items.items()),
        charged_30d_won=int(charged or 0),
        accrued_won=accrual(session, now, project_id=project.id).accrued_won,
        left_won=sum(b.won_left for b in balances(session, active).values()),
    )


def find_request(
    session: Session, who: Principal, request_id: str, action: str, *, lock: bool = True
) -> tuple[orm.AllocationRequest, orm.Project]:
    """The request (locked for the step) if ``who`` may ``action`` it: 404, then 403."""
    row, project = _lookup(session, request_id, lock=lock)
    require(who, action, request_target(session, row, project), request_id)
    return row, project


def _lookup(
    session: Session, request_id: str, *, lock: bool
) -> tuple[orm.AllocationRequest, orm.Project]:
    query = select(orm.AllocationRequest).where(orm.AllocationRequest.id == request_id)
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).one_or_none()
    project = session.get(orm.Project, row.project_id) if row is not None else None
    if row is None or project is None:
        raise NotFound("no request {request_id!r}", request_id=request_id)
    return row, project


def target_allocation(
    session: Session, project: orm.Project, allocation_id: str | None, kind: str
) -> orm.Allocation:
    """The active allocation of ``project`` a topup, extension or termination changes."""
    if allocation_id is None:
        raise InvalidInput("allocation", "a {kind} names the allocation it changes", kind=kind)
    allocation = session.get(orm.Allocation, allocation_id)
    if allocation is None or allocation.project_id != project.id:
        raise InvalidInput(
            "allocation",
            "{project} has no allocation {allocation_id!r}",
            project=project.name,
            allocation_id=allocation_id,
        )
    if allocation.status != "active":
        raise Conflict(
            "allocation {allocation_id} is {status}",
            allocation_id=allocation_id,
            status=allocation.status,
        )
    return allocation


def validated(
    session: Session,
    project: orm.Project,
    kind: str,
    program_ref: str | None,
    allocation_id: str | None,
    items: Mapping[str, int],
    starts_at: datetime | None,
    ends_at: datetime | None,
    now: datetime,
) -> dict[str, Any]:
    """The request's columns, checked for its kind (InvalidInput naming the field)."""
    if kind == "new":
        ref = program_ref or project.program_id
        if ref is None:
            raise InvalidInput(
                "program", "{project} is under no program: name one", project=project.name
            )
        program = program_by_ref(session, ref, field="program")
        if not items:
            raise InvalidInput("items", "ask for GPU-hours of at least one GPU type")
        start = starts_at or max(now, program.starts_at or now)
        if ends_at is None:
            raise InvalidInput("ends_at", "a new allocation needs the end of its window")
        if ends_at <= start or ends_at <= now:
            raise InvalidInput(
                "ends_at",
                "{ends_at} is not after {earliest}",
                ends_at=when(ends_at),
                earliest=when(max(start, now)),
            )
        if program.starts_at is not None and start < program.starts_at:
            raise InvalidInput(
                "starts_at",
                "{program} starts {starts_at}",
                program=program.name,
                starts_at=when(program.starts_at),
            )
        if program.ends_at is not None and ends_at > program.ends_at:
            raise InvalidInput(
                "ends_at",
                "{program} ends {ends_at}",
                program=program.name,
                ends_at=when(program.ends_at),
            )
        return {
            "program_id": program.id,
            "allocation_id": None,
            "items": dict(items),
            "starts_at": start,
            "ends_at": ends_at,
        }
    allocation = target_allocation(session, project, allocation_id, kind)
    if program_ref is not None and program_by_ref(session, program_ref, field="program").id != (
        allocation.program_id
    ):
        raise InvalidInput(
            "program", "allocation {allocation} is under another program", allocation=allocation.id
        )
    if kind == "topup" and not items:
        raise InvalidInput("items", "a top-up asks for GPU-hours of at least one GPU type")
    if kind != "topup" and items:
        raise InvalidInput("items", "a {kind} asks for no GPU-hours", kind=kind)
    end = allocation.ends_at
    if kind == "extension":
        if ends_at is None or ends_at <= allocation.ends_at:
            raise InvalidInput(
                "ends_at",
                "an extension ends after the allocation's {ends_at}",
                ends_at=when(allocation.ends_at),
            )
        end = ends_at
    return {
        "program_id": allocation.program_id,
        "allocation_id": allocation.id,
        "items": dict(items),
        "starts_at": allocation.starts_at,
        "ends_at": end,
    }
