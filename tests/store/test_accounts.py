"""Organizations, users and bearer tokens on both backends."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from axcenter.model.access import Principal, Role
from axcenter.store import orm
from axcenter.store.accounts import (
    TOKEN_PREFIX,
    authenticate,
    create_organization,
    create_user,
    issue_token,
    revoke_token,
)
from axcenter.store.db import Store


@dataclass(frozen=True)
class Account:
    organization_id: str
    user_id: str
    token: str


def make_account(store: Store, user: str, role: Role = Role.MEMBER, org: str = "Daeil") -> Account:
    with store.write() as session:
        existing = session.scalar(select(orm.Organization.id).where(orm.Organization.name == org))
        org_id = existing or create_organization(session, org).id
        row = create_user(session, user, org_id, role)
        token = issue_token(session, row.id, name="laptop")
        return Account(org_id, row.id, token)


def auth(store: Store, token: str) -> Principal | None:
    with store.read() as session:
        return authenticate(session, token)


def token_id(store: Store, user_id: str) -> str:
    with store.read() as session:
        ids = session.scalars(select(orm.ApiToken.id).where(orm.ApiToken.user_id == user_id)).all()
    assert len(ids) == 1
    return ids[0]


def test_token_is_stored_only_as_its_hash(store: Store) -> None:
    account = make_account(store, "park")
    assert account.token.startswith(TOKEN_PREFIX)
    secret = account.token.removeprefix(TOKEN_PREFIX)
    assert len(secret) >= 40  # 256 random bits, URL-safe base64

    with store.read() as session:
        rows = session.execute(select(orm.ApiToken.__table__)).mappings().all()
    assert len(rows) == 1
    (row,) = rows
    assert row["token_hash"] == hashlib.sha256(account.token.encode()).hexdigest()
    for column, value in row.items():
        assert secret not in str(value), f"api_tokens.{column} holds the plaintext token"


def test_each_token_is_new(store: Store) -> None:
    account = make_account(store, "park")
    with store.write() as session:
        second = issue_token(session, account.user_id)
    assert second != account.token
    assert auth(store, second) == auth(store, account.token)


def test_good_token_gives_its_principal(store: Store) -> None:
    admin = make_account(store, "choi", Role.ORG_ADMIN, org="Seorin Energy")
    member = make_account(store, "han", Role.MEMBER, org="Medivision")

    assert auth(store, admin.token) == Principal(
        user_id=admin.user_id,
        name="choi",
        organization_id=admin.organization_id,
        role=Role.ORG_ADMIN,
    )
    principal = auth(store, member.token)
    assert principal is not None
    assert (principal.user_id, principal.organization_id, principal.role) == (
        member.user_id,
        member.organization_id,
        Role.MEMBER,
    )
    assert not principal.is_operator


def test_unknown_token_is_refused(store: Store) -> None:
    account = make_account(store, "park")
    assert auth(store, TOKEN_PREFIX + "x" * 43) is None
    assert auth(store, account.token[:-1]) is None
    assert auth(store, account.token + "x") is None


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t.removeprefix(TOKEN_PREFIX), id="prefix removed"),
        pytest.param(lambda t: "abc_" + t.removeprefix(TOKEN_PREFIX), id="other prefix"),
        pytest.param(lambda t: t.upper(), id="prefix in upper case"),
        pytest.param(lambda t: "Bearer " + t, id="scheme left in"),
        pytest.param(lambda t: " " + t, id="leading space"),
        pytest.param(lambda t: "", id="empty"),
        pytest.param(lambda t: t + "a" * 200, id="too long"),
    ],
)
def test_malformed_token_is_refused(store: Store, mangle: Callable[[str], str]) -> None:
    account = make_account(store, "park")
    assert auth(store, mangle(account.token)) is None
    assert auth(store, account.token) is not None


def test_token_without_prefix_is_refused_even_if_its_hash_is_stored(store: Store) -> None:
    """The prefix check is a gate of its own, not just a cheap early reject."""
    account = make_account(store, "park")
    bare = "no-prefix-token"
    with store.write() as session:
        session.add(
            orm.ApiToken(
                id="tok_bare",
                user_id=account.user_id,
                token_hash=hashlib.sha256(bare.encode()).hexdigest(),
            )
        )
    assert auth(store, bare) is None


def test_revoked_token_is_refused_and_others_still_work(store: Store) -> None:
    account = make_account(store, "park")
    with store.write() as session:
        spare = issue_token(session, account.user_id, name="ci")
        revoke_token(
            session,
            session.scalars(
                select(orm.ApiToken.id).where(
                    orm.ApiToken.user_id == account.user_id, orm.ApiToken.name == "laptop"
                )
            ).one(),
        )
    assert auth(store, account.token) is None
    assert auth(store, spare) is not None


def test_revoking_twice_keeps_the_first_time(store: Store) -> None:
    account = make_account(store, "park")
    tid = token_id(store, account.user_id)
    with store.write() as session:
        revoke_token(session, tid)
    with store.read() as session:
        first = session.get(orm.ApiToken, tid)
        assert first is not None and first.revoked_at is not None
        revoked_at = first.revoked_at
    assert revoked_at.utcoffset() == timedelta(0)
    with store.write() as session:
        revoke_token(session, tid)
        revoke_token(session, "tok_missing")  # unknown ids are ignored
    with store.read() as session:
        again = session.get(orm.ApiToken, tid)
        assert again is not None and again.revoked_at == revoked_at


def test_inactive_user_is_refused(store: Store) -> None:
    account = make_account(store, "park")
    with store.write() as session:
        session.execute(update(orm.User).where(orm.User.id == account.user_id).values(active=False))
    assert auth(store, account.token) is None
    with store.write() as session:
        session.execute(update(orm.User).where(orm.User.id == account.user_id).values(active=True))
    assert auth(store, account.token) is not None


def test_tokens_do_not_cross_users(store: Store) -> None:
    a = make_account(store, "park")
    b = make_account(store, "jung")
    tid = token_id(store, a.user_id)
    with store.write() as session:
        revoke_token(session, tid)
    pa, pb = auth(store, a.token), auth(store, b.token)
    assert pa is None
    assert pb is not None and pb.user_id == b.user_id and pb.name == "jung"
