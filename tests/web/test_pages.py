"""The dashboard's pages over HTTP (no browser): sign-in, scoping, CSRF, errors, exports.

Each test runs on a real center, on SQLite and on PostgreSQL (the API's fixtures).
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.routing import Route

from axcenter.api.app import create_app
from axcenter.service.center import Center
from axcenter.store import orm
from axcenter.store.accounts import authenticate, open_session
from axcenter.web.app import ROUTERS
from axcenter.web.session import SESSION_COOKIE
from axcenter.web.session import csrf_for as session_csrf
from tests.accounting import allocation, charge, job, organization, program
from tests.api.conftest import Tenants

#: the dashboard session opened for each API token (tokens are new in every test)
_SESSIONS: dict[str, str] = {}


def session_for(center: Center, token: str) -> str:
    """The secret of a dashboard session of the token's user, as signing in opens one."""
    if token not in _SESSIONS:
        with center.store.write() as s:
            who = authenticate(s, token)
            secret = open_session(s, who.user_id, timedelta(hours=1)) if who else "axs_none"
        _SESSIONS[token] = secret
    return _SESSIONS[token]


def csrf_for(token: str) -> str:
    """The forms' CSRF value of the session ``browser`` opened for ``token`` (of a
    session never opened: a value no session has)."""
    return session_csrf(_SESSIONS.get(token, token))


def browser(center: Center, token: str | None = None, lang: str = "en") -> TestClient:
    """A browser signed in with ``token`` (a dashboard session of its user)."""
    client = TestClient(
        create_app(center), follow_redirects=False, headers={"Accept-Language": lang}
    )
    if token:
        client.cookies.set(SESSION_COOKIE, session_for(center, token))
    return client


def page_routes() -> list[tuple[str, str]]:
    out = []
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, Route) and route.path.startswith("/ui/"), route
            out.extend((m, route.path) for m in sorted(route.methods or ()) if m != "HEAD")
    return out


def test_every_page_needs_a_session(center: Center) -> None:
    """Generated from the route table: a new page without the session check fails here."""
    public = {"/ui/logout", "/ui/lang/{code}"}
    # the sign-in pages: each checks its own step (tests/web/test_signin.py)
    routes = [(m, p) for m, p in page_routes() if p not in public and not p.startswith("/ui/login")]
    assert len(routes) >= 15
    client = browser(center)
    for method, path in routes:
        url = re.sub(r"\{[a-z_]+\}", "x", path)
        r = client.request(method, url)
        assert r.status_code == 303, (method, path, r.status_code)
        assert r.headers["location"].startswith("/ui/login?next="), (method, path)


def login_csrf(client: TestClient) -> str:
    """Open the sign-in form (which sets its CSRF cookie) and read its CSRF field."""
    form = client.get("/ui/login")
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert found, form.text
    return found.group(1)


def test_sign_in_sets_a_strict_http_only_cookie(center: Center, tenants: Tenants) -> None:
    client = browser(center)
    csrf = login_csrf(client)
    bad = client.post("/ui/login", data={"token": "axc_nope", "next": "/ui/jobs", "csrf": csrf})
    assert bad.status_code == 401 and "token" in bad.text
    csrf = login_csrf(client)
    good = client.post(
        "/ui/login", data={"token": tenants.alice.token, "next": "/ui/jobs", "csrf": csrf}
    )
    assert good.status_code == 303 and good.headers["location"] == "/ui/jobs"
    cookie = good.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    # the cookie is a session of its own, never the API token
    assert tenants.alice.token not in good.headers["set-cookie"]
    # never a redirect off the site
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        csrf = login_csrf(client)
        r = client.post(
            "/ui/login", data={"token": tenants.alice.token, "next": target, "csrf": csrf}
        )
        assert r.headers["location"] == "/ui/", target
    # a revoked or unknown token in the cookie is no session
    assert browser(center, "axc_revoked").get("/ui/jobs").status_code == 303


def test_pages_carry_security_headers(center: Center, tenants: Tenants) -> None:
    r = browser(center, tenants.alice.token).get("/ui/")
    assert r.status_code == 200
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    assert "<script>" not in r.text  # no inline script: the CSP would block it


