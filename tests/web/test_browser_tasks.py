"""The tasks people come to the dashboard for, driven in Chromium as the roles that do
them, in Korean and English, at a desktop's and at a phone's width (issue 21, "How it is
checked"):

(a) submit a job and watch it start and end without reloading the page;
(b) see where a waiting job stands in the whole queue, and why it waits;
(c) file an allocation request, review it, decide it, and see the notification;
(d) a program manager reads the burn-down while jobs run;
(e) an operator sees the busy nodes and who holds them.

Each step is screenshotted (``$AXC_TEST_OUTPUT/screenshots/task-…``) and checked by
axe-core and, at 390 px, for nothing wider than the screen (``tests/web/browsing.py``).
The four (language, width) variants of a task share the work that is not what they
check (a job holding the GPUs), so the suite stays within a few minutes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.conftest import Service
from tests.web.browsing import WAIT_MS, api, check, open_page

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = pytest.mark.e2e

PROGRAM = "AX Manufacturing Demonstration 2026"
#: (language, width, who does the task's main part)
VARIANTS = [("en", "desktop"), ("ko", "phone"), ("ko", "desktop"), ("en", "phone")]


def variant_id(lang: str, width: str) -> str:
    return f"{lang}-{width}"


def wait_state(center: Service, token: str, job_id: str, state: str) -> None:
    with api(center, token) as client:
        for _ in range(300):
            if client.get(f"/jobs/{job_id}").json()["state"] == state:
                return
            time.sleep(0.1)
    pytest.fail(f"{job_id} never reached {state}")


# -- (a) submit a job and watch it start and end -----------------------------------------

SUBMITTERS = {
    ("en", "desktop"): "hanbit-engineer",
    ("ko", "phone"): "hanbit-engineer",
    ("ko", "desktop"): "hanbit-admin",
    ("en", "phone"): "operator",
}


@pytest.mark.parametrize(("lang", "width"), VARIANTS)
def test_a_submit_and_watch_a_job(
    chromium: Any, demo: Service, demo_tokens: dict[str, str], lang: str, width: str
) -> None:
    who = SUBMITTERS[(lang, width)]
    step = f"task-a-{lang}-{width}-{who}"
    page = open_page(chromium, demo, demo_tokens[who], lang, width)
    try:
        page.goto("/ui/jobs/new")
        page.select_option("#project", "hanbit-adas")
        page.fill("#name", f"watch-{lang}-{width}")
        page.fill("#command", "bash -c 'sleep 10; echo finished'")
        page.fill("#gpus_per_node", "1")
        check(page, f"{step}-1-form")
        page.click("form[action='/ui/jobs/new'] button[type=submit]")
        page.wait_for_url(re.compile(r".*/ui/jobs/job_\w+$"))
        page.evaluate("window.sameDocument = true")
        badge = page.locator("h1 [data-state]")
        expect(badge).to_have_attribute("data-state", "running", timeout=WAIT_MS)
        expect(page.locator("[data-testid=placement]")).to_be_visible()
        check(page, f"{step}-2-running")
        expect(badge).to_have_attribute("data-state", "succeeded", timeout=WAIT_MS)
        expect(page.locator("[data-testid=log]")).to_contain_text("finished", timeout=WAIT_MS)
        expect(page.locator("[data-testid=ended]")).to_contain_text("KST")
        assert page.evaluate("window.sameDocument") is True  # never reloaded
        assert page.inner_text("h1 [data-state]") == ("성공" if lang == "ko" else "succeeded")
        check(page, f"{step}-3-ended")
    finally:
        page.context.close()


# -- (b) where a waiting job stands --------------------------------------------------------


@pytest.fixture(scope="module")
def waiting(demo: Service, demo_tokens: dict[str, str]) -> Iterator[dict[str, str]]:
    """The H100s held by Daeil, a Daeil job and then a Hanbit job waiting behind."""
    spec = {"gpu_types": ["H100"], "gpus_per_node": 4, "time_limit_s": 900}
    with api(demo, demo_tokens["daeil-engineer"]) as daeil:
        hog = daeil.post("/jobs", json={**spec, "command": ["sleep", "900"]}).json()
        wait_state(demo, demo_tokens["daeil-engineer"], hog["id"], "running")
        ahead = daeil.post("/jobs", json={**spec, "command": ["true"]}).json()
    with api(demo, demo_tokens["hanbit-engineer"]) as hanbit:
        mine = hanbit.post("/jobs", json={**spec, "command": ["true"], "name": "waits"}).json()
    yield {"hog": hog["id"], "ahead": ahead["id"], "mine": mine["id"]}
    with api(demo, demo_tokens["daeil-engineer"]) as daeil:
        daeil.post(f"/jobs/{hog['id']}/cancel")
        daeil.post(f"/jobs/{ahead['id']}/cancel")
    with api(demo, demo_tokens["hanbit-engineer"]) as hanbit:
        hanbit.post(f"/jobs/{mine['id']}/cancel")


@pytest.mark.parametrize(("lang", "width"), VARIANTS)
def test_b_see_where_a_waiting_job_stands(
    chromium: Any,
    demo: Service,
    demo_tokens: dict[str, str],
    waiting: dict[str, str],
    lang: str,
    width: str,
) -> None:
    step = f"task-b-{lang}-{width}"
    page = open_page(chromium, demo, demo_tokens["hanbit-engineer"], lang, width)
    try:
        page.goto("/ui/queue")
        mine = page.locator(f"[data-testid=queue] tr[data-job={waiting['mine']}]")
        expect(mine).to_have_count(1)
        assert waiting["ahead"] not in page.content()  # another company's job stays hidden
        # her place in the whole queue, as the operator's API says it just before and just
        # after the page is read (fair share may reorder the two companies' jobs at any
        # moment, as the held GPUs add to Daeil's usage)
        before = position(demo, demo_tokens, waiting["mine"])
        shown = mine.locator("[data-testid=position]").inner_text()
        assert shown in {str(before), str(position(demo, demo_tokens, waiting["mine"]))}
        check(page, f"{step}-1-queue")
        before = position(demo, demo_tokens, waiting["mine"])
        page.goto(f"/ui/jobs/{waiting['mine']}")
        said = page.inner_text("[data-testid=queue-position]")
        after = position(demo, demo_tokens, waiting["mine"])
        said_as = {"en": "#{} of", "ko": " {}번째"}[lang]
        assert any(said_as.format(p) in said for p in (before, after)), said
        check(page, f"{step}-2-job")
    finally:
        page.context.close()
    # the operator sees both jobs, in the queue's order
    operator = open_page(chromium, demo, demo_tokens["operator"], lang, width)
    try:
        orders = [queue_order(demo, demo_tokens, waiting)]  # before and after the page
        operator.goto("/ui/queue")
        rows = operator.locator("[data-testid=queue] tr[data-job]")
        shown = [rows.nth(i).get_attribute("data-job") for i in range(rows.count())]
        orders.append(queue_order(demo, demo_tokens, waiting))
        assert {waiting["ahead"], waiting["mine"]} <= set(shown)
        assert [j for j in shown if j in waiting.values()] in orders
        check(operator, f"{step}-3-operator-queue")
    finally:
        operator.context.close()


def queue_order(demo: Service, demo_tokens: dict[str, str], jobs: dict[str, str]) -> list[str]:
    """The order of ``jobs`` in the whole queue, as the operator's API says it now."""
    with api(demo, demo_tokens["operator"]) as op:
        return [i["id"] for i in op.get("/queue").json()["items"] if i["id"] in jobs.values()]


