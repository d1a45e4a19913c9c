"""The dashboard in a real browser: Debian's Chromium driven by Playwright against a real
``axc up --demo`` process. Each main page is screenshotted (under ``$AXC_TEST_OUTPUT``,
default ``out/test-output``) and checked by axe-core for accessibility problems.

``scripts/test`` installs Chromium (``apt-get install chromium fonts-noto-cjk``); without
it these tests are skipped with that instruction.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import service_env
from tests.e2e.conftest import Service

playwright = pytest.importorskip("playwright.sync_api")
axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")

CHROMIUM = "/usr/bin/chromium"
OUT = Path(os.environ.get("AXC_TEST_OUTPUT", "out/test-output")) / "screenshots"
WAIT_MS = 30_000

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="no /usr/bin/chromium: scripts/test installs it (apt-get install chromium)",
    ),
]


@pytest.fixture(scope="module")
def center(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("web")
    env = service_env()
    env.update(
        {
            "AXC_DATABASE_URL": f"sqlite:///{tmp / 'axcenter.db'}",
            "AXC_KILL_GRACE_S": "1",
            "XDG_CONFIG_HOME": str(tmp / "cfg"),
        }
    )
    svc = Service(data_dir=tmp / "data", env=env, gpus="A100:4,H100:4")
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def tokens(center: Service) -> dict[str, str]:
    """The demo accounts' tokens, as ``axc up --demo`` wrote them (never to its log)."""
    log = (center.data_dir / "first-start-tokens").read_text()
    found = dict(re.findall(r"^#\s+(\S+) \([a-z_]+, [^)]*\): (axc_\S+)$", log, re.M))
    assert {"operator", "pm-kim", "reviewer-lee", "hanbit-engineer", "daeil-engineer"} <= set(
        found
    ), log
    return found


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def api(center: Service, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{center.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def open_page(chromium: object, center: Service, token: str, locale: str = "en-US") -> object:
    context = chromium.new_context(  # type: ignore[attr-defined]
        locale=locale, viewport={"width": 1366, "height": 900}, base_url=center.url
    )
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto("/ui/login")
    page.fill("#token", token)
    page.click("form[action='/ui/login'] button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/$"))
    return page


def check(page: object, name: str) -> None:
    """Screenshot the page and fail on any accessibility violation axe-core finds."""
    page.wait_for_load_state("networkidle")  # type: ignore[attr-defined]
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
    result = axe_module.Axe().run(page)
    assert result.violations_count == 0, f"{name}: {result.generate_report()}"


def test_keyboard_sign_in_and_every_main_page_is_accessible(
    chromium: object, center: Service, tokens: dict[str, str]
) -> None:
    context = chromium.new_context(locale="en-US", base_url=center.url)  # type: ignore[attr-defined]
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

    with api(center, tokens["hanbit-engineer"]) as hanbit:
        job = hanbit.post("/jobs", json={"command": ["echo", "ready"], "gpus_per_node": 1})
        assert job.status_code == 201, job.text
    with api(center, tokens["operator"]) as operator:
        grant = operator.get("/allocations").json()["items"][0]["id"]
    pages = [
        ("en-02-cluster", "/ui/"),
        ("en-03-queue", "/ui/queue"),
        ("en-04-jobs", "/ui/jobs"),
        ("en-05-job", f"/ui/jobs/{job.json()['id']}"),
        ("en-06-projects", "/ui/projects"),
        ("en-07-project", "/ui/projects/hanbit-adas"),
        ("en-08-requests", "/ui/requests"),
        ("en-09-programs", "/ui/programs"),
        ("en-10-program", "/ui/programs/AX%20Manufacturing%20Demonstration%202026"),
        ("en-11-submit", "/ui/jobs/new"),
        ("en-16-notifications", "/ui/notifications"),
        ("en-17-file-request", "/ui/requests/new"),
        ("en-18-grant", f"/ui/grants/{grant}"),
        ("en-19-usage", "/ui/usage?period=week"),
        ("en-20-mail-settings", "/ui/notifications/settings"),
    ]
    for name, url in pages:
        response = page.goto(url)
        assert response is not None and response.status == 200, url
        check(page, name)
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
    chromium: object, center: Service, tokens: dict[str, str]
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
    chromium: object, center: Service, tokens: dict[str, str]
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


def test_review_and_approve_a_request(
    chromium: object, center: Service, tokens: dict[str, str]
) -> None:
    ends = (datetime.now(UTC) + timedelta(days=60)).isoformat()
    with api(center, tokens["operator"]) as op:
        made = op.post(
            "/allocation-requests",
            json={
                "project": "hanbit-adas",
                "kind": "new",
                "items": {"H100": 120},
                "ends_at": ends,
                "justification": "pilot line vision model",
            },
        )
        assert made.status_code == 201, made.text
        request_id = made.json()["id"]
        assert op.post(
            f"/allocation-requests/{request_id}/assign", json={"reviewers": ["reviewer-lee"]}
        ).is_success
    reviewer = open_page(chromium, center, tokens["reviewer-lee"])
    reviewer.goto("/ui/requests")
    reviewer.click(f"a[href='/ui/requests/{request_id}']")
    # what the reviewer weighs: the ask in won at today's prices, the applicant's size
    assert re.search(r"₩[1-9][\d,]*", reviewer.inner_text("[data-testid=value]"))
    assert reviewer.inner_text("[data-testid=size]") != "\u2013"
    reviewer.fill("#score", "4")
    reviewer.fill("#review-comment", "clear plan, modest ask")
    reviewer.click("form[action$='/review'] button")
    reviewer.wait_for_selector("text=clear plan, modest ask")
    check(reviewer, "en-13-request-reviewed")
    reviewer.context.close()

    manager = open_page(chromium, center, tokens["pm-kim"])
    manager.goto(f"/ui/requests/{request_id}")
    manager.fill("#hours-H100", "100")  # grant less than asked
    manager.fill("#approve-comment", "approved at 100 GPU-hours")
    manager.click("form[action$='/approve'] button")
    manager.wait_for_selector("[data-testid=stage]:has-text('approved')")
    check(manager, "en-14-request-approved")
    manager.context.close()
    korean = open_page(chromium, center, tokens["pm-kim"], locale="ko-KR")
    korean.goto(f"/ui/requests/{request_id}")
    assert korean.inner_text("[data-testid=stage]") == "승인"
    check(korean, "ko-07-request-approved")
    korean.context.close()
    with api(center, tokens["operator"]) as op:
        allocations = op.get("/allocations", params={"project": "hanbit-adas"}).json()["items"]
    granted = [a for a in allocations if a["request_id"] == request_id]
    assert len(granted) == 1
    assert granted[0]["balance"]["items"][0]["granted_gpu_seconds"] == 100 * 3600


def test_korean_pages(chromium: object, center: Service, tokens: dict[str, str]) -> None:
    page = open_page(chromium, center, tokens["pm-kim"], locale="ko-KR")
    assert page.get_attribute("html", "lang") == "ko"
    assert "클러스터" in page.inner_text("header")
    check(page, "ko-01-cluster")
    page.goto("/ui/programs/AX%20Manufacturing%20Demonstration%202026")
    assert re.search(r"\d+억", page.inner_text("[data-testid=budget]"))
    check(page, "ko-02-program")
    page.goto("/ui/requests")
    check(page, "ko-03-requests")
    page.goto("/ui/notifications")
    check(page, "ko-08-notifications")
    page.context.close()


def test_a_job_page_follows_its_job_without_a_reload(
    chromium: object, center: Service, tokens: dict[str, str]
) -> None:
    """Submitted from the form, the page shows the job start (time, placement), end, and
    what it was charged, all in the same document."""
    page = open_page(chromium, center, tokens["hanbit-engineer"], locale="ko-KR")
    page.goto("/ui/jobs/new")
    page.select_option("#project", "hanbit-adas")
    page.fill("#command", "bash -c 'sleep 8; echo done'")
    page.fill("#gpus_per_node", "1")
    page.click("form[action='/ui/jobs/new'] button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/jobs/job_\w+$"))
    page.evaluate("window.sameDocument = true")
    badge = page.locator("h1 [data-state]")
    playwright.expect(badge).to_have_attribute("data-state", "running", timeout=WAIT_MS)
    assert page.inner_text("h1 [data-state]") == "실행 중"
    playwright.expect(page.locator("[data-testid=placement]")).to_be_visible()
    assert "KST" in page.inner_text("[data-testid=started]")
    check(page, "ko-05-job-running")
    playwright.expect(badge).to_have_attribute("data-state", "succeeded", timeout=WAIT_MS)
    assert page.inner_text("h1 [data-state]") == "성공"
    playwright.expect(page.locator("[data-testid=events]")).to_contain_text("실행 중 → 성공")
    playwright.expect(page.locator("[data-testid=ended]")).to_contain_text("KST")
    assert page.evaluate("window.sameDocument") is True  # never reloaded
    assert page.locator("main[data-refresh-s]").count() == 0  # ended: polling stopped
    check(page, "ko-06-job-ended")
    page.context.close()