def test_forms_without_the_csrf_value_change_nothing(center: Center, tenants: Tenants) -> None:
    client = browser(center, tenants.alice.token)
    body = {"project": "acme-vision", "command": "true", "gpus_per_node": "0"}
    refused = client.post("/ui/jobs/new", data=body)
    assert refused.status_code == 403
    forged = client.post("/ui/jobs/new", data={**body, "csrf": csrf_for(tenants.bob.token)})
    assert forged.status_code == 403
    with center.store.read() as s:
        assert s.query(orm.Job).count() == 0
    ok = client.post("/ui/jobs/new", data={**body, "csrf": csrf_for(tenants.alice.token)})
    assert ok.status_code == 303 and ok.headers["location"].startswith("/ui/jobs/job_")


def test_a_bad_form_says_what_is_wrong_and_keeps_the_input(
    center: Center, tenants: Tenants
) -> None:
    client = browser(center, tenants.alice.token)
    csrf = csrf_for(tenants.alice.token)
    r = client.post(
        "/ui/jobs/new",
        data={
            "project": "acme-vision",
            "command": "train.py",
            "gpus_per_node": "many",
            "csrf": csrf,
        },
    )
    assert r.status_code == 400
    assert "many" in r.text and ">train.py</textarea>" in r.text
    r = client.post("/ui/jobs/new", data={"project": "bolt-llm", "command": "true", "csrf": csrf})
    assert r.status_code == 400 and "bolt-llm" in r.text  # not her project: refused


def test_pages_show_only_what_the_api_shows(center: Center, tenants: Tenants) -> None:
    api = TestClient(create_app(center))
    bob_job = api.post(
        "/api/v1/jobs",
        json={"project": "bolt-llm", "command": ["sleep", "30"], "gpus_per_node": 1},
        headers=tenants.bob.headers,
    ).json()["id"]
    try:
        alice = browser(center, tenants.alice.token)
        hidden = alice.get(f"/ui/jobs/{bob_job}")
        assert hidden.status_code == 404 and bob_job in hidden.text  # "no job 'job_…'"
        assert api.get(f"/api/v1/jobs/{bob_job}", headers=tenants.alice.headers).status_code == 404
        assert bob_job not in alice.get("/ui/jobs").text
        projects = alice.get("/ui/projects").text
        assert "acme-vision" in projects and "bolt-llm" not in projects
        assert alice.get("/ui/projects/bolt-llm").status_code == 404
        operator = browser(center, tenants.operator.token)
        assert bob_job in operator.get("/ui/jobs").text
        assert operator.get(f"/ui/jobs/{bob_job}").status_code == 200
    finally:
        api.post(f"/api/v1/jobs/{bob_job}/cancel", headers=tenants.bob.headers)


def test_korean_pages(center: Center, tenants: Tenants) -> None:
    r = browser(center, tenants.alice.token, lang="ko-KR,ko;q=0.9").get("/ui/")
    assert '<html lang="ko"' in r.text and "클러스터" in r.text
    chosen = browser(center, tenants.alice.token, lang="ko-KR").get("/ui/lang/en?next=/ui/jobs")
    assert chosen.status_code == 303 and chosen.headers["location"] == "/ui/jobs"
    assert "axc_lang=en" in chosen.headers["set-cookie"]


