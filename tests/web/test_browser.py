"""The dashboard in a real browser: Debian's Chromium driven by Playwright against a real
``axc up --demo`` process (``tests/web/conftest.py``): the keyboard, the charts, what a
member may see, live regions. Every page as every role is checked in
``test_browser_a11y.py``, the tasks of issue 21 in ``test_browser_tasks.py``, signing in
in ``test_browser_signin.py``.

``scripts/test`` installs Chromium (``apt-get install chromium fonts-noto-cjk``); without
it these tests are skipped with that instruction.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.e2e.conftest import Service
from tests.web.browsing import WAIT_MS, api, check, open_page

playwright = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def center(demo: Service) -> Service:
    return demo


@pytest.fixture(scope="module")
def tokens(demo_tokens: dict[str, str]) -> dict[str, str]:
    return demo_tokens


def test_keyboard_sign_in_and_the_charts(
    chromium: Any, center: Service, tokens: dict[str, str]
) -> None:
    context = chromium.new_context(locale="en-US", base_url=center.url)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto("/ui/jobs")  # no session: the sign-in page, then back here
    assert "/ui/login" in page.url
    check(page, "en-01-login")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.focus("#token")
    page.keyboard.type(tokens["operator"])
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/ui/jobs$"))
    assert page.inner_text("[data-testid=whoami]") == "operator"

    page.goto("/ui/")
    page.wait_for_selector("canvas[data-drawn=true]", state="attached")
    assert page.locator("canvas[data-drawn=true]").count() == 3  # utilization, queue, waits
    page.goto("/ui/programs/AX%20Manufacturing%20Demonstration%202026")
    assert page.locator("canvas[data-drawn=true]").count() == 5  # burn-down + 4 breakdowns
    # keyboard: the skip link jumps to the content
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#content"
    context.close()


def test_a_member_sees_only_her_company(
    chromium: Any, center: Service, tokens: dict[str, str]
) -> None:
    with api(center, tokens["daeil-engineer"]) as daeil:
        other = daeil.post("/jobs", json={"command": ["sleep", "30"], "gpus_per_node": 1}).json()
    page = open_page(chromium, center, tokens["hanbit-engineer"])
    try:
        page.goto("/ui/projects")
        names = page.locator("[data-testid=projects] tbody th").all_inner_texts()
        assert names == ["hanbit-adas"]
        missing = page.goto(f"/ui/jobs/{other['id']}")
        assert missing is not None and missing.status == 404
        assert other["id"] in page.inner_text("[data-testid=error]")
        page.goto("/ui/jobs")
        assert other["id"] not in page.content()
        page.goto("/ui/")
        devices = page.locator("[data-testid=nodes]").inner_text()
        assert "daeil" not in devices  # a device another company holds shows no name
        check(page, "member-01-cluster")
        operator = open_page(chromium, center, tokens["operator"])
        operator.goto(f"/ui/jobs/{other['id']}")
        assert operator.inner_text("h1").startswith(other["id"])
        operator.context.close()
    finally:
        page.context.close()
        with api(center, tokens["daeil-engineer"]) as daeil:
            daeil.post(f"/jobs/{other['id']}/cancel")


def test_submit_watch_the_log_and_cancel(
    chromium: Any, center: Service, tokens: dict[str, str]
) -> None:
    page = open_page(chromium, center, tokens["hanbit-engineer"])
    page.goto("/ui/jobs/new")
    page.select_option("#project", "hanbit-adas")
    page.fill("#name", "ui-job")
    page.fill("#command", "bash -c 'echo started; sleep 5; echo hello-from-the-page; sleep 120'")
    page.fill("#gpus_per_node", "1")
    page.click("form[action='/ui/jobs/new'] button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/jobs/job_\w+$"))
    job_id = page.url.rsplit("/", 1)[1]
    # the live tail brings the later output in without a reload
    assert "hello-from-the-page" not in page.inner_text("[data-testid=log]")
    page.evaluate("window.sameDocument = true")
    # (a locator assertion: the page's CSP forbids the eval a wait_for_function would need)
    playwright.expect(page.locator("[data-testid=log]")).to_contain_text(
        "hello-from-the-page", timeout=WAIT_MS
    )
    assert page.evaluate("window.sameDocument") is True
    check(page, "en-12-job-running")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click(f"form[action='/ui/jobs/{job_id}/cancel'] button")
    page.wait_for_url(re.compile(rf".*/ui/jobs/{job_id}$"))
    with api(center, tokens["hanbit-engineer"]) as hanbit:
        state = hanbit.get(f"/jobs/{job_id}/wait", params={"timeout": 20}).json()["state"]
    assert state == "cancelled"
    page.reload()
    assert "cancelled" in page.inner_text("h1")
    page.context.close()


def test_the_job_list_and_queue_refresh_themselves(
    chromium: Any, center: Service, tokens: dict[str, str]
) -> None:
    page = open_page(chromium, center, tokens["hanbit-engineer"])
    page.goto("/ui/jobs")
    page.evaluate("window.sameDocument = true")
    with api(center, tokens["hanbit-engineer"]) as hanbit:
        job = hanbit.post("/jobs", json={"command": ["sleep", "1"], "gpus_per_node": 0}).json()
    row = page.locator(f"[data-testid=jobs] tr[data-job={job['id']}]")
    playwright.expect(row).to_be_visible(timeout=WAIT_MS)  # came in by itself
    playwright.expect(row.locator("[data-state]")).to_have_attribute(
        "data-state", "succeeded", timeout=WAIT_MS
    )
    assert page.evaluate("window.sameDocument") is True
    page.context.close()


def test_a_waiting_job_shows_its_place_in_the_whole_queue(
    chromium: Any, center: Service, tokens: dict[str, str]
) -> None:
    """A member reads her waiting job's place in the whole queue (the operator's number),
    while another company's waiting job stays hidden."""
    spec = {"gpu_types": ["H100"], "gpus_per_node": 4, "time_limit_s": 600}
    with api(center, tokens["hanbit-engineer"]) as hanbit:
        hog = hanbit.post("/jobs", json={**spec, "command": ["sleep", "120"]}).json()
        for _ in range(100):
            if hanbit.get(f"/jobs/{hog['id']}").json()["state"] == "running":
                break
            time.sleep(0.1)
    with api(center, tokens["daeil-engineer"]) as daeil:
        ahead = daeil.post("/jobs", json={**spec, "command": ["true"]}).json()
    with api(center, tokens["hanbit-engineer"]) as hanbit:
        mine = hanbit.post("/jobs", json={**spec, "command": ["true"]}).json()
    try:
        with api(center, tokens["operator"]) as op:
            whole = op.get("/queue").json()
        assert whole["queue_length"] == 2
        truth = {i["id"]: i["position"] for i in whole["items"]}[mine["id"]]
        for locale, name in (("ko-KR", "ko-04-queue"), ("en-US", "en-15-queue-waiting")):
            page = open_page(chromium, center, tokens["hanbit-engineer"], lang=locale[:2])
            page.goto("/ui/queue")
            rows = page.locator("[data-testid=queue] tbody tr")
            assert rows.count() == 1 and ahead["id"] not in page.content()
            assert rows.first.locator("[data-testid=position]").inner_text() == str(truth)
            check(page, name)
            page.goto(f"/ui/jobs/{mine['id']}")
            said = page.inner_text("[data-testid=queue-position]")
            ko, en = f"대기열 2개 중 {truth}번째", f"#{truth} of 2 in the queue"
            assert said == (ko if locale == "ko-KR" else en)
            check(page, f"{name}-job")
            page.context.close()
    finally:
        with api(center, tokens["daeil-engineer"]) as daeil:
            daeil.post(f"/jobs/{ahead['id']}/cancel")
        with api(center, tokens["hanbit-engineer"]) as hanbit:
            for job in (hog, mine):
                hanbit.post(f"/jobs/{job['id']}/cancel")