def position(demo: Service, demo_tokens: dict[str, str], job_id: str) -> int:
    with api(demo, demo_tokens["operator"]) as op:
        items = op.get("/queue").json()["items"]
    return int(next(i["position"] for i in items if i["id"] == job_id))


# -- (c) file a request, review it, decide it, see the notification -----------------------


@pytest.mark.parametrize(("lang", "width"), VARIANTS)
def test_c_file_review_decide_and_hear_of_a_request(
    chromium: Any, demo: Service, demo_tokens: dict[str, str], lang: str, width: str
) -> None:
    step = f"task-c-{lang}-{width}"
    hours = {"en": 111, "ko": 112}[lang] + (10 if width == "phone" else 0)
    admin = open_page(chromium, demo, demo_tokens["hanbit-admin"], lang, width)
    try:
        admin.goto("/ui/requests/new")
        admin.select_option("#project", "hanbit-adas")
        admin.fill("#hours-H100", str(hours))
        # the form's days are the center's (Asia/Seoul): tomorrow there starts after the
        # program, which began with the demo, whatever the hour in UTC
        today = datetime.now(ZoneInfo("Asia/Seoul")).date()
        admin.fill("#starts_on", (today + timedelta(days=1)).isoformat())
        admin.fill("#ends_on", (today + timedelta(days=60)).isoformat())
        admin.fill("#justification", f"pilot line vision model, {lang} {width}")
        check(admin, f"{step}-1-file")
        admin.click("form[action='/ui/requests/new'] button[type=submit]")
        admin.wait_for_load_state()
        error = admin.locator("[data-testid=form-error]")
        assert error.count() == 0, error.inner_text()
        admin.wait_for_url(re.compile(r".*/ui/requests/req_\w+$"))
        request_id = admin.url.rsplit("/", 1)[1]
        check(admin, f"{step}-2-filed")
    finally:
        admin.context.close()
    with api(demo, demo_tokens["pm-kim"]) as pm:
        assigned = pm.post(
            f"/allocation-requests/{request_id}/assign", json={"reviewers": ["reviewer-lee"]}
        )
        assert assigned.is_success, assigned.text

    reviewer = open_page(chromium, demo, demo_tokens["reviewer-lee"], lang, width)
    try:
        reviewer.goto("/ui/notifications")  # the reviewer hears of the assignment
        expect(reviewer.locator("[data-testid=notifications]")).to_contain_text(request_id)
        check(reviewer, f"{step}-3-reviewer-notified")
        reviewer.click(f"[data-testid=notifications] a[href$='{request_id}']")
        reviewer.wait_for_url(re.compile(rf".*/ui/requests/{request_id}$"))
        assert re.search(r"[1-9]", reviewer.inner_text("[data-testid=value]"))
        reviewer.fill("#score", "4")
        reviewer.fill("#review-comment", f"clear plan ({lang})")
        reviewer.click("form[action$='/review'] button")
        reviewer.wait_for_selector(f"text=clear plan ({lang})")
        check(reviewer, f"{step}-4-reviewed")
    finally:
        reviewer.context.close()

    manager = open_page(chromium, demo, demo_tokens["pm-kim"], lang, width)
    try:
        manager.goto(f"/ui/requests/{request_id}")
        manager.fill("#hours-H100", "100")
        manager.fill("#approve-comment", "approved at 100 GPU-hours")
        manager.click("form[action$='/approve'] button")
        expect(manager.locator("[data-testid=stage]")).to_have_attribute("data-stage", "approved")
        assert manager.inner_text("[data-testid=stage]") == ("승인" if lang == "ko" else "approved")
        check(manager, f"{step}-5-decided")
    finally:
        manager.context.close()

    admin = open_page(chromium, demo, demo_tokens["hanbit-admin"], lang, width)
    try:
        expect(admin.locator("[data-testid=unread]")).to_be_visible()
        admin.goto("/ui/notifications")
        heard = admin.locator("[data-testid=notifications] li").filter(has_text=request_id)
        expect(heard.first).to_be_visible()
        check(admin, f"{step}-6-applicant-notified")
    finally:
        admin.context.close()