def test_program_page_and_its_csv_equal_the_apis(center: Center, tenants: Tenants) -> None:
    now = datetime.now(UTC)
    with center.store.write() as s:
        prog = program(s, "Voucher", 2_400_000_000, public_share_bp=8_000)
        prj = s.query(orm.Project).filter_by(name="acme-vision").one()
        org = s.get(orm.Organization, prj.organization_id)
        org.size_class = "SME"
        prj.program_id = prog.id
        alloc = allocation(
            s,
            prj,
            prog,
            now - timedelta(days=3),
            now + timedelta(days=30),
            {"H100": (10**6, 10**8)},
        )
        charge(s, alloc, "H100", 7200, 6_000, now - timedelta(days=1))
        organization(s, "Unused Large", size_class="large")
    op = browser(center, tenants.operator.token, lang="ko")
    html = op.get("/ui/programs/Voucher")
    assert html.status_code == 200
    assert "24억원" in html.text  # the budget as Korean readers write it
    assert 'data-testid="sme-share">100.0%' in html.text
    for chart in ("burndown", "by-org", "by-sector", "by-type", "by-size"):
        assert f'id="{chart}-data"' in html.text
    with center.store.write() as s:  # another program's spending stays out of Voucher's CSV
        other = program(s, "Other", 10**9)
        bolt = s.query(orm.Project).filter_by(name="bolt-llm").one()
        theirs_alloc = allocation(
            s,
            bolt,
            other,
            now - timedelta(days=3),
            now + timedelta(days=30),
            {"H100": (10**6, 10**8)},
        )
        charge(s, theirs_alloc, "H100", 3600, 4_321, now - timedelta(days=1))
    api = TestClient(create_app(center))
    headers = tenants.operator.headers
    for page_csv, api_csv in (
        (
            "/ui/programs/Voucher/usage.csv",
            "/api/v1/reports/usage?group_by=program&group_by=organization&format=csv",
        ),
        ("/ui/programs/Voucher/burndown.csv", "/api/v1/reports/burndown/Voucher?format=csv"),
    ):
        mine, theirs = op.get(page_csv), api.get(api_csv, headers=headers)
        assert mine.status_code == theirs.status_code == 200
        # for Excel on Korean Windows: a byte-order mark, and Korean column names
        assert mine.content.startswith(b"\xef\xbb\xbf")
        mine_rows = mine.content.decode("utf-8-sig").splitlines()
        theirs_rows = theirs.text.splitlines()
        assert re.search("[가-힣]", mine_rows[0]) and not re.search("[가-힣]", theirs_rows[0])
        # the program's rows only, with the same figures as the API's
        program_rows = [r for r in theirs_rows[1:-1] if not r.startswith("Other,")]
        assert mine_rows[1:-1] == program_rows and "6000" in mine.text
        if "usage" in page_csv:
            assert "4321" in theirs.text and "4321" not in mine.text
        assert mine_rows[-1].startswith("합계,")
    english = browser(center, tenants.operator.token).get("/ui/programs/Voucher/burndown.csv")
    assert (
        english.content.decode("utf-8-sig")
        == api.get("/api/v1/reports/burndown/Voucher?format=csv", headers=headers).text
    )
    assert english.text.lstrip("\ufeff").startswith("day (Asia/Seoul),charged_won")
    # members see their own usage but no program-wide burn-down
    member = browser(center, tenants.alice.token).get("/ui/programs/Voucher")
    assert member.status_code == 200 and 'id="burndown-data"' not in member.text
    assert (
        browser(center, tenants.alice.token).get("/ui/programs/Voucher/burndown.csv").status_code
        == 403
    )


def test_unknown_objects_are_a_404_page(center: Center, tenants: Tenants) -> None:
    client = browser(center, tenants.alice.token)
    for url in ("/ui/jobs/job_nope", "/ui/requests/req_nope", "/ui/programs/nope"):
        r = client.get(url)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), url


def test_project_page_warns_at_80_and_100_percent(center: Center, tenants: Tenants) -> None:
    now = datetime.now(UTC)
    with center.store.write() as s:
        prog = program(s, "Small", 10**9)
        prj = s.query(orm.Project).filter_by(name="acme-vision").one()
        alloc = allocation(
            s,
            prj,
            prog,
            now - timedelta(days=1),
            now + timedelta(days=9),
            {"H100": (10_000, 10_000)},
        )
        charge(s, alloc, "H100", 9_000, 9_000, now)
        alloc_id = alloc.id
    page = browser(center, tenants.alice.token).get("/ui/projects/acme-vision").text
    assert 'data-testid="warnings"' in page and f"Allocation {alloc_id} is 90.0% used" in page
    # the burn-down of its grants in force, with a forecast band, from its first day
    assert 'data-testid="project-burn"' in page and 'id="burndown-canvas"' in page
    assert "₩9,000 charged" in page and "₩1,000 left" in page
    with center.store.write() as s:
        charge(s, s.get(orm.Allocation, alloc_id), "H100", 1_000, 1_000, now)
    page = browser(center, tenants.alice.token, lang="ko").get("/ui/projects/acme-vision").text
    assert f"배정 {alloc_id}이(가) 모두 소진되었습니다" in page


