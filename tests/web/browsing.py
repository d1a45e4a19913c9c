"""What the browser suites share: signing a Chromium context in, the accessibility check
(axe-core), the phone-width check, and where screenshots go (``$AXC_TEST_OUTPUT``,
default ``out/test-output``, under ``screenshots/``)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import Service

OUT = Path(os.environ.get("AXC_TEST_OUTPUT", "out/test-output")) / "screenshots"
WAIT_MS = 30_000
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
WIDTHS = {"desktop": DESKTOP, "phone": PHONE}
LOCALES = {"en": "en-US", "ko": "ko-KR"}
#: what fails the accessibility check (axe-core's impacts: minor, moderate, serious, critical)
FAILING_IMPACTS = frozenset({"serious", "critical"})

#: the innermost elements reaching past the screen (to say what overflows)
WIDER_THAN_SCREEN = """(w) => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > w + 1
    && ![...e.children].some(c => c.getBoundingClientRect().right > w + 1))
  .slice(0, 5).map(e => e.tagName + '.' + e.className + ': ' + e.textContent.slice(0, 40))"""


def api(center: Service, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{center.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def new_context(chromium: Any, center: Service, lang: str = "en", width: str = "desktop") -> Any:
    phone = width == "phone"
    return chromium.new_context(
        locale=LOCALES[lang],
        viewport=WIDTHS[width],
        base_url=center.url,
        is_mobile=phone,
        has_touch=phone,
    )


def open_page(
    chromium: Any, center: Service, token: str, lang: str = "en", width: str = "desktop"
) -> Any:
    """A page of a new browser context signed in with ``token`` (the cluster page)."""
    page = new_context(chromium, center, lang, width).new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto("/ui/login")
    page.fill("#token", token)
    page.click("form[action='/ui/login'] button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/$"))
    return page


def shoot(page: Any, name: str) -> None:
    """A screenshot of the whole page, for a person to look at."""
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)


def accessible(page: Any, name: str) -> None:
    """Fail on any serious or critical accessibility violation axe-core finds (all of
    them, the minor ones too, are written beside the screenshots)."""
    from axe_playwright_python.sync_playwright import Axe

    result = Axe().run(page)
    violations = result.response.get("violations", [])
    OUT.mkdir(parents=True, exist_ok=True)
    if violations:
        (OUT / f"{name}.axe.json").write_text(json.dumps(violations, indent=1))
    failing = [v for v in violations if v.get("impact") in FAILING_IMPACTS]
    assert not failing, f"{name}: {page.url}\n{result.generate_report()}"


def check(page: Any, name: str) -> None:
    """Screenshot the page, check it with axe-core and, at a phone's width, that nothing
    but a table's own scroller is wider than the screen."""
    page.wait_for_load_state("networkidle")
    shoot(page, name)
    accessible(page, name)
    width = page.viewport_size["width"]
    if width <= PHONE["width"]:
        fits(page, width)


def fits(page: Any, width: int) -> None:
    scroll = page.evaluate("document.documentElement.scrollWidth")
    wide = page.evaluate(WIDER_THAN_SCREEN, width) if scroll > width else []
    assert scroll <= width, (page.url, scroll, wide)
    for canvas in page.locator("canvas").all():
        box = canvas.bounding_box()
        assert box is None or box["x"] + box["width"] <= width + 1, page.url
