"""Signing in to the dashboard: a password with a second factor, or single sign-on.

API tokens stay the credential of the CLI and of scripts (``store.accounts``); people
sign in to the dashboard in one of the ways the center's configuration file offers
(``sign_in:``, ``SignInConfig``; docs/security.md, "Signing in"):

- **Single sign-on** (OpenID Connect, ``SingleSignOn``): the authorization code flow
  with PKCE (S256), a random ``state`` bound to the browser by a cookie and a ``nonce``
  checked in the ID token, whose signature (the provider's published keys), issuer,
  audience and expiry authlib checks. The provider's stable ``sub`` is linked to an
  axcenter user at the first sign-on, by the claim ``user_claim`` naming an existing
  user, and only when the e-mail's domain is one the user's organization allows:
  accounts are made by operators, never by signing in.
- **A password and a second factor** (``password_step``, ``second_factor_step``):
  Argon2id hashes (argon2-cffi); TOTP codes (RFC 6238, pyotp) taken from the step
  before, the current step and the next, each step once (a replayed code is refused);
  ten one-time recovery codes. Failed passwords count against the failed-authentication
  limit per address and per account name (``service.throttle``); failed second factors
  in a row lock the account until an operator resets it (``reset_link``), which also
  drops the second factor and signs the user out everywhere.

Each sign-in under way (``orm.SignInFlow``) is a row that the browser holds the secret
of (a cookie), short-lived and used once; only its end opens a dashboard session, with a
fresh secret (no session fixation).
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from base64 import b32encode
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from axcenter.executors.pools import ConfigError
from axcenter.model.access import Principal
from axcenter.model.ids import new_id
from axcenter.service.access import require, user_target
from axcenter.service.audit import record
from axcenter.store import orm
from axcenter.store.accounts import hash_token, open_session
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = [
    "OidcConfig",
    "PasswordConfig",
    "PasswordResetOut",
    "Refused",
    "SignInConfig",
    "SingleSignOn",
    "begin_enrolment",
    "confirm_enrolment",
    "flow_user",
    "load_sign_in",
    "new_session",
    "password_step",
    "reset_link",
    "second_factor_step",
    "set_password",
]

#: how long a started sign-in waits for its next step
FLOW_LIFETIME = timedelta(minutes=10)
RECOVERY_CODES = 10
TOTP_STEP_S = 30
#: codes of the step before and after the current one are taken too (clocks drift)
TOTP_WINDOW = 1

_hasher = PasswordHasher()  # Argon2id, argon2-cffi's recommended parameters (RFC 9106)
#: verified when the name is unknown, so that a wrong name costs the same time
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


# -- configuration (the ``sign_in:`` section of the center's configuration file) -------


class PasswordConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    min_length: int = Field(default=12, ge=8, le=128)
    #: second-factor failures in a row that lock the account (an operator unlocks it)
    lock_after: int = Field(default=5, ge=1, le=100)
    #: how long an operator's reset link stays valid
    reset_link_hours: int = Field(default=24, ge=1, le=24 * 14)
    #: the name authenticator apps show beside the account
    issuer_name: str = Field(default="axcenter", min_length=1, max_length=60)


class OidcConfig(BaseModel):
    """An OpenID provider: the institution's single sign-on."""

    model_config = ConfigDict(extra="forbid")

    issuer: str = Field(pattern=r"^https?://\S+$", description="the provider's issuer URL")
    client_id: str = Field(min_length=1)
    client_secret: str = ""
    #: the environment variable holding the client secret (instead of the file)
    client_secret_env: str | None = None
    #: where the provider sends the browser back (default: this center's address as the
    #: browser reached it, /ui/login/sso/callback); register it with the provider
    redirect_uri: str | None = Field(default=None, pattern=r"^https?://\S+$")
    #: what the sign-in page's button says, e.g. "KISTI SSO"
    label: str = "SSO"
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    #: the ID token's claim that names the axcenter user at the first sign-on
    user_claim: str = "preferred_username"
    #: organization name -> the e-mail domains its people sign on from; when given, every
    #: sign-on needs a verified e-mail in one of its user's organization's domains
    email_domains: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("scopes")
    @classmethod
    def _openid(cls, scopes: list[str]) -> list[str]:
        if "openid" not in scopes:
            raise ValueError("scopes must include openid")
        return scopes

    @property
    def secret(self) -> str:
        if self.client_secret_env:
            return os.environ.get(self.client_secret_env, "")
        return self.client_secret


class SignInConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: the dashboard also takes an API token (as the CLI does)
    tokens: bool = True
    password: PasswordConfig = Field(default_factory=PasswordConfig)
    oidc: OidcConfig | None = None


def load_sign_in(section: dict[str, Any] | None, where: str) -> SignInConfig:
    """The ``sign_in:`` section validated; errors name the file and the field."""
    try:
        return SignInConfig.model_validate(section or {})
    except ValidationError as e:
        problems = [
            f"{where}: sign_in.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in e.errors()
        ]
        raise ConfigError("\n".join(problems)) from e