def test_resubmit_makes_a_new_job_with_the_same_spec(center: Center, tenants: Tenants) -> None:
    api = TestClient(create_app(center))
    spec = {"project": "acme-vision", "command": ["echo", "again"], "gpus_per_node": 0}
    first = api.post("/api/v1/jobs", json={**spec, "priority": 7}, headers=tenants.alice.headers)
    job_id = first.json()["id"]
    alice = browser(center, tenants.alice.token)
    r = alice.post(f"/ui/jobs/{job_id}/resubmit", data={"csrf": csrf_for(tenants.alice.token)})
    assert r.status_code == 303
    new_id = r.headers["location"].rsplit("/", 1)[1]
    assert new_id != job_id
    again = api.get(f"/api/v1/jobs/{new_id}", headers=tenants.alice.headers).json()
    assert again["command"] == ["echo", "again"] and again["priority"] == 7
    # the API offers the same: a new job, 201
    via_api = api.post(f"/api/v1/jobs/{job_id}/resubmit", headers=tenants.alice.headers)
    assert via_api.status_code == 201
    assert via_api.json()["id"] not in (job_id, new_id)
    assert via_api.json()["command"] == ["echo", "again"]
    # another company's member cannot resubmit (or even see) it
    bob = browser(center, tenants.bob.token)
    refused = bob.post(f"/ui/jobs/{job_id}/resubmit", data={"csrf": csrf_for(tenants.bob.token)})
    assert refused.status_code == 404


def test_cluster_page_filters_and_pages_nodes(center: Center, tenants: Tenants) -> None:
    client = browser(center, tenants.alice.token)
    everything = client.get("/ui/").text
    assert 'data-testid="node-count">2<' in everything  # A100 and H100 logical nodes
    a100 = client.get("/ui/?gpu_type=A100").text
    assert 'data-testid="node-count">1<' in a100 and "H100 \u00d7" not in a100
    none = client.get("/ui/?state=drain").text
    assert 'data-testid="node-count">0<' in none


def test_the_form_submits_a_job_that_discards_its_output_and_its_page_says_so(
    center: Center, tenants: Tenants
) -> None:
    alice = tenants.alice
    client = browser(center, alice.token)
    assert 'name="output"' in client.get("/ui/jobs/new").text
    body = {"project": alice.project, "command": "true", "output": "discard"}
    made = client.post("/ui/jobs/new", data={**body, "csrf": csrf_for(alice.token)})
    assert made.status_code == 303, made.text
    with center.store.read() as s:
        assert s.scalars(select(orm.Job.output)).all() == ["discard"]
    page = client.get(made.headers["location"])
    assert page.status_code == 200
    assert "submitted with output=discard" in page.text
    assert 'data-testid="log"' not in page.text
    korean = browser(center, alice.token, lang="ko").get(made.headers["location"])
    assert "출력을 버리도록" in korean.text
    bad = client.post(
        "/ui/jobs/new", data={**body, "output": "/dev/null", "csrf": csrf_for(alice.token)}
    )
    assert bad.status_code == 400 and "output" in bad.text


def _shown_values(html: str) -> set[str]:
    """The words in badges and select options: where a raw enum value would show."""
    badges = re.findall(r'<span class="badge[^"]*"[^>]*>([^<]*)</span>', html)
    options = re.findall(r"<option[^>]*>([^<]*)</option>", html)
    return {text.strip() for text in [*badges, *options]}


