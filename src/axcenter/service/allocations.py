"""Allocation requests and their review: the path from a project's ask to a grant.

```
submitted --assign--> in_review --approve--> approved   (the grant changes: grants.py)
    |                     |------reject----> rejected
    |                     '------return----> returned --resubmit--> submitted
    '--approve/reject/return (no review needed, e.g. a termination)
submitted | in_review | returned --withdraw--> withdrawn
```

A ``new`` request asks for GPU-hours per GPU type for a window under a program;
``topup``, ``extension`` and ``termination`` name the allocation they change and follow
the same path. Organization admins file, edit (by resubmitting a returned request) and
withdraw their organization's requests; program managers assign reviewers and decide;
assigned reviewers score (1..5) and comment. Every step appends a ``request_events`` row
with who, when, what and why, in the transaction that takes the step; each request row
is locked while a step is taken, so two approvers cannot both approve it.

An approval may grant less than asked (never more). After a grant changes, the control
loop is told (``policy_changed``): it reloads quotas and budgets before its next plan.
Reading requests and checking what they ask live in ``requests``; grants in ``grants``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from axcenter.model.access import Principal, Role
from axcenter.model.ids import new_id
from axcenter.model.rubric import RubricError, weighted_total
from axcenter.service import grants
from axcenter.service.access import project_target, require
from axcenter.service.errors import Conflict, InvalidInput
from axcenter.service.projects import project_by_ref
from axcenter.service.requests import (
    OPEN,
    STEPS,
    filed_rules,
    find_request,
    request_out,
    target_allocation,
    utc,
    validated,
    when,
)
from axcenter.service.schemas import ApproveIn, RequestIn, RequestOut, ResubmitIn
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = [
    "approve",
    "approve_tx",
    "assign",
    "assign_tx",
    "create_request",
    "create_request_tx",
    "end_assignments",
    "reject",
    "resubmit",
    "return_request",
    "review",
    "review_tx",
    "withdraw",
]

REVIEWER_ROLES = frozenset({Role.REVIEWER.value, Role.PROGRAM_MANAGER.value, Role.OPERATOR.value})


def _expect(row: orm.AllocationRequest, allowed: tuple[str, ...], verb: str) -> None:
    if row.status not in allowed:
        raise Conflict(
            "request {id} is {stage}: it cannot be {verb}", id=row.id, stage=row.status, verb=verb
        )


def _event(
    session: Session,
    who: Principal,
    row: orm.AllocationRequest,
    action: str,
    at: datetime,
    *,
    comment: str = "",
    score: int | None = None,
    items: Mapping[str, int] | None = None,
    scores: dict[str, Any] | None = None,
) -> None:
    session.add(
        orm.RequestEvent(
            request_id=row.id,
            at=at,
            actor_id=who.user_id,
            action=action,
            score=score,
            comment=comment,
            items=dict(items) if items is not None else None,
            scores=scores,
        )
    )
    row.updated_at = at


# -- filing ---------------------------------------------------------------------------------


def create_request_tx(session: Session, who: Principal, body: RequestIn) -> RequestOut:
    project = project_by_ref(session, body.project)
    require(who, "request.create", project_target(session, project), body.project)
    now = utcnow()
    fields = validated(
        session,
        project,
        body.kind,
        body.program,
        body.allocation,
        body.items,
        utc(body.starts_at),
        utc(body.ends_at),
        now,
    )
    row = orm.AllocationRequest(
        id=new_id("req"),
        project_id=project.id,
        kind=body.kind,
        justification=body.justification,
        status="submitted",
        created_by=who.user_id,
        created_at=now,
        updated_at=now,
        **fields,
    )
    session.add(row)
    session.flush()
    _event(session, who, row, "submitted", now, items=row.items or None)
    session.flush()
    return request_out(session, row, who, events=True)


def create_request(center: Center, who: Principal, body: RequestIn) -> RequestOut:
    with center.store.write() as session:
        return create_request_tx(session, who, body)


def resubmit(center: Center, who: Principal, request_id: str, body: ResubmitIn) -> RequestOut:
    """Send a returned request back, with the changes given (the edit of a returned
    request); it is checked again as when it was filed."""
    now = utcnow()
    with center.store.write() as session:
        row, project = find_request(session, who, request_id, "request.change")
        _expect(row, STEPS["resubmit"].statuses, "resubmitted")
        fields = validated(
            session,
            project,
            row.kind,
            None,
            row.allocation_id,
            body.items if body.items is not None else row.items,
            utc(body.starts_at) or (row.starts_at if row.kind == "new" else None),
            utc(body.ends_at) or (row.ends_at if row.kind in ("new", "extension") else None),
            now,
        )
        for key in ("items", "starts_at", "ends_at"):
            setattr(row, key, fields[key])
        if body.justification is not None:
            row.justification = body.justification
        row.status = "submitted"
        _event(session, who, row, "resubmitted", now, comment=body.comment, items=row.items)
        session.flush()
        return request_out(session, row, who, events=True)


def withdraw(center: Center, who: Principal, request_id: str, comment: str = "") -> RequestOut:
    now = utcnow()
    with center.store.write() as session:
        row, _ = find_request(session, who, request_id, "request.change")
        _expect(row, STEPS["withdraw"].statuses, "withdrawn")
        row.status = "withdrawn"
        _event(session, who, row, "withdrawn", now, comment=comment)
        session.flush()
        return request_out(session, row, who, events=True)


# -- review ---------------------------------------------------------------------------------


def assign_tx(
    session: Session, who: Principal, request_id: str, reviewers: list[str], now: datetime
) -> RequestOut:
    """Assign reviewers (program managers); the request is then in review. Reviewers come
    from outside the applicant's organization (nobody reviews their own company) and
    from outside every organization they declared a conflict of interest with (a
    competitor, a former employer: ``reviewer_conflicts``)."""
    row, project = find_request(session, who, request_id, "request.assign")
    _expect(row, OPEN, "assigned reviewers")
    present = set(
        session.scalars(
            select(orm.RequestReviewer.reviewer_id).where(orm.RequestReviewer.request_id == row.id)
        )
    )
    names = []
    for index, ref in enumerate(reviewers):
        column = orm.User.id if ref.startswith("usr_") else orm.User.name
        user = session.scalars(select(orm.User).where(column == ref)).one_or_none()
        field = f"reviewers[{index}]"
        if user is None or user.role not in REVIEWER_ROLES or not user.active:
            raise InvalidInput(field, "{ref!r} is no active reviewer", ref=ref)
        if user.organization_id == project.organization_id:
            raise InvalidInput(field, "{ref!r} belongs to the applicant's organization", ref=ref)
        if session.get(orm.ReviewerConflict, (user.id, project.organization_id)) is not None:
            raise InvalidInput(
                field, "{ref!r} declared a conflict of interest with the applicant", ref=ref
            )
        if user.id not in present:
            session.add(orm.RequestReviewer(request_id=row.id, reviewer_id=user.id))
            present.add(user.id)
        names.append(user.name)
    row.status = "in_review"
    _event(session, who, row, "assigned", now, comment="reviewers: " + ", ".join(names))
    session.flush()
    return request_out(session, row, who, events=True)


def end_assignments(session: Session, who: Principal, user: orm.User, now: datetime) -> None:
    """``user`` lost the reviewer's role (or was deactivated): its assignments to
    requests not yet decided end, each with an ``unassigned`` event; its reviews stay in
    the history and no longer count (``request_out``)."""
    rows = session.execute(
        select(orm.RequestReviewer, orm.AllocationRequest)
        .join(
            orm.AllocationRequest,
            orm.AllocationRequest.id == orm.RequestReviewer.request_id,
        )
        .where(
            orm.RequestReviewer.reviewer_id == user.id,
            orm.AllocationRequest.status.in_((*OPEN, "returned")),
        )
    ).all()
    for assignment, row in rows:
        session.delete(assignment)
        _event(session, who, row, "unassigned", now, comment="the reviewer's role ended")


def assign(center: Center, who: Principal, request_id: str, reviewers: list[str]) -> RequestOut:
    with center.store.write() as session:
        return assign_tx(session, who, request_id, reviewers, utcnow())


def review_tx(
    session: Session,
    who: Principal,
    request_id: str,
    score: int | None,
    comment: str,
    now: datetime,
    scores: Mapping[str, int] | None = None,
) -> RequestOut:
    """An assigned reviewer's score (1..5), or, where the rules the request was filed
    under have a rubric, a score per criterion (``model.rubric``), with a comment; a later
    review by the same reviewer supersedes the earlier one in the mean, both stay in the
    history."""
    row, _ = find_request(session, who, request_id, "request.review")
    _expect(row, STEPS["review"].statuses, "reviewed")
    rubric = filed_rules(session, row).rubric
    graded: dict[str, Any] | None = None
    if rubric:
        if score is not None or not scores:
            keys = ", ".join(f"{c.key} (1..{c.scale})" for c in rubric)
            raise InvalidInput(
                "scores", "this program's rubric scores each criterion: {keys}", keys=keys
            )
        try:
            total = weighted_total(rubric, scores)
        except RubricError as exc:
            raise InvalidInput(exc.field, exc.template, **exc.params) from None
        graded = {
            "scores": dict(scores),
            "rubric": [c.to_json() for c in rubric],
            "total": total,
        }
    else:
        if scores:
            raise InvalidInput("scores", "this program has no rubric: give one score (1..5)")
        if score is None or not 1 <= score <= 5:
            raise InvalidInput("score", "must be between 1 and 5")
    _event(session, who, row, "reviewed", now, score=score, comment=comment, scores=graded)
    session.flush()
    return request_out(session, row, who, events=True)


def review(
    center: Center,
    who: Principal,
    request_id: str,
    score: int | None,
    comment: str = "",
    scores: Mapping[str, int] | None = None,
) -> RequestOut:
    with center.store.write() as session:
        return review_tx(session, who, request_id, score, comment, utcnow(), scores)


# -- decisions ------------------------------------------------------------------------------


def _granted_items(row: orm.AllocationRequest, items: Mapping[str, int] | None) -> dict[str, int]:
    """What an approval grants: the request's items, or fewer (never more, no new type)."""
    asked = {k: int(v) for k, v in row.items.items()}
    if items is None:
        return asked
    for gpu_type, hours in items.items():
        if gpu_type not in asked:
            raise InvalidInput(
                f"items.{gpu_type}", "the request asks for no {gpu_type}", gpu_type=gpu_type
            )
        if hours > asked[gpu_type]:
            raise InvalidInput(
                f"items.{gpu_type}",
                "{hours} GPU-hours is more than the {asked} requested",
                hours=hours,
                asked=asked[gpu_type],
            )
    if not items:
        raise InvalidInput("items", "grant at least one GPU type (or reject the request)")
    return dict(items)