# -- outcomes ---------------------------------------------------------------------------


class Refused(Exception):
    """A sign-in step refused; ``reason`` is a message key of the dashboard's catalog
    (``login.*``), ``retry_after`` set when the failure limit was reached."""

    def __init__(self, reason: str, retry_after: int = 0, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.status = 429 if retry_after else status


@dataclass(frozen=True, slots=True)
class Step:
    """The next step of a password sign-in: ``kind`` second_factor or enrol, and the
    secret the browser keeps for it."""

    kind: Literal["second_factor", "enrol"]
    secret: str


# -- flows ------------------------------------------------------------------------------


def _new_flow(
    session: Session,
    kind: str,
    *,
    user_id: str | None = None,
    next_url: str = "/ui/",
    lifetime: timedelta = FLOW_LIFETIME,
    secret: str | None = None,
    nonce: str | None = None,
    code_verifier: str | None = None,
) -> str:
    secret = secret or secrets.token_urlsafe(32)
    now = utcnow()
    if user_id is not None:  # one flow of a kind per user: a new one replaces the old
        session.execute(
            delete(orm.SignInFlow).where(
                orm.SignInFlow.user_id == user_id, orm.SignInFlow.kind == kind
            )
        )
    session.execute(delete(orm.SignInFlow).where(orm.SignInFlow.expires_at < now))
    session.add(
        orm.SignInFlow(
            id=new_id("sif"),
            secret_hash=hash_token(secret),
            kind=kind,
            user_id=user_id,
            next_url=next_url,
            nonce=nonce,
            code_verifier=code_verifier,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    session.flush()
    return secret


def _flow(session: Session, secret: str | None, kind: str) -> orm.SignInFlow | None:
    if not secret or len(secret) > 200:
        return None
    return session.scalars(
        select(orm.SignInFlow).where(
            orm.SignInFlow.secret_hash == hash_token(secret),
            orm.SignInFlow.kind == kind,
            orm.SignInFlow.expires_at > utcnow(),
        )
    ).one_or_none()


def flow_user(center: Center, secret: str | None, kind: str) -> str | None:
    """The name of the user a flow under way is for (None: no such flow, or expired)."""
    with center.store.read() as session:
        flow = _flow(session, secret, kind)
        if flow is None or flow.user_id is None:
            return None
        user = session.get(orm.User, flow.user_id)
        return user.name if user is not None and user.active else None


def new_session(center: Center, session: Session, user_id: str) -> str:
    return open_session(session, user_id, timedelta(seconds=center.settings.web_session_lifetime_s))


# -- passwords and the second factor ----------------------------------------------------


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
            return Step("enrol", _new_flow(session, "enrol", user_id=user.id, next_url=next_url))
        return Step(
            "second_factor",
            _new_flow(session, "second_factor", user_id=user.id, next_url=next_url),
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
        flow = _flow(session, secret, "second_factor")
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
        flow = _flow(session, secret, "enrol")
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
        flow = _flow(session, secret, "enrol")
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
        secret = _new_flow(session, "reset", user_id=user.id, lifetime=lifetime)
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
        flow = _flow(session, secret, "reset")
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
        return Step("enrol", _new_flow(session, "enrol", user_id=user.id))


# -- single sign-on (OpenID Connect) ----------------------------------------------------


class SingleSignOn:
    """The center's OpenID provider: its metadata and keys (fetched once an hour), the
    authorization request and the code's exchange. Thread-safe."""

    METADATA_TTL_S = 3600.0

    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._jwks: dict[str, Any] | None = None
        self._fetched = 0.0

    def _client(self, redirect_uri: str) -> Any:
        from authlib.integrations.httpx_client import OAuth2Client  # noqa: PLC0415

        return OAuth2Client(
            client_id=self.config.client_id,
            client_secret=self.config.secret or None,
            scope=" ".join(self.config.scopes),
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=10,
        )

    def metadata(self, *, force: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
        import httpx  # noqa: PLC0415

        with self._lock:
            fresh = time.monotonic() - self._fetched < self.METADATA_TTL_S
            if self._metadata is None or self._jwks is None or force or not fresh:
                url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
                try:
                    metadata = httpx.get(url, timeout=10).raise_for_status().json()
                    jwks = httpx.get(metadata["jwks_uri"], timeout=10).raise_for_status().json()
                except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                    raise Refused("login.sso_failed", status=502) from exc
                # the issuer a provider names must be the one configured (OIDC Discovery 4.3)
                if str(metadata.get("issuer", "")).rstrip("/") != self.config.issuer.rstrip("/"):
                    raise Refused("login.sso_failed", status=502)
                self._metadata, self._jwks, self._fetched = metadata, jwks, time.monotonic()
            return self._metadata, self._jwks

    def start(self, center: Center, redirect_uri: str, next_url: str) -> tuple[str, str]:
        """(the provider's authorization URL, the state the browser must bring back)."""
        metadata, _ = self.metadata()
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(64)
        with center.store.write() as session:
            _new_flow(
                session,
                "sso",
                next_url=next_url,
                secret=state,
                nonce=nonce,
                code_verifier=verifier,
            )
        with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"],
                state=state,
                nonce=nonce,
                code_verifier=verifier,
            )
        return str(url), state

    def finish(
        self,
        center: Center,
        redirect_uri: str,
        *,
        state: str,
        browser_state: str | None,
        code: str,
    ) -> tuple[str, str]:
        """The provider's answer: (the new session's secret, where to go)."""
        if not browser_state or not hmac.compare_digest(state, browser_state):
            raise Refused("login.expired", status=403)  # another browser's answer
        with center.store.write() as session:
            flow = _flow(session, state, "sso")
            if flow is None:
                raise Refused("login.expired", status=403)
            nonce, verifier, next_url = flow.nonce, flow.code_verifier, flow.next_url
            session.delete(flow)  # a state is used once
        metadata, jwks = self.metadata()
        try:
            with self._client(redirect_uri) as client:
                token = client.fetch_token(
                    metadata["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=verifier,
                )
        except Exception as exc:
            raise Refused("login.sso_failed", status=502) from exc
        claims = self._id_token(token, nonce or "", metadata, jwks)
        with center.store.write() as session:
            user_id = self._link(session, claims)
            return new_session(center, session, user_id), next_url

    def _id_token(
        self, token: dict[str, Any], nonce: str, metadata: dict[str, Any], jwks: dict[str, Any]
    ) -> dict[str, Any]:
        from authlib.oidc.core import CodeIDToken  # noqa: PLC0415
        from joserfc import jwt  # noqa: PLC0415
        from joserfc.errors import JoseError  # noqa: PLC0415
        from joserfc.jwk import KeySet  # noqa: PLC0415
        from joserfc.jws import JWSRegistry  # noqa: PLC0415

        raw = token.get("id_token")
        if not isinstance(raw, str):
            raise Refused("login.sso_failed", status=502)
        algorithms = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        try:
            decoded = jwt.decode(
                raw,
                KeySet.import_key_set(jwks),  # type: ignore[arg-type]
                registry=JWSRegistry(algorithms=algorithms),
            )
            claims = CodeIDToken(
                decoded.claims,
                decoded.header,
                {
                    "iss": {"essential": True, "value": metadata["issuer"]},
                    "aud": {"essential": True, "value": self.config.client_id},
                    "nonce": {"essential": True, "value": nonce},
                },
                {
                    "nonce": nonce,
                    "client_id": self.config.client_id,
                    "access_token": token.get("access_token"),
                },
            )
            claims.validate(leeway=60)
        except (JoseError, ValueError) as exc:
            raise Refused("login.sso_failed", status=502) from exc
        return dict(claims)

    def _link(self, session: Session, claims: dict[str, Any]) -> str:
        """The axcenter user of an ID token's claims (linked now at the first sign-on)."""
        config = self.config
        issuer, subject = str(claims["iss"]), str(claims["sub"])
        email = claims.get("email") if claims.get("email_verified", True) is True else None
        linked = session.get(orm.ExternalIdentity, (issuer, subject))
        if linked is not None:
            user = session.get(orm.User, linked.user_id)
        else:
            name = claims.get(config.user_claim)
            user = (
                session.scalars(select(orm.User).where(orm.User.name == name)).one_or_none()
                if isinstance(name, str)
                else None
            )
            if (
                user is not None
                and session.scalars(
                    select(orm.ExternalIdentity).where(
                        orm.ExternalIdentity.user_id == user.id,
                        orm.ExternalIdentity.issuer == issuer,
                    )
                ).first()
            ):
                user = None  # already linked to another of the provider's people
        if user is None or not user.active:
            raise Refused("login.sso_unknown", status=403)
        if config.email_domains:
            org = session.get(orm.Organization, user.organization_id)
            allowed = {d.lower() for d in config.email_domains.get(org.name if org else "", [])}
            domain = email.rsplit("@", 1)[-1].lower() if isinstance(email, str) else ""
            if not domain or domain not in allowed:
                raise Refused("login.sso_domain", status=403)
        if linked is None:
            linked = orm.ExternalIdentity(
                issuer=issuer, subject=subject, user_id=user.id, linked_at=utcnow()
            )
            session.add(linked)
            record(
                session,
                None,
                "user.identity_linked",
                "user",
                user.id,
                {"issuer": issuer, "subject": subject},
            )
        linked.email = email if isinstance(email, str) else None
        linked.last_sign_in_at = utcnow()
        session.flush()
        return user.id