def test_korean_pages_show_words_not_raw_values_and_times_in_kst(
    center: Center, tenants: Tenants
) -> None:
    from tests.web.test_i18n import vocabularies

    api = TestClient(create_app(center))
    h = tenants.alice.headers
    base = {"project": "acme-vision", "gpu_types": ["A100"], "gpus_per_node": 2}
    running = api.post("/api/v1/jobs", json={**base, "command": ["sleep", "30"]}, headers=h)
    waiting = api.post("/api/v1/jobs", json={**base, "command": ["true"]}, headers=h)
    done = api.post("/api/v1/jobs", json={"project": "acme-vision", "command": ["true"]}, headers=h)
    ids = [r.json()["id"] for r in (running, waiting, done)]
    raw = set().union(*(v for k, v in vocabularies().items() if k not in ("size",)))
    try:
        api.get(f"/api/v1/jobs/{ids[2]}/wait", params={"timeout": 20}, headers=h)
        client = browser(center, tenants.alice.token, lang="ko-KR")
        for url in ("/ui/", "/ui/jobs", "/ui/queue", *(f"/ui/jobs/{i}" for i in ids)):
            r = client.get(url)
            assert r.status_code == 200, url
            shown = _shown_values(r.text)
            assert shown, url
            assert not shown & raw, (url, sorted(shown & raw))
            assert "KST" in r.text and "UTC" not in r.text, url
        job_page = client.get(f"/ui/jobs/{ids[2]}").text
        assert "성공" in job_page and "대기 → " in job_page  # pending → succeeded, in words
        queue_page = client.get(f"/ui/jobs/{ids[1]}").text
        assert 'data-testid="queue-position">대기열 1개 중 1번째' in queue_page
    finally:
        for job_id in ids:
            api.post(f"/api/v1/jobs/{job_id}/cancel", headers=h)


def test_error_pages_speak_the_users_language_and_keep_the_navigation(
    center: Center, tenants: Tenants
) -> None:
    korean = browser(center, tenants.alice.token, lang="ko").get("/ui/jobs/job_nope")
    assert korean.status_code == 404
    assert "찾을 수 없습니다" in korean.text and 'href="/ui/queue"' in korean.text
    assert "job_nope" in korean.text  # the service's own words stay, as details
    stale = browser(center, tenants.alice.token, lang="ko").post(
        "/ui/jobs/new", data={"project": "acme-vision", "command": "true"}
    )
    assert stale.status_code == 403 and "양식이 만료" in stale.text


def test_a_refusals_details_are_said_in_the_pages_language(
    center: Center, tenants: Tenants
) -> None:
    """Cancelling a job that already ended: the service's Conflict, its details in Korean
    (the state in words) with the navigation kept; in English the service's sentence."""
    api = TestClient(create_app(center))
    made = api.post(
        "/api/v1/jobs",
        json={"project": "acme-vision", "command": ["sleep", "30"], "gpus_per_node": 1},
        headers=tenants.alice.headers,
    )
    job_id = made.json()["id"]
    assert api.post(f"/api/v1/jobs/{job_id}/cancel", headers=tenants.alice.headers).is_success
    form = {"csrf": ""}
    korean = browser(center, tenants.alice.token)
    korean.cookies.set("axc_lang", "ko")
    form["csrf"] = csrf_for(tenants.alice.token)
    said = korean.post(f"/ui/jobs/{job_id}/cancel", data=form)
    assert said.status_code == 409
    text = html.unescape(said.text)
    assert f'data-testid="error">작업 {job_id}은(는) 이미 종료되었습니다: 취소됨<' in text
    assert "현재 상태에서는 할 수 없습니다." in text and 'href="/ui/queue"' in text
    english = browser(center, tenants.alice.token).post(f"/ui/jobs/{job_id}/cancel", data=form)
    assert english.status_code == 409
    text = html.unescape(english.text)
    assert f'data-testid="error">job {job_id} already ended: cancelled<' in text
    assert 'href="/ui/queue"' in text
    json = api.post(f"/api/v1/jobs/{job_id}/cancel", headers=tenants.alice.headers)
    assert json.status_code == 409
    assert json.json() == {"detail": f"job {job_id} already ended: cancelled"}


