"""Signing in, in Chromium, in both languages and at both widths: single sign-on through
the institution's OpenID provider (here a real one run by the test) and back, and a
password with a second factor from an operator's reset link to the recovery codes. Each
step is screenshotted and checked by axe-core (``tests/web/browsing.py``)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pyotp
import pytest

from tests.e2e.conftest import Service
from tests.web.browsing import api, check, new_context, shoot

pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.e2e

PASSWORD = "a long passphrase for the demo"
LANGS_WIDTHS = [("en", "desktop"), ("ko", "phone"), ("ko", "desktop"), ("en", "phone")]


@pytest.mark.parametrize(("lang", "width"), LANGS_WIDTHS)
def test_single_sign_on_in_a_browser(
    chromium: Any, demo: Service, provider_url: str, lang: str, width: str
) -> None:
    httpx.put(
        f"{provider_url}/users/hanbit-7",
        json={
            "preferred_username": "hanbit-engineer",
            "email": "engineer@hanbit.example",
            "email_verified": True,
        },
    ).raise_for_status()
    context = new_context(chromium, demo, lang, width)
    page = context.new_page()
    step = f"signin-sso-{lang}-{width}"
    try:
        page.goto("/ui/jobs")  # no session: the sign-in page, then back here
        check(page, f"{step}-1-sign-in")
        page.click("[data-testid=sso]")
        page.wait_for_url(re.compile(re.escape(provider_url) + r"/oauth2/authorize\?.*"))
        shoot(page, f"{step}-2-provider")
        page.fill("input[name=sub]", "hanbit-7")
        page.click("button:has-text('Authorize')")
        # back at the center, the page goes on by itself to where the person was going
        page.wait_for_url(re.compile(r".*/ui/jobs$"))
        assert page.inner_text("[data-testid=whoami]") == "hanbit-engineer"
        check(page, f"{step}-3-signed-in")
        page.click("form[action='/ui/logout'] button")
        page.wait_for_url(re.compile(r".*/ui/login$"))
        assert page.goto("/ui/jobs") is not None and "/ui/login" in page.url
    finally:
        context.close()


@pytest.mark.parametrize(("lang", "width"), LANGS_WIDTHS)
def test_password_and_second_factor_in_a_browser(
    chromium: Any, demo: Service, demo_tokens: dict[str, str], lang: str, width: str
) -> None:
    """An operator's reset link, a new password, the QR code's key into an authenticator,
    the recovery codes; then signing in again with the password and a code."""
    with api(demo, demo_tokens["operator"]) as op:
        reset = op.post("/users/daeil-engineer/password-reset")
        assert reset.status_code == 201, reset.text
    link = reset.json()["link"]
    context = new_context(chromium, demo, lang, width)
    page = context.new_page()
    step = f"signin-password-{lang}-{width}"
    try:
        page.goto(link)
        check(page, f"{step}-1-new-password")
        page.fill("#password", PASSWORD)
        page.fill("#again", PASSWORD)
        page.click("form[action='/ui/login/reset'] button")
        page.wait_for_url(re.compile(r".*/ui/login/enrol$"))
        check(page, f"{step}-2-enrol")
        totp = pyotp.TOTP(page.inner_text("[data-testid=totp-key]"))
        page.fill("#code", totp.now())
        page.click("form[action='/ui/login/enrol'] button")
        codes = page.locator("[data-testid=recovery-codes] code").all_inner_texts()
        assert len(codes) == 10
        check(page, f"{step}-3-recovery-codes")
        page.click("[data-testid=continue]")
        page.wait_for_url(re.compile(r".*/ui/$"))
        assert page.inner_text("[data-testid=whoami]") == "daeil-engineer"
        page.click("form[action='/ui/logout'] button")
        page.wait_for_url(re.compile(r".*/ui/login$"))
        page.fill("#name", "daeil-engineer")
        page.fill("#password", PASSWORD)
        page.click("form[action='/ui/login/password'] button")
        page.wait_for_url(re.compile(r".*/ui/login/code$"))
        page.fill("#code", "000000")  # wrong: said so, in the page's language
        page.click("form[action='/ui/login/code'] button")
        assert page.locator("[data-testid=login-error]").is_visible()
        check(page, f"{step}-4-wrong-code")
        page.fill("#code", codes[0])  # the phone is elsewhere: a recovery code, once
        page.click("form[action='/ui/login/code'] button")
        page.wait_for_url(re.compile(r".*/ui/$"))
        assert page.inner_text("[data-testid=whoami]") == "daeil-engineer"
    finally:
        context.close()
