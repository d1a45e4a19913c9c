"""Role-aware navigation and error pages (issue 21 point 6): each role's menu offers what
it can use (reviewers no Jobs nor "Submit a job", members no Requests), refusals are
sentences of the reader's language (never an access rule's name), and every error under
``/ui``, the framework's own included, is a page that keeps the navigation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from axcenter.api.app import create_app
from axcenter.service.center import Center
from tests.api.conftest import Tenants
from tests.api.test_allocations import file_request, setup
from tests.web.test_pages import browser


@pytest.fixture
def client(center: Center) -> Iterator[TestClient]:
    with TestClient(create_app(center)) as c:
        yield c


def menu(html: str) -> list[str]:
    """The main menu's links (empty when signed out)."""
    found = re.search(r'<nav aria-label="[^"]+">(.*?)</nav>', html, re.S)
    return re.findall(r'<li><a href="(/ui/[^"]*)"', found.group(1)) if found else []


RAW_RULE = re.compile(r"\b(request|project|job|template|allocation)\.[a-z]+\b")


def test_each_role_sees_what_it_can_use(
    client: TestClient, center: Center, tenants: Tenants
) -> None:
    staff = setup(client, tenants)
    rid = file_request(client, tenants.acme_admin, "acme-vision", {"A100": 1})["id"]
    reviewer = browser(center, staff.reviewer.token, lang="ko")
    jobs_page = reviewer.get("/ui/jobs")
    assert "/ui/jobs" not in menu(jobs_page.text) and "/ui/requests" in menu(jobs_page.text)
    assert "작업 제출" not in jobs_page.text  # no "Submit a job"
    new = reviewer.get("/ui/jobs/new")
    assert new.status_code == 403 and "작업을 제출할 수 있는 과제가 없습니다" in new.text
    assert "/ui/requests" in menu(new.text)  # the navigation stays

    member = browser(center, tenants.alice.token, lang="ko")
    home = member.get("/ui/jobs")
    assert "/ui/requests" not in menu(home.text) and "/ui/jobs" in menu(home.text)
    assert 'href="/ui/jobs/new"' in home.text
    listed = member.get("/ui/requests")
    assert "소속 기관의 관리자가 제출하고 관리합니다" in listed.text
    refused = member.get(f"/ui/requests/{rid}")
    assert refused.status_code == 403
    assert (
        "현재 역할(구성원)에는" in refused.text and "배정 신청 조회 권한이 없습니다" in refused.text
    )
    assert not RAW_RULE.search(refused.text.split("<main")[1]), refused.text
    admin = browser(center, tenants.acme_admin.token, lang="en")
    assert {"/ui/jobs", "/ui/requests"} <= set(menu(admin.get("/ui/jobs").text))


def test_framework_errors_are_pages_in_the_readers_language(
    client: TestClient, center: Center, tenants: Tenants
) -> None:
    ko = browser(center, tenants.alice.token, lang="ko")
    missing = ko.get("/ui/no-such-page")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "찾을 수 없습니다" in missing.text and "/ui/jobs" in menu(missing.text)
    wrong = ko.post("/ui/jobs")  # a page that takes no form
    assert wrong.status_code == 405 and "이 페이지는 그 요청을 받지 않습니다" in wrong.text
    en = browser(center, tenants.alice.token, lang="en")
    assert (
        "Not found" in en.get("/ui/no-such-page").text
        or "not found" in en.get("/ui/no-such-page").text.lower()
    )
    # signed out: the same page in the language asked for, without the menu
    anonymous = browser(center, None, lang="ko").get("/ui/no-such-page")
    assert anonymous.status_code == 404 and "찾을 수 없습니다" in anonymous.text
    # the API keeps its JSON
    api = client.get("/api/v1/no-such-route", headers=tenants.alice.headers)
    assert api.status_code == 404 and api.json() == {"detail": "Not Found"}