def test_a_refusal_of_a_form_names_the_field_as_the_form_labels_it(
    center: Center, tenants: Tenants
) -> None:
    """A submission the service refuses (InvalidInput on ``gpu_types``): the form again,
    the problem under the field's label in Korean."""
    data = {
        "project": "acme-vision",
        "command": "true",
        "gpus_per_node": "1",
        "gpu_type": "Z999",
        "csrf": "",
    }
    korean = browser(center, tenants.alice.token, lang="ko")
    data["csrf"] = csrf_for(tenants.alice.token)
    said = html.unescape(korean.post("/ui/jobs/new", data=data).text)
    assert "GPU 종류: 알 수 없는 GPU 종류 'Z999' (이 센터의 종류: " in said
    english = html.unescape(
        browser(center, tenants.alice.token).post("/ui/jobs/new", data=data).text
    )
    assert "gpu_types: unknown GPU type 'Z999' (this center has " in english


def test_a_company_files_resubmits_and_withdraws_a_request_on_the_web(
    center: Center, tenants: Tenants
) -> None:
    """The org admin files a request in a form (days of the center's zone), gets it
    returned, resubmits it edited, and withdraws it; a reviewer's view shows its worth
    in won and the applicant's size. Members are not offered the requests page."""
    from tests.api.test_allocations import setup, step

    seoul = ZoneInfo("Asia/Seoul")
    first = datetime.now(seoul).date() + timedelta(days=10)
    last = first + timedelta(days=30)
    starts_utc = datetime.combine(first, time(), seoul).astimezone(UTC)
    ends_utc = datetime.combine(last + timedelta(days=1), time(), seoul).astimezone(UTC)
    api = TestClient(create_app(center))
    staff = setup(api, tenants)  # prices: H100 4,500 won per GPU-hour
    with center.store.write() as s:
        acme = s.query(orm.Project).filter_by(name="acme-vision").one()
        s.get(orm.Organization, acme.organization_id).size_class = "SME"
    admin = browser(center, tenants.acme_admin.token, lang="ko")
    csrf = csrf_for(tenants.acme_admin.token)
    listing = admin.get("/ui/requests").text
    assert 'href="/ui/requests/new"' in listing
    form = admin.get("/ui/requests/new")
    assert form.status_code == 200 and 'name="hours.H100"' in form.text
    bad = admin.post(
        "/ui/requests/new",
        data={"csrf": csrf, "project": "acme-vision", "kind": "new", "hours.H100": "lots",
              "justification": "x"},
    )  # fmt: skip
    assert bad.status_code == 400 and "'lots'은(는) 정수가 아닙니다" in html.unescape(bad.text)
    made = admin.post(
        "/ui/requests/new",
        data={"csrf": csrf, "project": "acme-vision", "kind": "new", "hours.H100": "100",
              "starts_on": first.isoformat(), "ends_on": last.isoformat(),
              "justification": "vision inspection model"},
    )  # fmt: skip
    assert made.status_code == 303, made.text
    rid = made.headers["location"].rsplit("/", 1)[1]
    filed = api.get(f"/api/v1/allocation-requests/{rid}", headers=tenants.operator.headers).json()
    # the days are Seoul's: 00:00 KST of the first to 24:00 KST of the last
    assert datetime.fromisoformat(filed["starts_at"]) == starts_utc
    assert datetime.fromisoformat(filed["ends_at"]) == ends_utc
    assert filed["context"]["value_won"] == 100 * 4_500
    assert filed["context"]["size_class"] == "SME"
    page = browser(center, tenants.operator.token, lang="ko").get(f"/ui/requests/{rid}").text
    assert 'data-testid="value">45만원' in page and 'data-testid="size">중소기업' in page

    assert step(api, staff.pm, rid, "return", comment="say which line").is_success
    returned = admin.get(f"/ui/requests/{rid}").text
    assert 'action="/ui/requests/' + rid + '/resubmit"' in returned
    again = admin.post(
        f"/ui/requests/{rid}/resubmit",
        data={"csrf": csrf, "hours.H100": "80", "ends_on": last.isoformat(),
              "justification": "line 3 vision inspection", "comment": "line 3"},
    )  # fmt: skip
    assert again.status_code == 303
    back = api.get(f"/api/v1/allocation-requests/{rid}", headers=tenants.operator.headers).json()
    assert (back["status"], back["items"]) == ("submitted", {"H100": 80})
    assert datetime.fromisoformat(back["ends_at"]) == ends_utc  # the same last day
    gone = admin.post(f"/ui/requests/{rid}/withdraw", data={"csrf": csrf})
    assert gone.status_code == 303
    assert 'data-stage="withdrawn"' in admin.get(f"/ui/requests/{rid}").text

    member = browser(center, tenants.alice.token).get("/ui/jobs").text
    assert 'href="/ui/requests"' not in member and 'href="/ui/jobs/new"' in member
    refused = browser(center, tenants.alice.token).get("/ui/requests/new").text
    assert 'name="project"' in refused and "<option" not in refused.split('name="project"')[1][:40]


