"""Organizations, users and bearer tokens (stored as SHA-256 hashes only)."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from axcenter.model.access import Principal, Role
from axcenter.model.ids import new_id
from axcenter.store.orm import ApiToken, Organization, User
from axcenter.store.types import utcnow

__all__ = [
    "authenticate",
    "create_organization",
    "create_user",
    "hash_token",
    "issue_token",
    "revoke_token",
]

TOKEN_PREFIX = "axc_"  # noqa: S105 (a prefix, not a secret)


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


def issue_token(session: Session, user_id: str, name: str = "") -> str:
    """Create a token for ``user_id`` and return it; this is the only time it is visible."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(id=new_id("tok"), user_id=user_id, token_hash=hash_token(token), name=name)
    )
    session.flush()
    return token


def authenticate(session: Session, token: str) -> Principal | None:
    """The principal behind ``token``, or None for unknown, revoked or inactive."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = session.execute(
        select(User.id, User.name, User.organization_id, User.role)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(
            ApiToken.token_hash == hash_token(token),
            ApiToken.revoked_at.is_(None),
            User.active.is_(True),
        )
    ).one_or_none()
    if row is None:
        return None
    return Principal(user_id=row[0], name=row[1], organization_id=row[2], role=Role(row[3]))


def revoke_token(session: Session, token_id: str) -> None:
    token = session.get(ApiToken, token_id)
    if token is not None and token.revoked_at is None:
        token.revoked_at = utcnow()
