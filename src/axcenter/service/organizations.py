"""Organizations, users, roles and API tokens.

Operators onboard organizations (program managers may too: companies apply under their
calls), create users of any role, and alone change roles. An organization admin creates
members of its own organization and manages their tokens. Every user manages its own
tokens. A token is shown once, in the answer that issues it; the store keeps only its hash.

Role changes, new users and token issue/revoke are audited: they decide who may spend
and approve money.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from axcenter.model.access import Principal, Role
from axcenter.service.access import (
    center_target,
    org_target,
    require,
    user_target,
    visible_organizations,
    visible_users,
)
from axcenter.service.audit import record
from axcenter.service.errors import Conflict, Forbidden, InvalidInput, NotFound
from axcenter.service.schemas import (
    ConflictIn,
    ConflictListOut,
    ConflictOut,
    OrganizationIn,
    OrganizationOut,
    TokenOut,
    UserIn,
    UserOut,
    UserPatchIn,
)
from axcenter.store import accounts, orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = [
    "create_organization",
    "create_organization_tx",
    "create_user",
    "create_user_tx",
    "declare_conflict",
    "get_organization",
    "get_user",
    "issue_token",
    "list_conflicts",
    "list_organizations",
    "list_users",
    "org_by_ref",
    "revoke_token",
    "rotate_token",
    "update_user",
    "user_by_ref",
    "withdraw_conflict",
]


def org_by_ref(
    session: Session, ref: str, *, field: str | None = None, who: Principal | None = None
) -> orm.Organization:
    """The organization ``ref`` (``org_`` id or name); NotFound, or InvalidInput in a body.

    With ``who``, an organization the caller may not see reads exactly like one that does
    not exist, so a request body cannot probe other tenants' names.
    """
    column = orm.Organization.id if ref.startswith("org_") else orm.Organization.name
    query = select(orm.Organization).where(column == ref)
    if who is not None:
        query = query.where(visible_organizations(who))
    org = session.scalars(query).one_or_none()
    if org is None:
        if field is not None:
            raise InvalidInput(field, "unknown organization {ref!r}", ref=ref)
        raise NotFound("no organization {ref!r}", ref=ref)
    return org


def user_by_ref(session: Session, ref: str, *, field: str | None = None) -> orm.User:
    """The user ``ref`` (``usr_`` id or name); NotFound, or InvalidInput in a body."""
    column = orm.User.id if ref.startswith("usr_") else orm.User.name
    user = session.scalars(select(orm.User).where(column == ref)).one_or_none()
    if user is None:
        if field is not None:
            raise InvalidInput(field, "unknown user {ref!r}", ref=ref)
        raise NotFound("no user {ref!r}", ref=ref)
    return user


def _org_out(org: orm.Organization) -> OrganizationOut:
    return OrganizationOut(
        id=org.id,
        name=org.name,
        registration_no=org.registration_no,
        size_class=org.size_class,
        region=org.region,
        youth_startup=bool(org.youth_startup),
        created_at=org.created_at,
    )


def _token_out(token: orm.ApiToken, user: str, secret: str | None = None) -> TokenOut:
    return TokenOut(
        id=token.id,
        user=user,
        name=token.name,
        created_at=token.created_at,
        revoked_at=token.revoked_at,
        expires_at=token.expires_at,
        token=secret,
    )


def _user_out(session: Session, user: orm.User, *, tokens: bool = False) -> UserOut:
    org = session.get(orm.Organization, user.organization_id)
    out = UserOut(
        id=user.id,
        name=user.name,
        organization_id=user.organization_id,
        organization=org.name if org else "?",
        role=user.role,
        active=user.active,
        created_at=user.created_at,
    )
    if tokens:
        out.tokens = [
            _token_out(t, user.name)
            for t in session.scalars(
                select(orm.ApiToken)
                .where(orm.ApiToken.user_id == user.id)
                .order_by(orm.ApiToken.created_at)
            )
        ]
    return out


# -- organizations --------------------------------------------------------------------------


def list_organizations(center: Center, who: Principal) -> list[OrganizationOut]:
    with center.store.read() as session:
        rows = session.scalars(
            select(orm.Organization)
            .where(visible_organizations(who))
            .order_by(orm.Organization.name)
        )
        return [_org_out(o) for o in rows]


def get_organization(center: Center, who: Principal, ref: str) -> OrganizationOut:
    with center.store.read() as session:
        org = org_by_ref(session, ref)
        require(who, "organization.read", org_target(org), ref)
        return _org_out(org)


def create_organization_tx(
    session: Session, who: Principal, body: OrganizationIn
) -> OrganizationOut:
    require(who, "organization.create", center_target("organizations"))
    if session.scalars(
        select(orm.Organization.id).where(orm.Organization.name == body.name)
    ).first():
        raise Conflict("organization {name!r} already exists", name=body.name)
    org = accounts.create_organization(
        session,
        body.name,
        registration_no=body.registration_no,
        size_class=body.size_class,
        region=body.region,
    )
    org.youth_startup = body.youth_startup
    session.flush()
    record(session, who, "organization.create", "organization", org.id, body.model_dump())
    return _org_out(org)


def create_organization(center: Center, who: Principal, body: OrganizationIn) -> OrganizationOut:
    try:
        with center.store.write() as session:
            return create_organization_tx(session, who, body)
    except IntegrityError:
        raise Conflict("organization {name!r} already exists", name=body.name) from None


# -- users and roles ------------------------------------------------------------------------


def list_users(center: Center, who: Principal, organization: str | None = None) -> list[UserOut]:
    with center.store.read() as session:
        query = select(orm.User).where(visible_users(who)).order_by(orm.User.name)
        if organization is not None:
            org = org_by_ref(session, organization)
            require(who, "organization.read", org_target(org), organization)
            query = query.where(orm.User.organization_id == org.id)
        return [_user_out(session, u) for u in session.scalars(query)]


def get_user(center: Center, who: Principal, ref: str) -> UserOut:
    with center.store.read() as session:
        user = user_by_ref(session, ref)
        require(who, "user.read", user_target(user), ref)
        return _user_out(session, user, tokens=True)


def create_user_tx(session: Session, who: Principal, body: UserIn) -> UserOut:
    """Create a user (and, unless ``body.token`` is false, its first token, returned once)."""
    org = (
        org_by_ref(session, body.organization, field="organization", who=who)
        if body.organization is not None
        else session.get(orm.Organization, who.organization_id)
    )
    assert org is not None
    require(who, "user.create", org_target(org), body.organization)
    role = Role(body.role)
    if who.role is not Role.OPERATOR and role is not Role.MEMBER:
        raise Forbidden("organization admins create members only, not {role}s", role=role.value)
    if session.scalars(select(orm.User.id).where(orm.User.name == body.name)).first():
        raise Conflict("user {name!r} already exists", name=body.name)
    user = accounts.create_user(session, body.name, org.id, role)
    record(session, who, "user.create", "user", user.id, {"organization": org.name, "role": role})
    out = _user_out(session, user)
    if body.token:
        out.token = accounts.issue_token(session, user.id, "first token")
        record(session, who, "token.issue", "user", user.id, {"name": "first token"})
    return out


def create_user(center: Center, who: Principal, body: UserIn) -> UserOut:
    try:
        with center.store.write() as session:
            return create_user_tx(session, who, body)
    except IntegrityError:
        raise Conflict("user {name!r} already exists", name=body.name) from None


def update_user(center: Center, who: Principal, ref: str, body: UserPatchIn) -> UserOut:
    """Change a user's role or deactivate it (operators only; audited). The last active
    operator cannot be demoted or deactivated: nobody could change roles any more."""
    with center.store.write() as session:
        user = user_by_ref(session, ref)
        require(who, "user.role", user_target(user), ref)
        role = Role(body.role) if body.role is not None else Role(user.role)
        active = body.active if body.active is not None else user.active
        if user.role == Role.OPERATOR.value and (role is not Role.OPERATOR or not active):
            operators = session.scalar(
                select(func.count())
                .select_from(orm.User)
                .where(orm.User.role == Role.OPERATOR.value, orm.User.active.is_(True))
            )
            if (operators or 0) <= 1:
                raise Conflict("{user} is the last active operator", user=user.name)
        before = {"role": user.role, "active": user.active}
        user.role, user.active = role.value, active
        after = {"role": user.role, "active": user.active}
        if after != before:
            record(session, who, "user.role", "user", user.id, {"before": before, "after": after})
        # allocations imports projects, which imports this module
        from axcenter.service.allocations import (  # noqa: PLC0415
            REVIEWER_ROLES,
            end_assignments,
        )

        if role.value not in REVIEWER_ROLES or not active:
            end_assignments(session, who, user, utcnow())
        return _user_out(session, user, tokens=True)


# -- conflicts of interest ------------------------------------------------------------------


def list_conflicts(center: Center, who: Principal, user_ref: str) -> ConflictListOut:
    """The organizations a reviewer declared a conflict of interest with."""
    with center.store.read() as session:
        user = user_by_ref(session, user_ref)
        require(who, "user.read", user_target(user), user_ref)
        return ConflictListOut(items=_conflicts(session, user))


def _conflicts(session: Session, user: orm.User) -> list[ConflictOut]:
    rows = session.execute(
        select(orm.ReviewerConflict, orm.Organization.name)
        .join(orm.Organization, orm.Organization.id == orm.ReviewerConflict.organization_id)
        .where(orm.ReviewerConflict.reviewer_id == user.id)
        .order_by(orm.Organization.name)
    ).all()
    return [
        ConflictOut(organization=name, reason=c.reason, declared_at=c.declared_at)
        for c, name in rows
    ]


def declare_conflict(
    center: Center, who: Principal, user_ref: str, body: ConflictIn
) -> ConflictListOut:
    """A reviewer (or an operator or program manager for them) declares a conflict of
    interest with an organization: requests of that organization are never assigned to
    the reviewer. Declaring it again changes nothing but the reason. Audited."""
    with center.store.write() as session:
        user = user_by_ref(session, user_ref)
        require(who, "conflict.declare", user_target(user), user_ref)
        org = session.scalars(
            select(orm.Organization).where(
                (
                    orm.Organization.id
                    if body.organization.startswith("org_")
                    else orm.Organization.name
                )
                == body.organization
            )
        ).one_or_none()
        if org is None:
            raise InvalidInput(
                "organization", "no organization {organization!r}", organization=body.organization
            )
        row = session.get(orm.ReviewerConflict, (user.id, org.id))
        if row is None:
            session.add(
                orm.ReviewerConflict(
                    reviewer_id=user.id, organization_id=org.id, reason=body.reason
                )
            )
        else:
            row.reason = body.reason
        record(
            session, who, "conflict.declare", "user", user.id,
            {"organization": org.name, "reason": body.reason},
        )  # fmt: skip
        session.flush()
        return ConflictListOut(items=_conflicts(session, user))


def withdraw_conflict(center: Center, who: Principal, user_ref: str, organization: str) -> None:
    """Remove a declared conflict (operators and program managers: a reviewer cannot
    withdraw one to be assigned). Removing one that is not declared changes nothing."""
    with center.store.write() as session:
        user = user_by_ref(session, user_ref)
        require(who, "conflict.withdraw", user_target(user), user_ref)
        column = orm.Organization.id if organization.startswith("org_") else orm.Organization.name
        org_id = session.scalar(select(orm.Organization.id).where(column == organization))
        row = session.get(orm.ReviewerConflict, (user.id, org_id)) if org_id else None
        if row is not None:
            session.delete(row)
            record(
                session, who, "conflict.withdraw", "user", user.id, {"organization": organization}
            )


# -- tokens ---------------------------------------------------------------------------------


def _may_manage_tokens(who: Principal, user: orm.User, ref: str) -> None:
    require(who, "token.manage", user_target(user), ref)
    if who.role is Role.ORG_ADMIN and user.id != who.user_id and user.role != Role.MEMBER.value:
        raise Forbidden("organization admins manage the tokens of members only")


def issue_token(
    center: Center,
    who: Principal,
    user_ref: str,
    name: str = "",
    expires_in_days: int | None = None,
) -> TokenOut:
    """A new token for a user; the answer is the only place it is ever shown.
    ``expires_in_days`` None: valid until revoked."""
    with center.store.write() as session:
        user = user_by_ref(session, user_ref)
        _may_manage_tokens(who, user, user_ref)
        expires = None if expires_in_days is None else utcnow() + timedelta(days=expires_in_days)
        row, secret = _issue(session, user.id, name, expires)
        record(
            session,
            who,
            "token.issue",
            "user",
            user.id,
            {"token_id": row.id, "name": name, "expires_at": _iso(expires)},
        )
        return _token_out(row, user.name, secret)


def _issue(
    session: Session, user_id: str, name: str, expires: datetime | None
) -> tuple[orm.ApiToken, str]:
    secret = accounts.issue_token(session, user_id, name, expires)
    row = session.scalars(
        select(orm.ApiToken).where(orm.ApiToken.token_hash == accounts.hash_token(secret))
    ).one()
    return row, secret


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def rotate_token(
    center: Center, who: Principal, token_id: str, expires_in_days: int | None = None
) -> TokenOut:
    """Replace a valid token by a new one of the same user and name, and revoke it in
    the same transaction: a client switches to the answer's token. Without
    ``expires_in_days`` the new token keeps the old one's lifetime (or none)."""
    with center.store.write() as session:
        token = session.get(orm.ApiToken, token_id)
        user = session.get(orm.User, token.user_id) if token is not None else None
        if token is None or user is None:
            raise NotFound("no token {token_id!r}", token_id=token_id)
        try:
            _may_manage_tokens(who, user, user.name)
        except NotFound:
            raise NotFound("no token {token_id!r}", token_id=token_id) from None
        now = utcnow()
        if token.revoked_at is not None or (
            token.expires_at is not None and token.expires_at <= now
        ):
            raise Conflict(
                "token {token_id} is revoked or expired: issue a new one instead", token_id=token_id
            )
        if expires_in_days is not None:
            expires = now + timedelta(days=expires_in_days)
        elif token.expires_at is not None:
            expires = now + (token.expires_at - token.created_at)
        else:
            expires = None
        token.revoked_at = now
        row, secret = _issue(session, user.id, token.name, expires)
        record(
            session,
            who,
            "token.rotate",
            "user",
            user.id,
            {"token_id": token.id, "new_token_id": row.id, "expires_at": _iso(expires)},
        )
        return _token_out(row, user.name, secret)


def revoke_token(center: Center, who: Principal, token_id: str) -> None:
    """Revoke a token at once (revoking a revoked token changes nothing)."""
    with center.store.write() as session:
        token = session.get(orm.ApiToken, token_id)
        user = session.get(orm.User, token.user_id) if token is not None else None
        if token is None or user is None:
            raise NotFound("no token {token_id!r}", token_id=token_id)
        try:
            _may_manage_tokens(who, user, user.name)
        except NotFound:
            raise NotFound("no token {token_id!r}", token_id=token_id) from None
        if token.revoked_at is None:
            token.revoked_at = utcnow()
            record(session, who, "token.revoke", "user", user.id, {"token_id": token.id})
