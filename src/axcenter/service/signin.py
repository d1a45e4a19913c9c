"""Signing in to the dashboard: what the center offers, and the sign-ins under way.

API tokens stay the credential of the CLI and of scripts (``store.accounts``); people
sign in to the dashboard in one of the ways the center's configuration file offers
(``sign_in:``, ``SignInConfig``; docs/security.md, "Signing in"): single sign-on with
the institution's OpenID provider (``service.sso``), a password with a second factor
(``service.passwords``), an API token.

Each sign-in under way (``orm.SignInFlow``: ``new_flow``, ``find_flow``) is a row whose
secret the browser holds (a cookie), short-lived and used once; only its end opens a
dashboard session (``new_session``), with a fresh secret (no session fixation).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from axcenter.executors.pools import ConfigError
from axcenter.model.ids import new_id
from axcenter.store import orm
from axcenter.store.accounts import hash_token, open_session
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = [
    "FLOW_LIFETIME",
    "OidcConfig",
    "PasswordConfig",
    "Refused",
    "SignInConfig",
    "Step",
    "find_flow",
    "flow_user",
    "load_sign_in",
    "new_flow",
    "new_session",
]

#: how long a started sign-in waits for its next step
FLOW_LIFETIME = timedelta(minutes=10)


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


def new_flow(
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


def find_flow(session: Session, secret: str | None, kind: str) -> orm.SignInFlow | None:
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
        flow = find_flow(session, secret, kind)
        if flow is None or flow.user_id is None:
            return None
        user = session.get(orm.User, flow.user_id)
        return user.name if user is not None and user.active else None


def new_session(center: Center, session: Session, user_id: str) -> str:
    return open_session(session, user_id, timedelta(seconds=center.settings.web_session_lifetime_s))
