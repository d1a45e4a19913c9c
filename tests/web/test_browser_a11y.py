"""Every dashboard page, as each role, in both languages, at a desktop's and at a phone's
width (each role sees one language at each width, alternating: ``VARIANTS``): axe-core
finds no serious or critical accessibility violation (at the desktop's width; the tasks'
suite runs it at the phone's too), and at 390 px nothing but a table's own scroller is
wider than the screen. A page a role may not see
is its error page, checked the same way. Each page is screenshotted
(``$AXC_TEST_OUTPUT/screenshots/a11y-ROLE-LANG-WIDTH-PAGE.png``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.conftest import Service
from tests.web.browsing import PHONE, api, check, fits, open_page, shoot

pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.e2e

ROLES = ("operator", "pm-kim", "reviewer-lee", "hanbit-admin", "hanbit-engineer")
PROGRAM = "AX Manufacturing Demonstration 2026"


@pytest.fixture(scope="module")
def pages(demo: Service, demo_tokens: dict[str, str]) -> Iterator[list[tuple[str, str]]]:
    """(name, path) of every page, with one object of each kind to show."""
    with api(demo, demo_tokens["hanbit-engineer"]) as hanbit:
        job = hanbit.post(
            "/jobs", json={"command": ["sleep", "600"], "gpus_per_node": 1, "name": "a11y"}
        ).json()["id"]
    with api(demo, demo_tokens["operator"]) as op:
        grant = op.get("/allocations", params={"project": "hanbit-adas"}).json()["items"][0]
        request = grant["request_id"]
    yield [
        ("cluster", "/ui/"),
        ("queue", "/ui/queue"),
        ("jobs", "/ui/jobs"),
        ("job", f"/ui/jobs/{job}"),
        ("submit", "/ui/jobs/new"),
        ("projects", "/ui/projects"),
        ("project", "/ui/projects/hanbit-adas"),
        ("requests", "/ui/requests"),
        ("request", f"/ui/requests/{request}"),
        ("file-request", "/ui/requests/new"),
        ("programs", "/ui/programs"),
        ("program", f"/ui/programs/{quote(PROGRAM)}"),
        ("grant", f"/ui/grants/{grant['id']}"),
        ("notifications", "/ui/notifications"),
        ("mail-settings", "/ui/notifications/settings"),
        ("usage", "/ui/usage?period=week"),
        ("missing", "/ui/jobs/job_00000000000000000000"),
    ]
    with api(demo, demo_tokens["hanbit-engineer"]) as hanbit:
        hanbit.post(f"/jobs/{job}/cancel")


#: each role in each language, one at a desktop's width (axe-core) and the other at a
#: phone's (the layout), alternating by role, so every page is seen in both languages at
#: both widths and axe-core runs in both languages, at half the cost of every product
VARIANTS = [
    (role, lang, width)
    for i, role in enumerate(ROLES)
    for lang, width in ((("en", "desktop"), ("ko", "phone")), (("ko", "desktop"), ("en", "phone")))[
        i % 2
    ]
]


@pytest.mark.parametrize(("role", "lang", "width"), VARIANTS)
def test_every_page_is_accessible(
    chromium: Any,
    demo: Service,
    demo_tokens: dict[str, str],
    pages: list[tuple[str, str]],
    role: str,
    lang: str,
    width: str,
) -> None:
    page = open_page(chromium, demo, demo_tokens[role], lang, width)
    try:
        for name, path in pages:
            response = page.goto(path)
            assert response is not None and response.status in (200, 403, 404), path
            if response.status != 200:
                assert page.locator("[data-testid=error]").count() == 1, path
            assert page.get_attribute("html", "lang") == lang
            if width == "phone":
                page.wait_for_load_state("networkidle")
                fits(page, PHONE["width"])
                shoot(page, f"a11y-{role}-{lang}-{width}-{name}")
            else:
                check(page, f"a11y-{role}-{lang}-{width}-{name}")
    finally:
        page.context.close()
