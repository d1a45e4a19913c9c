"""Signing in as people do at a public institution: a password with a second factor
(TOTP), an operator's reset link, and single sign-on against a real OpenID provider run
here (``oidc-provider-mock``, authlib's server underneath) through the whole
authorization code flow. And what a hostile visitor tries: wrong and replayed codes,
guessing, a planted session, a return URL elsewhere, another tenant's account."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from axcenter.api.app import create_app
from axcenter.executors.pools import ConfigError
from axcenter.service.center import Center
from axcenter.service.signin import load_sign_in
from axcenter.service.sso import SingleSignOn
from axcenter.store import orm
from axcenter.web.session import SESSION_COOKIE
from tests.api.conftest import Tenants

PASSWORD = "correct horse battery staple"


def csrf_of(text: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', text)
    assert found, text[:500]
    return found.group(1)


def browser(center: Center) -> TestClient:
    return TestClient(create_app(center), follow_redirects=False)


def reset_link(center: Center, tenants: Tenants, user: str) -> str:
    with TestClient(create_app(center)) as api:
        r = api.post(f"/api/v1/users/{user}/password-reset", headers=tenants.operator.headers)
        assert r.status_code == 201, r.text
        link = r.json()["link"]
    assert link.startswith("http://testserver/ui/login/reset?code=")
    return link.removeprefix("http://testserver")


def enrol(center: Center, tenants: Tenants, user: str) -> tuple[pyotp.TOTP, list[str]]:
    """The whole first sign-in after an operator's reset: the link, a new password, the
    QR code's key, the first code; (the user's authenticator, the recovery codes)."""
    b = browser(center)
    form = b.get(reset_link(center, tenants, user))
    code = re.search(r'name="code" value="([^"]+)"', form.text)
    assert code
    r = b.post(
        "/ui/login/reset",
        data={
            "code": code.group(1),
            "password": PASSWORD,
            "again": PASSWORD,
            "csrf": csrf_of(form.text),
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/ui/login/enrol", r.text
    page = b.get("/ui/login/enrol")
    assert page.status_code == 200
    assert 'src="data:image/svg+xml' in page.text  # the QR code
    key = re.search(r'data-testid="totp-key"[^>]*>([A-Z2-7]+)<', page.text)
    assert key
    totp = pyotp.TOTP(key.group(1))
    r = b.post("/ui/login/enrol", data={"code": totp.now(), "csrf": csrf_of(page.text)})
    assert r.status_code == 200 and SESSION_COOKIE in r.cookies, r.text
    codes = re.findall(r"<code>([A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4})</code>", r.text)
    assert len(codes) == 10
    return totp, codes


def password_step(b: TestClient, name: str, password: str, next_url: str = "/ui/") -> Any:
    form = b.get("/ui/login")
    return b.post(
        "/ui/login/password",
        data={"name": name, "password": password, "next": next_url, "csrf": csrf_of(form.text)},
    )


def code_step(b: TestClient, code: str) -> Any:
    form = b.get("/ui/login/code")
    assert form.status_code == 200, form.text
    return b.post("/ui/login/code", data={"code": code, "csrf": csrf_of(form.text)})


def later_code(totp: pyotp.TOTP) -> str:
    """A code of the next time step: within the accepted window, and newer than any
    code taken so far (a code is taken once)."""
    return totp.generate_otp(int(time.time()) // 30 + 1)


def test_password_and_second_factor_sign_in(center: Center, tenants: Tenants) -> None:
    totp, codes = enrol(center, tenants, "alice")
    b = browser(center)
    r = password_step(b, "alice", PASSWORD, "/ui/jobs")
    assert r.status_code == 303 and r.headers["location"] == "/ui/login/code"
    assert SESSION_COOKIE not in r.cookies  # no session before the second factor
    assert b.get("/ui/jobs").status_code == 303
    r = code_step(b, later_code(totp))
    assert r.status_code == 303 and r.headers["location"] == "/ui/jobs", r.text
    page = b.get("/ui/jobs")
    assert page.status_code == 200 and 'data-testid="whoami">alice<' in page.text
    # a recovery code stands in for the phone, once
    other = browser(center)
    assert password_step(other, "alice", PASSWORD).status_code == 303
    assert code_step(other, codes[0].lower()).status_code == 303
    again = browser(center)
    assert password_step(again, "alice", PASSWORD).status_code == 303
    refused = code_step(again, codes[0])
    assert refused.status_code == 401 and "already used" in refused.text
    # the password is stored as an Argon2id hash, never as itself
    with center.store.read() as s:
        stored = s.scalars(select(orm.SignInCredential.password_hash)).one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_wrong_and_replayed_codes_are_refused(center: Center, tenants: Tenants) -> None:
    totp, _ = enrol(center, tenants, "alice")
    b = browser(center)
    assert password_step(b, "alice", PASSWORD).status_code == 303
    wrong = f"{(int(totp.now()) + 1) % 1_000_000:06d}"
    r = code_step(b, wrong)
    assert r.status_code == 401 and SESSION_COOKIE not in r.cookies
    code = later_code(totp)
    assert code_step(b, code).status_code == 303
    # the same code again, seconds later, from another browser that knows the password
    thief = browser(center)
    assert password_step(thief, "alice", PASSWORD).status_code == 303
    r = code_step(thief, code)
    assert r.status_code == 401 and SESSION_COOKIE not in r.cookies
    # and a code of a step far from now
    r = code_step(thief, totp.at(time.time() + 600))
    assert r.status_code == 401


def test_wrong_passwords_are_rate_limited(center: Center, tenants: Tenants) -> None:
    enrol(center, tenants, "alice")
    b = browser(center)
    for _ in range(center.auth_failures.per_minute):
        r = password_step(b, "alice", "not the password")
        assert r.status_code == 401
        assert "/ui/login/code" not in r.headers.get("location", "")
    r = password_step(b, "alice", PASSWORD)  # the right one, too late
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    # unknown names fail the same way, without saying the name is unknown
    other = browser(center)
    r = password_step(other, "nobody-here", PASSWORD)
    assert r.status_code in (401, 429) and "nobody-here" not in r.text


def test_repeated_wrong_codes_lock_the_account_until_an_operator_resets_it(
    center: Center, tenants: Tenants
) -> None:
    totp, codes = enrol(center, tenants, "alice")
    b = browser(center)
    assert password_step(b, "alice", PASSWORD).status_code == 303
    limit = center.sign_in.password.lock_after
    for n in range(limit):
        r = code_step(b, f"{n:06d}") if n < limit - 1 else None
        if r is not None:
            assert r.status_code == 401, n
    form = b.get("/ui/login/code")
    r = b.post("/ui/login/code", data={"code": "999999", "csrf": csrf_of(form.text)})
    assert r.status_code == 403 and "locked" in r.text
    # locked: the right password and a right code do not open it
    b = browser(center)
    r = password_step(b, "alice", PASSWORD)
    assert r.status_code == 403 and "locked" in r.text
    with center.store.read() as s:
        actions = s.scalars(select(orm.AuditEntry.action)).all()
    assert "user.locked" in actions
    # the operator's reset unlocks it: a new password and a new second factor
    new_totp, _ = enrol(center, tenants, "alice")
    assert new_totp.secret != totp.secret
    b = browser(center)
    assert password_step(b, "alice", PASSWORD).status_code == 303
    assert code_step(b, codes[1]).status_code == 401  # the old recovery codes are gone
    assert code_step(b, later_code(new_totp)).status_code == 303


def test_a_reset_signs_the_user_out_and_its_link_works_once(
    center: Center, tenants: Tenants
) -> None:
    totp, _ = enrol(center, tenants, "alice")
    b = browser(center)
    password_step(b, "alice", PASSWORD)
    assert code_step(b, later_code(totp)).status_code == 303
    assert b.get("/ui/jobs").status_code == 200
    link = reset_link(center, tenants, "alice")
    assert b.get("/ui/jobs").status_code == 303  # signed out by the reset
    assert password_step(browser(center), "alice", PASSWORD).status_code == 401
    used = browser(center)
    form = used.get(link)
    code = parse_qs(urlsplit(link).query)["code"][0]
    data = {"code": code, "password": PASSWORD, "again": PASSWORD, "csrf": csrf_of(form.text)}
    assert used.post("/ui/login/reset", data=data).status_code == 303
    again = browser(center)
    form = again.get(link)
    data["csrf"] = csrf_of(form.text)
    r = again.post("/ui/login/reset", data=data)
    assert r.status_code == 403 and "used already" in r.text
    # a short password, or one holding the name, is refused with the reason
    short = browser(center)
    link = reset_link(center, tenants, "bob")
    shown = short.get(link).text
    code = parse_qs(urlsplit(link).query)["code"][0]
    for bad, why in (("short", "too short"), ("bob-is-my-password", "user name")):
        data = {"code": code, "password": bad, "again": bad, "csrf": csrf_of(shown)}
        r = short.post("/ui/login/reset", data=data)
        assert r.status_code == 400 and why in r.text
        shown = r.text


def test_only_operators_reset_passwords(center: Center, tenants: Tenants) -> None:
    with TestClient(create_app(center)) as api:
        r = api.post("/api/v1/users/alice/password-reset", headers=tenants.acme_admin.headers)
        assert r.status_code == 403
        r = api.post("/api/v1/users/bob/password-reset", headers=tenants.alice.headers)
        assert r.status_code == 404  # another tenant's user: not even its existence


def test_a_planted_session_is_not_taken_over(center: Center, tenants: Tenants) -> None:
    """Session fixation: an attacker signs in, plants the cookie in the victim's browser;
    the victim's sign-in gets a new session and the planted one dies."""
    attacker = browser(center)
    form = attacker.get("/ui/login")
    attacker.post("/ui/login", data={"token": tenants.bob.token, "csrf": csrf_of(form.text)})
    planted = attacker.cookies[SESSION_COOKIE]
    victim = browser(center)
    victim.cookies.set(SESSION_COOKIE, planted)
    form = victim.get("/ui/login")
    r = victim.post("/ui/login", data={"token": tenants.alice.token, "csrf": csrf_of(form.text)})
    assert r.status_code == 303
    fresh = r.cookies[SESSION_COOKIE]
    assert fresh != planted
    assert attacker.get("/ui/jobs").status_code == 303  # the planted session is revoked
    victim.cookies.set(SESSION_COOKIE, fresh)
    assert 'data-testid="whoami">alice<' in victim.get("/ui/jobs").text


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example/",
        "/\t/evil.example/",
        "/\n/evil.example/",
        "javascript:alert(1)",
        "/ui/../\\\\evil.example",
    ],
)
def test_the_return_url_stays_on_this_site(center: Center, tenants: Tenants, target: str) -> None:
    b = browser(center)
    form = b.get("/ui/login")
    r = b.post(
        "/ui/login",
        data={"token": tenants.alice.token, "next": target, "csrf": csrf_of(form.text)},
    )
    assert r.status_code == 303 and r.headers["location"] == "/ui/"
    assert b.get("/ui/lang/en", params={"next": target}).headers["location"] == "/ui/"
    form = b.get("/ui/login", params={"next": target})
    assert "evil.example" not in html.unescape(form.text)