def test_a_multi_line_command_runs_as_a_script_that_stops_at_a_failure(
    center: Center, tenants: Tenants
) -> None:
    alice = tenants.alice
    client = browser(center, alice.token)
    script = "echo one\r\nfalse\r\necho never"
    made = client.post(
        "/ui/jobs/new",
        data={"project": alice.project, "command": script, "gpus_per_node": "0",
              "csrf": csrf_for(alice.token)},
    )  # fmt: skip
    assert made.status_code == 303, made.text
    job_id = made.headers["location"].rsplit("/", 1)[1]
    api = TestClient(create_app(center))
    done = api.get(f"/api/v1/jobs/{job_id}/wait", params={"timeout": 20}, headers=alice.headers)
    body = done.json()
    assert body["command"][:4] == ["bash", "-euo", "pipefail", "-c"]
    assert body["state"] == "failed" and body["exit_code"] == 1
    log = client.get(f"/ui/jobs/{job_id}/log").json()["text"]
    assert "one" in log and "never" not in log
    one_line = client.post(
        "/ui/jobs/new",
        data={"project": alice.project, "command": "echo 'a b'", "gpus_per_node": "0",
              "csrf": csrf_for(alice.token)},
    )  # fmt: skip
    again = one_line.headers["location"].rsplit("/", 1)[1]
    assert api.get(f"/api/v1/jobs/{again}", headers=alice.headers).json()["command"] == [
        "echo",
        "a b",
    ]


def test_notifications_tell_each_person_what_concerns_them(
    center: Center, tenants: Tenants
) -> None:
    """A failed job tells its owner (and nobody else); a returned request tells the
    applicant's admin; opening the page marks everything read."""
    from tests.api.test_allocations import file_request, setup, step

    api = TestClient(create_app(center))
    staff = setup(api, tenants)
    alice = tenants.alice
    failed = api.post(
        "/api/v1/jobs",
        json={"project": alice.project, "command": ["false"], "gpus_per_node": 0},
        headers=alice.headers,
    ).json()["id"]
    api.get(f"/api/v1/jobs/{failed}/wait", params={"timeout": 20}, headers=alice.headers)
    feed = api.get("/api/v1/notifications", headers=alice.headers).json()
    assert [(n["kind"], n["ref"]) for n in feed if n["at"]] == [("job.failed", failed)]
    assert api.get("/api/v1/notifications", headers=tenants.bob.headers).json() == []

    reader = browser(center, alice.token, lang="ko")
    jobs_page = reader.get("/ui/jobs").text
    assert 'data-testid="unread">1<' in jobs_page
    opened = reader.get("/ui/notifications")
    assert opened.status_code == 200 and f'href="/ui/jobs/{failed}"' in opened.text
    assert "실패했습니다" in opened.text
    reader.cookies.set("axc_seen", opened.cookies["axc_seen"])
    assert 'data-testid="unread"' not in reader.get("/ui/jobs").text  # read now

    request = file_request(api, tenants.acme_admin, "acme-vision", {"H100": 10})
    assert step(api, staff.pm, request["id"], "return", comment="more detail").is_success
    admin_feed = api.get("/api/v1/notifications", headers=tenants.acme_admin.headers).json()
    assert ("request.returned", request["id"]) in [(n["kind"], n["ref"]) for n in admin_feed]
    pm_feed = api.get("/api/v1/notifications", headers=staff.pm.headers).json()
    assert ("request.submitted", request["id"]) in [(n["kind"], n["ref"]) for n in pm_feed]
    assert all(n["kind"] != "request.returned" for n in pm_feed)  # their own step: no news