# -- (d) the burn-down while jobs run ---------------------------------------------------------


@pytest.fixture(scope="module")
def busy(demo: Service, demo_tokens: dict[str, str]) -> Iterator[list[str]]:
    """Jobs of two granted projects running on the A100s."""
    running = []
    for user in ("hanbit-engineer", "daeil-engineer"):
        with api(demo, demo_tokens[user]) as client:
            job = client.post(
                "/jobs",
                json={
                    "command": ["sleep", "600"],
                    "gpu_types": ["A100"],
                    "gpus_per_node": 2,
                    "name": "busy",
                },
            ).json()
        wait_state(demo, demo_tokens[user], job["id"], "running")
        running.append((user, job["id"]))
    yield [job for _, job in running]
    for user, job in running:
        with api(demo, demo_tokens[user]) as client:
            client.post(f"/jobs/{job}/cancel")


@pytest.mark.parametrize(("lang", "width"), VARIANTS)
def test_d_a_program_manager_reads_the_burn_down_while_jobs_run(
    chromium: Any,
    demo: Service,
    demo_tokens: dict[str, str],
    busy: list[str],
    lang: str,
    width: str,
) -> None:
    step = f"task-d-{lang}-{width}"
    page = open_page(chromium, demo, demo_tokens["pm-kim"], lang, width)
    try:
        page.goto("/ui/programs")
        check(page, f"{step}-1-programs")
        page.goto(f"/ui/programs/{quote(PROGRAM)}")
        page.wait_for_selector("canvas[data-drawn=true]", state="attached")
        # what runs now is money held and accruing, not nothing
        assert re.search(r"[1-9]", page.inner_text("[data-testid=held]"))
        budget = page.inner_text("[data-testid=budget]")
        assert ("억" in budget) if lang == "ko" else ("₩" in budget)
        check(page, f"{step}-2-burn-down")
    finally:
        page.context.close()


# -- (e) busy nodes and who holds them --------------------------------------------------------


@pytest.mark.parametrize(("lang", "width"), VARIANTS)
def test_e_an_operator_sees_busy_nodes_and_who_holds_them(
    chromium: Any,
    demo: Service,
    demo_tokens: dict[str, str],
    busy: list[str],
    lang: str,
    width: str,
) -> None:
    step = f"task-e-{lang}-{width}"
    page = open_page(chromium, demo, demo_tokens["operator"], lang, width)
    try:
        nodes = page.locator("[data-testid=nodes]")
        expect(nodes).to_contain_text("hanbit-engineer")
        expect(nodes).to_contain_text("daeil-engineer")
        used = page.inner_text("[data-testid=gpus-used]")
        assert int(used.split("/")[0]) >= 4
        check(page, f"{step}-1-cluster")
    finally:
        page.context.close()
    member = open_page(chromium, demo, demo_tokens["hanbit-engineer"], lang, width)
    try:  # a member sees that the device is busy, not who holds it for another company
        nodes = member.locator("[data-testid=nodes]")
        expect(nodes).to_contain_text("hanbit-engineer")
        assert "daeil" not in nodes.inner_text()
        check(member, f"{step}-2-member-cluster")
    finally:
        member.context.close()