def test_a_path_on_this_site_is_where_sign_in_returns(center: Center, tenants: Tenants) -> None:
    b = browser(center)
    form = b.get("/ui/login", params={"next": "/ui/jobs?state=running"})
    r = b.post(
        "/ui/login",
        data={
            "token": tenants.alice.token,
            "next": "/ui/jobs?state=running",
            "csrf": csrf_of(form.text),
        },
    )
    assert r.headers["location"] == "/ui/jobs?state=running"


def test_the_sign_in_section_is_validated(tmp_path: Any) -> None:
    config = load_sign_in(
        {"oidc": {"issuer": "https://sso.example.ac.kr", "client_id": "axc"}}, "center.yaml"
    )
    assert config.oidc is not None and config.oidc.user_claim == "preferred_username"
    with pytest.raises(ConfigError, match=r"center.yaml: sign_in.oidc.scopes"):
        load_sign_in(
            {"oidc": {"issuer": "https://x", "client_id": "a", "scopes": ["email"]}},
            "center.yaml",
        )
    with pytest.raises(ConfigError, match=r"sign_in.passwords"):
        load_sign_in({"passwords": True}, "center.yaml")


# -- single sign-on against a real OpenID provider ---------------------------------------


class Pkce:
    """RFC 7636 enforced in front of the provider: oidc-provider-mock 0.3 (the last for
    Python 3.11) takes ``code_challenge`` but does not check it. A code is bound to the
    challenge of its authorization request; its exchange must bring the verifier."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.challenges: dict[str, str] = {}
        self.refused = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ["PATH_INFO"]
        if path == "/oauth2/authorize" and environ["REQUEST_METHOD"] == "POST":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            challenge = query.get("code_challenge", [""])[0]
            if query.get("code_challenge_method", [""])[0] != "S256" or not challenge:
                start_response("400 Bad Request", [("Content-Type", "text/plain")])
                return [b"PKCE (S256) required"]

            def noting(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
                for name, value in headers:
                    if name.lower() == "location":
                        code = parse_qs(urlsplit(value).query).get("code", [""])[0]
                        if code:
                            self.challenges[code] = challenge
                return start_response(status, headers, *rest)

            return self.app(environ, noting)
        if path == "/oauth2/token":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            form = parse_qs(body.decode())
            code = form.get("code", [""])[0]
            verifier = form.get("code_verifier", [""])[0].encode()
            expected = self.challenges.pop(code, None)
            made = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
            if form.get("grant_type") == ["authorization_code"] and (
                expected is None or made.decode() != expected
            ):
                self.refused += 1
                start_response("400 Bad Request", [("Content-Type", "application/json")])
                return [b'{"error": "invalid_grant", "error_description": "PKCE"}']
            environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)


@dataclass
class Provider:
    issuer: str
    pkce: Pkce

    def set_user(self, sub: str, **claims: object) -> None:
        httpx.put(f"{self.issuer}/users/{sub}", json=claims).raise_for_status()

    def sign_on(self, authorize_url: str, sub: str) -> str:
        """The person signs on at the provider; the redirect back to the center."""
        assert authorize_url.startswith(self.issuer + "/oauth2/authorize?")
        query = parse_qs(urlsplit(authorize_url).query)
        assert query["code_challenge_method"] == ["S256"] and query["nonce"][0]
        r = httpx.post(authorize_url, data={"sub": sub})
        assert r.status_code == 302, r.text
        return str(r.headers["location"])


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    import oidc_provider_mock
    import werkzeug.serving

    pkce = Pkce(oidc_provider_mock.app(require_nonce=True))
    server = werkzeug.serving.make_server("127.0.0.1", 0, pkce, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Provider(f"http://127.0.0.1:{server.server_port}", pkce)
    server.shutdown()
    thread.join()


@pytest.fixture
def sso(center: Center, tenants: Tenants, provider: Provider) -> Center:
    center.sign_in = load_sign_in(
        {
            "oidc": {
                "issuer": provider.issuer,
                "client_id": "axcenter",
                "client_secret": "s3cret",
                "label": "KISTI SSO",
                "email_domains": {"Acme": ["acme.example"], "Bolt": ["bolt.example"]},
            }
        },
        "center.yaml",
    )
    assert center.sign_in.oidc is not None
    center.sso = SingleSignOn(center.sign_in.oidc)
    return center


def start_sso(b: TestClient, next_url: str = "/ui/") -> str:
    page = b.get("/ui/login")
    assert "Sign in with KISTI SSO" in page.text
    r = b.get("/ui/login/sso", params={"next": next_url})
    assert r.status_code == 303, r.text
    return str(r.headers["location"])


def back_at_center(b: TestClient, location: str) -> Any:
    assert location.startswith("http://testserver/ui/login/sso/callback?")
    return b.get(location.removeprefix("http://testserver"))


def test_single_sign_on_links_the_person_to_the_user(sso: Center, provider: Provider) -> None:
    provider.set_user(
        "0f3a-alice", preferred_username="alice", email="alice@acme.example", email_verified=True
    )
    b = browser(sso)
    to_provider = start_sso(b, "/ui/projects")
    r = back_at_center(b, provider.sign_on(to_provider, "0f3a-alice"))
    assert r.status_code == 200 and SESSION_COOKIE in r.cookies, r.text
    # a page that goes on by itself: the Strict session cookie follows a same-site step
    assert 'http-equiv="refresh" content="0;url=/ui/projects"' in r.text
    assert 'data-testid="whoami">alice<' in b.get("/ui/projects").text
    with sso.store.read() as s:
        linked = s.scalars(select(orm.ExternalIdentity)).one()
    assert (linked.issuer, linked.subject, linked.email) == (
        provider.issuer,
        "0f3a-alice",
        "alice@acme.example",
    )
    # later sign-ons go by the provider's subject, whatever the name claim says now
    provider.set_user(
        "0f3a-alice", preferred_username="renamed", email="alice@acme.example", email_verified=True
    )
    b = browser(sso)
    r = back_at_center(b, provider.sign_on(start_sso(b), "0f3a-alice"))
    assert r.status_code == 200 and 'data-testid="whoami">alice<' in b.get("/ui/").text


def test_single_sign_on_refuses_unknown_people_and_other_tenants(
    sso: Center, provider: Provider
) -> None:
    provider.set_user("stranger", preferred_username="stranger", email="s@acme.example")
    b = browser(sso)
    r = back_at_center(b, provider.sign_on(start_sso(b), "stranger"))
    assert r.status_code == 403 and "No account here" in r.text
    assert SESSION_COOKIE not in r.cookies
    # a Bolt employee whose provider calls them "alice" does not get Acme's alice
    provider.set_user(
        "bolt-7", preferred_username="alice", email="alice@bolt.example", email_verified=True
    )
    b = browser(sso)
    r = back_at_center(b, provider.sign_on(start_sso(b), "bolt-7"))
    assert r.status_code == 403 and "not one of your organization" in r.text
    # nor does an unverified address of the right domain
    provider.set_user(
        "acme-8", preferred_username="alice", email="alice@acme.example", email_verified=False
    )
    b = browser(sso)
    r = back_at_center(b, provider.sign_on(start_sso(b), "acme-8"))
    assert r.status_code == 403
    with sso.store.read() as s:
        assert s.scalars(select(orm.ExternalIdentity)).all() == []
    # once alice is linked, a second person claiming her name is refused
    provider.set_user(
        "acme-1", preferred_username="alice", email="alice@acme.example", email_verified=True
    )
    b = browser(sso)
    assert back_at_center(b, provider.sign_on(start_sso(b), "acme-1")).status_code == 200
    provider.set_user(
        "acme-2", preferred_username="alice", email="a2@acme.example", email_verified=True
    )
    b = browser(sso)
    r = back_at_center(b, provider.sign_on(start_sso(b), "acme-2"))
    assert r.status_code == 403 and SESSION_COOKIE not in r.cookies


def test_single_sign_on_checks_state_nonce_and_pkce(sso: Center, provider: Provider) -> None:
    provider.set_user(
        "acme-9", preferred_username="alice", email="alice@acme.example", email_verified=True
    )
    # state: the answer must come back to the browser that asked, and only once
    b = browser(sso)
    back = provider.sign_on(start_sso(b), "acme-9")
    other = browser(sso)
    r = back_at_center(other, back)
    assert r.status_code == 403 and SESSION_COOKIE not in r.cookies
    assert back_at_center(b, back).status_code == 200
    again = back_at_center(b, back)
    assert again.status_code == 403 and SESSION_COOKIE not in again.cookies
    # nonce: an ID token minted for another authorization request is refused
    b = browser(sso)
    to_provider = start_sso(b)
    with sso.store.write() as s:
        s.execute(update(orm.SignInFlow).values(nonce="another-request"))
    r = back_at_center(b, provider.sign_on(to_provider, "acme-9"))
    assert r.status_code == 502 and SESSION_COOKIE not in r.cookies
    # PKCE: a code exchanged without the verifier of its request is refused by the provider
    b = browser(sso)
    to_provider = start_sso(b)
    with sso.store.write() as s:
        s.execute(update(orm.SignInFlow).values(code_verifier="x" * 64))
    refused = provider.pkce.refused
    r = back_at_center(b, provider.sign_on(to_provider, "acme-9"))
    assert r.status_code == 502 and SESSION_COOKIE not in r.cookies
    assert provider.pkce.refused == refused + 1
    # the provider said no (the person cancelled)
    b = browser(sso)
    start_sso(b)
    r = b.get("/ui/login/sso/callback", params={"error": "access_denied", "state": "x"})
    assert r.status_code == 403 and "cancelled" in r.text


def test_a_provider_that_is_away_is_said_so(center: Center) -> None:
    center.sign_in = load_sign_in(
        {"oidc": {"issuer": "http://127.0.0.1:9", "client_id": "axcenter"}}, "center.yaml"
    )
    assert center.sign_in.oidc is not None
    center.sso = SingleSignOn(center.sign_in.oidc)
    r = browser(center).get("/ui/login/sso")
    assert r.status_code == 502 and "did not answer" in r.text