def test_project_usage_per_day_and_user_in_the_centers_days(
    center: Center, tenants: Tenants
) -> None:
    """Charges at 20:00 UTC count on the next day in Seoul; each user is a series."""
    seoul = ZoneInfo("Asia/Seoul")
    today = datetime.now(seoul).date()
    evening = datetime.combine(today - timedelta(days=2), time(20), UTC)  # 05:00 KST next day
    with center.store.write() as s:
        prog = program(s, "Usage", 10**9)
        prj = s.query(orm.Project).filter_by(name="acme-vision").one()
        alice = s.query(orm.User).filter_by(name="alice").one()
        admin = s.query(orm.User).filter_by(name="acme-admin").one()
        alloc = allocation(
            s,
            prj,
            prog,
            evening - timedelta(days=5),
            evening + timedelta(days=5),
            {"H100": (10**7, 10**8)},
        )
        for who, secs in ((alice, 7_200), (admin, 3_600), (alice, 1_800)):
            run = job(s, prj, who, evening, evening, evening, alloc=alloc)
            charge(s, alloc, "H100", secs, secs, evening, job_id=run.id)
    api = TestClient(create_app(center))
    body = api.get("/api/v1/projects/acme-vision/usage", headers=tenants.alice.headers).json()
    assert body["time_zone"] == "Asia/Seoul"
    day = (today - timedelta(days=1)).isoformat()
    assert {(r["day"], r["user"], r["gpu_seconds"]) for r in body["rows"]} == {
        (day, "alice", 9_000),
        (day, "acme-admin", 3_600),
    }
    assert (
        api.get("/api/v1/projects/acme-vision/usage", headers=tenants.bob.headers).status_code
        == 404
    )
    page = browser(center, tenants.alice.token, lang="ko").get("/ui/projects/acme-vision").text
    assert 'id="usage-data"' in page and "사용자별 일일 GPU 시간" in page
    assert "2.5" in page  # alice's 9,000 GPU-seconds as GPU-hours in the chart's table


def test_form_problems_are_said_in_the_readers_language(center: Center, tenants: Tenants) -> None:
    alice = tenants.alice
    client = browser(center, alice.token, lang="ko")
    body = {"project": alice.project, "command": "true", "csrf": csrf_for(alice.token)}
    many = client.post("/ui/jobs/new", data={**body, "gpus_per_node": "many"})
    said = html.unescape(many.text)
    assert many.status_code == 400 and "노드당 GPU: 'many'은(는) 정수가 아닙니다" in said
    zero = client.post("/ui/jobs/new", data={**body, "nodes": "0"})
    assert zero.status_code == 400 and "노드 수: 1 이상이어야 합니다" in zero.text
    quote = client.post("/ui/jobs/new", data={**body, "command": "echo 'open"})
    assert quote.status_code == 400 and "따옴표가 닫히지 않았습니다" in quote.text
    english = browser(center, alice.token).post("/ui/jobs/new", data={**body, "nodes": "0"})
    assert "Nodes: must be at least 1" in english.text


def test_a_refusal_says_what_the_role_may_not_do_in_words(center: Center, tenants: Tenants) -> None:
    from tests.api.test_allocations import file_request, setup

    api = TestClient(create_app(center))
    setup(api, tenants)
    rid = file_request(api, tenants.acme_admin, "acme-vision", {"H100": 10})["id"]
    korean = browser(center, tenants.alice.token, lang="ko").get(f"/ui/requests/{rid}")
    assert korean.status_code == 403
    said = html.unescape(korean.text)
    assert f"현재 역할(구성원)에는 {rid}의 배정 신청 조회 권한이 없습니다." in said
    assert "request.read" not in said
    english = browser(center, tenants.alice.token).get(f"/ui/requests/{rid}")
    assert f"Your role (member) may not read allocation requests {rid}." in html.unescape(
        english.text
    )
