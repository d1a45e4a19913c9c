"""Organizations, users, bearer tokens and dashboard sessions (secrets stored as SHA-256
hashes only: they are 256-bit random, so no salt)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from axcenter.model.access import Principal, Role
from axcenter.model.ids import new_id
from axcenter.store.orm import ApiToken, Organization, User, WebSession
from axcenter.store.types import utcnow

__all__ = [
    "authenticate",
    "create_organization",
    "create_user",
    "hash_token",
    "issue_token",
    "open_session",
    "revoke_session",
    "revoke_token",
    "session_principal",
]

TOKEN_PREFIX = "axc_"  # noqa: S105 (a prefix, not a secret)
SESSION_PREFIX = "axs_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_organization(session: Session, name: str, **fields: str | None) -> Organization:
    org = Organization(id=new_id("org"), name=name, **fields)
    session.add(org)
    session.flush()
    return org


def create_user(session: Session, name: str, organization_id: str, role: Role) -> User:
    user = User(id=new_id("usr"), name=name, organization_id=organization_id, role=role.value)
    session.add(user)
    session.flush()
    return user


def issue_token(
    session: Session, user_id: str, name: str = "", expires_at: datetime | None = None
) -> str:
    """Create a token for ``user_id`` and return it; this is the only time it is visible.
    ``expires_at`` None: valid until revoked."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            id=new_id("tok"),
            user_id=user_id,
            token_hash=hash_token(token),
            name=name,
            expires_at=expires_at,
        )
    )
    session.flush()
    return token


def authenticate(session: Session, token: str) -> Principal | None:
    """The principal behind ``token``, or None for unknown, revoked, expired or inactive."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = session.execute(
        select(User.id, User.name, User.organization_id, User.role)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(
            ApiToken.token_hash == hash_token(token),
            ApiToken.revoked_at.is_(None),
            or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > utcnow()),
            User.active.is_(True),
        )
    ).one_or_none()
    if row is None:
        return None
    return Principal(user_id=row[0], name=row[1], organization_id=row[2], role=Role(row[3]))


def open_session(session: Session, user_id: str, lifetime: timedelta) -> str:
    """A new dashboard session for ``user_id``; returns its secret (the cookie's value)."""
    secret = SESSION_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        WebSession(
            id=new_id("ses"),
            user_id=user_id,
            secret_hash=hash_token(secret),
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    session.flush()
    return secret


def session_principal(session: Session, secret: str) -> Principal | None:
    """The principal of a dashboard session, or None: unknown, revoked, expired, or its
    user deactivated."""
    if not secret.startswith(SESSION_PREFIX) or len(secret) > 200:
        return None
    row = session.execute(
        select(User.id, User.name, User.organization_id, User.role)
        .join(WebSession, WebSession.user_id == User.id)
        .where(
            WebSession.secret_hash == hash_token(secret),
            WebSession.revoked_at.is_(None),
            WebSession.expires_at > utcnow(),
            User.active.is_(True),
        )
    ).one_or_none()
    if row is None:
        return None
    return Principal(user_id=row[0], name=row[1], organization_id=row[2], role=Role(row[3]))


def revoke_session(session: Session, secret: str) -> None:
    row = session.scalars(
        select(WebSession).where(WebSession.secret_hash == hash_token(secret))
    ).one_or_none()
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()


def revoke_token(session: Session, token_id: str) -> None:
    token = session.get(ApiToken, token_id)
    if token is not None and token.revoked_at is None:
        token.revoked_at = utcnow()
