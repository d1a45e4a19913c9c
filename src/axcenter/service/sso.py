"""Single sign-on with the institution's OpenID provider (OpenID Connect, authlib).

The authorization code flow with PKCE (S256), a random ``state`` bound to the browser by
a cookie (``web.pages.auth``) and a ``nonce`` checked in the ID token, whose signature
(the provider's published keys), issuer, audience and expiry are checked. The provider's
stable ``sub`` is linked to an axcenter user at the first sign-on, by the claim
``user_claim`` naming an existing user, and only when the e-mail's domain is one the
user's organization allows (``email_domains``): accounts are made by operators, never by
signing in. Later sign-ons go by ``sub``.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from axcenter.service.audit import record
from axcenter.service.signin import OidcConfig, Refused, find_flow, new_flow, new_session
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = ["SingleSignOn"]


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
            new_flow(
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
            flow = find_flow(session, state, "sso")
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
