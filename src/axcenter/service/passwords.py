"""A password and a second factor, for centers without single sign-on.

Passwords are Argon2id hashes (argon2-cffi), set only through an operator's reset link
(``reset_link``, then ``set_password``). The second factor is TOTP (RFC 6238, pyotp),
enrolled after the password (``begin_enrolment``, ``confirm_enrolment``): a code of the
step before, the current step or the next is taken, each step once (a replayed code is
refused); ten one-time recovery codes stand in for the phone. A wrong password counts
against the failed-authentication limit per address and per account name
(``service.throttle``); ``lock_after`` wrong codes in a row lock the account until an
operator resets it, which also drops the second factor and signs the user out everywhere.
"""

from __future__ import annotations

import hmac
import secrets
import time
from base64 import b32encode
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from axcenter.model.access import Principal
from axcenter.service.access import require, user_target
from axcenter.service.audit import record
from axcenter.service.signin import Refused, Step, find_flow, new_flow, new_session
from axcenter.store import orm
from axcenter.store.accounts import hash_token
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = [
    "PasswordResetOut",
    "begin_enrolment",
    "confirm_enrolment",
    "password_step",
    "reset_link",
    "second_factor_step",
    "set_password",
]

RECOVERY_CODES = 10
TOTP_STEP_S = 30
#: codes of the step before and after the current one are taken too (clocks drift)
TOTP_WINDOW = 1

_hasher = PasswordHasher()  # Argon2id, argon2-cffi's recommended parameters (RFC 9106)
#: verified when the name is unknown, so that a wrong name costs the same time
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def _credential(session: Session, user_id: str) -> orm.SignInCredential:
    cred = session.get(orm.SignInCredential, user_id)
    if cred is None:
        cred = orm.SignInCredential(user_id=user_id, failures=0, updated_at=utcnow())
        session.add(cred)
        session.flush()
    return cred


def password_step(center: Center, name: str, password: str, address: str, next_url: str) -> Step:
    """Check a name and password. Right: the second-factor step (or its enrolment, for a
    user who has none yet). Wrong, or past the failure limit: ``Refused``."""
    config = center.sign_in.password
    if not config.enabled:
        raise Refused("login.password_off", status=403)
    keys = (f"addr:{address}", f"user:{name.strip().lower()}")
    failures = center.auth_failures
    wait = failures.retry_after(*keys)
    if wait:
        raise Refused("login.too_many", retry_after=wait)
    with center.store.write() as session:
        row = session.execute(
            select(orm.User, orm.SignInCredential)
            .outerjoin(orm.SignInCredential, orm.SignInCredential.user_id == orm.User.id)
            .where(orm.User.name == name.strip(), orm.User.active.is_(True))
        ).one_or_none()
        stored = row[1].password_hash if row is not None and row[1] is not None else None
        try:
            _hasher.verify(stored or _DUMMY_HASH, password)
            right = stored is not None
        except (VerificationError, InvalidHashError):
            right = False
        if row is None or not right:
            failures.failed(*keys)
            raise Refused("login.bad_password")
        user, cred = row
        if cred.locked_at is not None:
            raise Refused("login.locked", status=403)
        if _hasher.check_needs_rehash(stored or ""):
            cred.password_hash = _hasher.hash(password)
        if cred.totp_confirmed_at is None:
            return Step("enrol", new_flow(session, "enrol", user_id=user.id, next_url=next_url))
        return Step(
            "second_factor",
            new_flow(session, "second_factor", user_id=user.id, next_url=next_url),
        )


def _totp_step(secret: str, code: str, last: int | None, now: float) -> int | None:
    """The time step whose code ``code`` is (within the window, after ``last``)."""
    totp = pyotp.TOTP(secret, interval=TOTP_STEP_S)
    current = int(now) // TOTP_STEP_S
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        if (last is None or step > last) and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _normalize_recovery(code: str) -> str:
    return code.replace("-", "").replace(" ", "").upper()