PHONE = {"width": 390, "height": 844}
#: the innermost elements reaching past the screen (to say what overflows)
WIDER_THAN_SCREEN = """[...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > 390 + 1
    && ![...e.children].some(c => c.getBoundingClientRect().right > 390 + 1))
  .slice(0, 5).map(e => e.tagName + '.' + e.className + ': ' + e.textContent.slice(0, 40))"""


@pytest.mark.parametrize("locale", ["en-US", "ko-KR"])
def test_pages_fit_a_phone(
    chromium: object, center: Service, tokens: dict[str, str], locale: str
) -> None:
    """At 390 px nothing is wider than the screen but a table's own scroller, and a job's
    state is on screen without scrolling."""
    with api(center, tokens["hanbit-engineer"]) as hanbit:
        job = hanbit.post("/jobs", json={"command": ["sleep", "20"], "gpus_per_node": 1})
        assert job.status_code == 201, job.text
    context = chromium.new_context(  # type: ignore[attr-defined]
        locale=locale, viewport=PHONE, base_url=center.url, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto("/ui/login")
    page.fill("#token", tokens["pm-kim"])
    page.click("form[action='/ui/login'] button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/$"))
    lang = locale[:2]
    pages = [
        ("cluster", "/ui/"),
        ("queue", "/ui/queue"),
        ("jobs", "/ui/jobs"),
        ("job", f"/ui/jobs/{job.json()['id']}"),
        ("requests", "/ui/requests"),
        ("program", "/ui/programs/AX%20Manufacturing%20Demonstration%202026"),
        ("project", "/ui/projects/hanbit-adas"),
        ("notifications", "/ui/notifications"),
    ]
    for name, url in pages:
        page.goto(url)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        wide = page.evaluate(WIDER_THAN_SCREEN) if width > PHONE["width"] else []
        assert width <= PHONE["width"], (url, width, wide)
        for canvas in page.locator("canvas").all():
            box = canvas.bounding_box()
            assert box is not None and box["x"] + box["width"] <= PHONE["width"], url
        OUT.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUT / f"phone-{lang}-{name}.png"), full_page=True)
    page.goto("/ui/jobs")
    for badge in page.locator("[data-testid=jobs] tbody [data-state]").all()[:5]:
        box = badge.bounding_box()
        assert box is not None and box["x"] + box["width"] <= PHONE["width"]
    context.close()
    with api(center, tokens["hanbit-engineer"]) as hanbit:
        hanbit.post(f"/jobs/{job.json()['id']}/cancel")


def test_the_job_list_and_queue_refresh_themselves(
    chromium: object, center: Service, tokens: dict[str, str]
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
    chromium: object, center: Service, tokens: dict[str, str]
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
            page = open_page(chromium, center, tokens["hanbit-engineer"], locale=locale)
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