def approve_tx(
    session: Session, who: Principal, request_id: str, body: ApproveIn, now: datetime
) -> RequestOut:
    """Approve inside the caller's transaction; the grant changes with it."""
    row, project = find_request(session, who, request_id, "request.decide")
    _expect(row, STEPS["decide"].statuses, "approved")
    granted: dict[str, int] | None = None
    if row.kind in ("new", "topup"):
        granted = _granted_items(row, body.items)
    elif body.items:
        raise InvalidInput("items", "a {kind} grants no GPU-hours", kind=row.kind)
    if row.kind == "new":
        starts_at = utc(body.starts_at) or row.starts_at
        ends_at = utc(body.ends_at) or row.ends_at
        if ends_at <= starts_at or ends_at <= now:
            raise InvalidInput(
                "ends_at", "{ends_at} does not leave a window", ends_at=when(ends_at)
            )
        assert granted is not None
        allocation = grants.grant(
            session, who, row, granted, starts_at, ends_at, body.on_exhaustion, now
        )
        row.allocation_id = allocation.id
    else:
        allocation = target_allocation(session, project, row.allocation_id, row.kind)
        if row.kind == "topup":
            assert granted is not None
            grants.top_up(session, who, row, allocation, granted, now)
        elif row.kind == "extension":
            ends_at = utc(body.ends_at) or row.ends_at
            if ends_at > row.ends_at:
                raise InvalidInput(
                    "ends_at", "later than the requested {ends_at}", ends_at=when(row.ends_at)
                )
            grants.extend(session, who, row, allocation, ends_at)
        else:
            grants.terminate(session, who, row, allocation, now)
    row.status = "approved"
    _event(session, who, row, "approved", now, comment=body.comment, items=granted)
    session.flush()
    return request_out(session, row, who, events=True)


def approve(center: Center, who: Principal, request_id: str, body: ApproveIn) -> RequestOut:
    with center.store.write() as session:
        out = approve_tx(session, who, request_id, body, utcnow())
    center.control.policy_changed()  # quotas and budgets follow the grant
    return out


def _decide(
    center: Center, who: Principal, request_id: str, status: str, verb: str, comment: str
) -> RequestOut:
    if not comment.strip():
        raise InvalidInput("comment", "say why the request is {verb}", verb=verb)
    now = utcnow()
    with center.store.write() as session:
        row, _ = find_request(session, who, request_id, "request.decide")
        _expect(row, STEPS["decide"].statuses, verb)
        row.status = status
        _event(session, who, row, status, now, comment=comment)
        session.flush()
        return request_out(session, row, who, events=True)


def reject(center: Center, who: Principal, request_id: str, comment: str) -> RequestOut:
    return _decide(center, who, request_id, "rejected", "rejected", comment)


def return_request(center: Center, who: Principal, request_id: str, comment: str) -> RequestOut:
    """Send a request back to its organization for changes (then ``resubmit``)."""
    return _decide(center, who, request_id, "returned", "returned", comment)