def _recovery_codes(session: Session, user_id: str) -> list[str]:
    """Ten new recovery codes (80 random bits each), replacing any older ones."""
    session.execute(delete(orm.RecoveryCode).where(orm.RecoveryCode.user_id == user_id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = b32encode(secrets.token_bytes(10)).decode()
        session.add(orm.RecoveryCode(code_hash=hash_token(raw), user_id=user_id))
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    session.flush()
    return codes


def second_factor_step(
    center: Center, secret: str | None, code: str, address: str
) -> tuple[str, str]:
    """Check the code of a password sign-in's second step (a TOTP code or a recovery
    code); right: (the new session's secret, where to go). Each failure counts toward
    the account's lock."""
    keys = (f"addr:{address}",)
    wait = center.auth_failures.retry_after(*keys)
    if wait:
        raise Refused("login.too_many", retry_after=wait)
    code = code.strip()
    refusal: Refused | None = None
    with center.store.write() as session:
        flow = find_flow(session, secret, "second_factor")
        cred = (
            session.get(orm.SignInCredential, flow.user_id, with_for_update=True)
            if flow is not None and flow.user_id is not None
            else None
        )
        if flow is None or cred is None or cred.totp_secret is None:
            raise Refused("login.expired", status=403)
        if cred.locked_at is not None:
            session.delete(flow)
            refusal = Refused("login.locked", status=403)
        elif _second_factor_right(session, cred, code):
            cred.failures = 0
            session.delete(flow)
            return new_session(center, session, cred.user_id), flow.next_url
        else:  # counted in this transaction, which commits: the refusal is raised after
            cred.failures += 1
            center.auth_failures.failed(*keys)
            refusal = Refused("login.bad_code")
            if cred.failures >= center.sign_in.password.lock_after:
                cred.locked_at = utcnow()
                session.delete(flow)
                record(
                    session, None, "user.locked", "user", cred.user_id, {"failures": cred.failures}
                )
                refusal = Refused("login.locked", status=403)
    raise refusal


def _second_factor_right(session: Session, cred: orm.SignInCredential, code: str) -> bool:
    """A TOTP code not taken before (its step is remembered), or an unspent recovery code
    (spent now)."""
    assert cred.totp_secret is not None
    if code.isdigit() and len(code) == 6:
        step = _totp_step(cred.totp_secret, code, cred.totp_last_step, time.time())
        if step is None:
            return False
        cred.totp_last_step = step
        return True
    if not code or len(code) > 40:
        return False
    spent = session.execute(
        update(orm.RecoveryCode)
        .where(
            orm.RecoveryCode.code_hash == hash_token(_normalize_recovery(code)),
            orm.RecoveryCode.user_id == cred.user_id,
            orm.RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )
    return bool(spent.rowcount == 1)  # type: ignore[attr-defined]


def begin_enrolment(center: Center, secret: str | None) -> tuple[str, str, str]:
    """The second factor being enrolled: (its secret in base32, its otpauth URI, the QR
    code of that URI as an SVG data URI). The same secret until it is confirmed."""
    with center.store.write() as session:
        flow = find_flow(session, secret, "enrol")
        if flow is None or flow.user_id is None:
            raise Refused("login.expired", status=403)
        user = session.get(orm.User, flow.user_id)
        assert user is not None
        cred = _credential(session, user.id)
        if cred.totp_secret is None or cred.totp_confirmed_at is not None:
            cred.totp_secret = pyotp.random_base32()
            cred.totp_confirmed_at = None
            cred.totp_last_step = None
        uri = pyotp.TOTP(cred.totp_secret, interval=TOTP_STEP_S).provisioning_uri(
            name=user.name, issuer_name=center.sign_in.password.issuer_name
        )
        return cred.totp_secret, uri, segno.make(uri, error="m").svg_data_uri(scale=4)


def confirm_enrolment(center: Center, secret: str | None, code: str) -> tuple[str, str, list[str]]:
    """A code of the new second factor confirms it: (the new session's secret, where to
    go, the recovery codes, shown this once)."""
    with center.store.write() as session:
        flow = find_flow(session, secret, "enrol")
        if flow is None or flow.user_id is None:
            raise Refused("login.expired", status=403)
        cred = session.get(orm.SignInCredential, flow.user_id, with_for_update=True)
        if cred is None or cred.totp_secret is None:
            raise Refused("login.expired", status=403)
        step = _totp_step(cred.totp_secret, code.strip(), None, time.time())
        if step is None:
            raise Refused("login.bad_code")
        cred.totp_last_step = step
        cred.totp_confirmed_at = utcnow()
        cred.failures = 0
        codes = _recovery_codes(session, flow.user_id)
        next_url = flow.next_url
        session.delete(flow)
        record(session, None, "user.second_factor", "user", flow.user_id, {})
        return new_session(center, session, flow.user_id), next_url, codes


class PasswordResetOut(BaseModel):
    """An operator's password reset: where the user chooses a new password (once)."""

    user: str
    #: the reset page's address (the API answers it absolute, from its own address)
    link: str
    expires_at: datetime


def reset_link(center: Center, who: Principal, user_ref: str) -> PasswordResetOut:
    """An operator's password reset: the user's password, second factor and recovery
    codes are dropped, the account unlocked, its dashboard sessions ended; the answer is
    the one-time link where the user chooses a new password, then a second factor."""
    from axcenter.service.organizations import user_by_ref  # noqa: PLC0415 (a cycle)

    hours = center.sign_in.password.reset_link_hours
    with center.store.write() as session:
        user = user_by_ref(session, user_ref)
        require(who, "user.role", user_target(user), user_ref)
        for table in (orm.SignInCredential, orm.RecoveryCode, orm.SignInFlow):
            session.execute(delete(table).where(table.user_id == user.id))
        session.execute(
            update(orm.WebSession)
            .where(orm.WebSession.user_id == user.id, orm.WebSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        lifetime = timedelta(hours=hours)
        secret = new_flow(session, "reset", user_id=user.id, lifetime=lifetime)
        record(session, who, "user.password_reset", "user", user.id, {"hours": hours})
        return PasswordResetOut(
            user=user.name,
            link=f"/ui/login/reset?code={secret}",
            expires_at=utcnow() + lifetime,
        )


def set_password(center: Center, secret: str | None, password: str, again: str) -> Step:
    """The reset link's form: the new password is set and the second factor's enrolment
    follows."""
    config = center.sign_in.password
    if password != again:
        raise Refused("login.password_mismatch", status=400)
    with center.store.write() as session:
        flow = find_flow(session, secret, "reset")
        if flow is None or flow.user_id is None:
            raise Refused("login.link_expired", status=403)
        user = session.get(orm.User, flow.user_id)
        assert user is not None
        if len(password) < config.min_length:
            raise Refused("login.password_short", status=400)
        if user.name.lower() in password.lower():
            raise Refused("login.password_name", status=400)
        cred = _credential(session, user.id)
        cred.password_hash = _hasher.hash(password)
        cred.totp_secret = cred.totp_confirmed_at = cred.totp_last_step = None
        cred.failures = 0
        cred.locked_at = None
        cred.updated_at = utcnow()
        session.delete(flow)
        return Step("enrol", new_flow(session, "enrol", user_id=user.id))
