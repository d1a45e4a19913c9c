"""Language choice, won formatting and the completeness of the message catalog."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import get_args
from zoneinfo import ZoneInfo

import pytest

from axcenter.web.i18n import (
    CATALOG,
    duration,
    event_note,
    label,
    moment,
    negotiate,
    translate,
    won,
    won_words,
)

TEMPLATES = Path(__file__).parents[2] / "src" / "axcenter" / "web" / "templates"
PAGES = Path(__file__).parents[2] / "src" / "axcenter" / "web"
SRC = Path(__file__).parents[2] / "src" / "axcenter"


def _literals(path: str, *patterns: str) -> set[str]:
    """String values the source writes through ``patterns`` (a vocabulary with no enum)."""
    text = (SRC / path).read_text()
    found = {m for p in patterns for m in re.findall(p, text)}
    assert found, f"no value found in {path}: the pattern is stale"
    return found


def vocabularies() -> dict[str, set[str]]:
    """Every fixed vocabulary a page shows, from its source of truth."""
    from axcenter.model.access import Role
    from axcenter.model.cluster import NodeState
    from axcenter.model.jobs import JobState
    from axcenter.model.plan import PendingReason
    from axcenter.service.program_schemas import ObligationState
    from axcenter.service.schemas import RequestKind, SizeClass, WarningLevel
    from axcenter.web.pages.jobs import VIEWS

    decided = _literals("service/allocations.py", r'_decide\(\s*center, who, request_id, "(\w+)"')
    from axcenter.service.access import RULES
    from axcenter.service.mail import KINDS
    from axcenter.service.notifications import _DECISIONS, _FOR_STAFF, _JOB_ENDS
    from axcenter.service.reports import DAY_COLUMNS, TOTAL, USAGE_COLUMNS

    notices = _literals("service/obligations.py", r'kind="(\w+)"') | _literals(
        "service/monitoring.py", r'allocation,\s*"(\w+)",'
    )
    return {
        "rule": set(RULES),
        "csv": {*USAGE_COLUMNS, *DAY_COLUMNS, TOTAL, "program", "organization"},
        "notify": {f"job.{s}" for s in _JOB_ENDS}
        | {f"request.{a}" for a in (*_DECISIONS, *_FOR_STAFF, "assigned")}
        | {"grant.80%", "grant.100%", "grant.expiring"}
        | {f"notice.{k}" for k in notices},
        "state": {s.value for s in JobState},
        "node": {s.value for s in NodeState},
        "reason": {r.value for r in PendingReason},
        "role": {r.value for r in Role},
        "size": set(get_args(SizeClass)),
        "request_kind": set(get_args(RequestKind)),
        "warning": set(get_args(WarningLevel)) - {"none"},
        "view": set(VIEWS),
        "stage": _literals("service/allocations.py", r'status\s*=\s*"(\w+)"') | decided,
        "action": _literals("service/allocations.py", r'_event\(\s*session, who, row, "(\w+)"')
        | _literals("service/attachments.py", r'_step\(session, who, row, "(\w+)"')
        | decided,
        "charge": _literals("accounting/ledger.py", r'_(?:entry|row)\(\s*\w+, "(\w+)"'),
        "allocation": _literals("service/grants.py", r'status\s*=\s*"(\w+)"')
        | _literals("service/monitoring.py", r'allocation\.status\s*=\s*"(\w+)"'),
        "obligation": set(get_args(ObligationState)),
        "tranche": _literals("service/tranches.py", r'tranche\.status\s*=\s*"(\w+)"')
        | _literals("service/tranches.py", r'"(pending|released)" if'),
        "report": _literals("service/tranches.py", r'row\.status\s*=\s*"(\w+)"') | {"submitted"},
        "notice": notices,
        "use": _literals("service/monitoring.py", r'flags\.append\("(\w+)"\)'),
        "mail_kind": set(KINDS),
    }


@pytest.mark.parametrize("group", sorted(vocabularies()))
def test_every_value_of_every_vocabulary_has_korean_words(group: str) -> None:
    """A new job state, request stage, ledger kind, ... fails here until it has words."""
    values = vocabularies()[group]
    missing = sorted(v for v in values if f"{group}.{v}" not in CATALOG)
    assert not missing, f"{group} values without an entry in web/catalog.py: {missing}"
    for value in values:
        korean = label(group, value, "ko")
        assert korean != value and not re.fullmatch(r"[A-Za-z_ %0-9-]+", korean), (group, value)


def test_the_pending_reasons_say_what_the_job_lacks_in_korean() -> None:
    """The three that once said the opposite: idle devices, preemption done, enough nodes."""
    assert translate("reason.resources", "ko") == "빈 장치 부족"
    assert "대기" in translate("reason.preempting", "ko")
    assert "부족" in translate("reason.nodes", "ko")
    for reason in ("resources", "preempting", "nodes"):
        assert translate(f"reason.{reason}", "ko") not in ("유휴 장치", "선점 완료", "충분한 노드")


def test_times_show_in_the_centers_zone_with_its_name() -> None:
    at = datetime(2026, 11, 25, 18, 20, tzinfo=UTC)
    assert moment(at, "ko", ZoneInfo("Asia/Seoul")) == "2026-11-26 03:20 KST"
    assert moment(at, "en", UTC) == "2026-11-25 18:20 UTC"
    assert moment(at, "en", ZoneInfo("Europe/Berlin")) == "2026-11-25 19:20 CET"
    assert moment(date(2026, 11, 25), "ko", ZoneInfo("Asia/Seoul")) == "2026-11-25"
    assert moment(None, "ko") == "\u2013"


def test_event_notes_in_korean() -> None:
    assert event_note("admitted on n1:0,1", "ko") == "n1:0,1에 배치"
    assert event_note("cancelled by alice", "ko") == "alice 님이 취소"
    assert event_note("exit code 3", "ko") == "종료 코드 3"
    assert (
        event_note("killed after time limit 60s (killed by signal SIGTERM)", "ko")
        == "시간 제한 60초 초과로 종료 (SIGTERM 신호로 종료)"
    )
    assert event_note("cancelled (exit code 143)", "ko") == "취소됨 (종료 코드 143)"
    assert event_note("something new", "ko") == "something new"  # unknown: as written
    # the loop's staged runs (docs/engines.md, "Staged runs") and borrowed capacity
    staged = "admitted on n1:3 (borrowed capacity), to start when job_a, job_b end"
    assert event_note(staged, "ko") == "n1:3에 배치, job_a, job_b 종료 후 시작"
    assert event_note("admitted on n1:3 (borrowed capacity)", "ko") == "n1:3에 배치 (빌린 용량)"
    preempted = "withdrawn: the job it was to follow is preempted for job_c"
    assert event_note(preempted, "ko") == "철회: 뒤따를 작업이 job_c을(를) 위해 선점됨"
    overrun = "withdrawn: the job it was to follow runs past its expected end"
    assert event_note(overrun, "ko").startswith("철회:")
    assert event_note("requeued: run 2 never reached the engine", "ko").endswith("전달되지 않음")


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        (None, "ko-KR,ko;q=0.9,en-US;q=0.8", "ko"),
        (None, "en-US,en;q=0.9,ko;q=0.8", "en"),
        (None, "ja,ko;q=0.5", "ko"),  # the first language we have
        (None, "en;q=0.4,ko;q=0.7", "ko"),  # by q, not by position
        (None, "fr", "en"),
        (None, None, "en"),
        (None, "ko;q=0", "en"),  # q=0: not acceptable
        ("en", "ko-KR", "en"),  # the page's choice wins over the browser's
        ("xx", "ko", "ko"),  # an unknown cookie is ignored
    ],
)
def test_negotiate(cookie: str | None, header: str | None, expected: str) -> None:
    assert negotiate(cookie, header) == expected


@pytest.mark.parametrize(
    ("amount", "ko", "en", "ko_words"),
    [
        (0, "0원", "₩0", "0원"),
        (1_234_567, "1,234,567원", "₩1,234,567", "123만 4,567원"),
        (2_400_000_000, "2,400,000,000원", "₩2,400,000,000", "24억원"),
        (1_234_567_890, "1,234,567,890원", "₩1,234,567,890", "12억 3,456만 7,890원"),
        (120_000_000_000, "120,000,000,000원", "₩120,000,000,000", "1,200억원"),
        (-50_000, "-50,000원", "-₩50,000", "-5만원"),
    ],
)
def test_won(amount: int, ko: str, en: str, ko_words: str) -> None:
    assert won(amount, "ko") == ko
    assert won(amount, "en") == en
    assert won_words(amount, "ko") == ko_words
    assert won_words(amount, "en") == en


def test_every_entry_has_both_languages() -> None:
    for key, (en, ko) in CATALOG.items():
        assert en.strip() and ko.strip(), key
        assert translate(key, "ko") == ko and translate(key, "en") == en


def test_every_key_the_pages_use_is_in_the_catalog() -> None:
    used: set[str] = set()
    for path in [*TEMPLATES.glob("*.html"), *PAGES.rglob("*.py")]:
        text = path.read_text()
        used |= set(re.findall(r"\bt\('([a-z_]+\.[a-z_0-9]+)'\)", text))
        used |= set(re.findall(r'translate\("([a-z_]+\.[a-z_0-9]+)"', text))
        used |= set(re.findall(r'"([a-z]+\.[a-z_]+)"\)\s*$', text, re.M)) & set(CATALOG)
    assert used, "the pattern found no key: the test would pass vacuously"
    missing = sorted(k for k in used if k not in CATALOG)
    assert not missing, f"keys used but not in the catalog: {missing}"


def test_every_pending_reason_and_role_has_words() -> None:
    from axcenter.model.access import Role
    from axcenter.model.plan import PendingReason

    for reason in PendingReason:
        assert f"reason.{reason.value}" in CATALOG
    for role in Role:
        assert f"role.{role.value}" in CATALOG


@pytest.mark.parametrize(
    ("seconds", "en", "ko"),
    [
        (0, "0 s", "0초"),
        (45, "45 s", "45초"),
        (3_600, "1 h", "1시간"),
        (5_400, "1 h 30 min", "1시간 30분"),
        (86_400 + 300, "1 d", "1일"),  # 1 d 0 h 5 min: the two leading units
        (2 * 86_400 + 4 * 3_600 + 59, "2 d 4 h", "2일 4시간"),
    ],
)
def test_durations_for_people(seconds: int, en: str, ko: str) -> None:
    assert duration(seconds, "en") == en and duration(seconds, "ko") == ko


def test_every_form_label_and_problem_has_words() -> None:
    from axcenter.web.problems import KINDS, LABELS

    missing = sorted(k for k in [*LABELS.values(), *KINDS.values()] if k not in CATALOG)
    assert not missing, missing


# -- the service's refusals (web/messages.py) --------------------------------------------

#: the ServiceError classes a use case raises, and where each takes its template
_RAISED = {"InvalidInput": 1, "NotFound": 0, "Conflict": 0, "Forbidden": 0, "TooManyRequests": 0}
_RAISED |= {"ServiceError": 0, "RubricError": 1, "ArrayError": 0}  # the model's, re-raised


def _raise_sites(root: Path) -> tuple[list[tuple[str, list[str], set[str]]], list[str]]:
    """Every ``raise <ServiceError class>(...)`` under ``root``: (where, its templates, the
    parameters it passes), and the sites whose template is not a literal (nor a re-raised
    error's ``template`` with its ``params``)."""
    import ast

    sites: list[tuple[str, list[str], set[str]]] = []
    odd: list[str] = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (
                isinstance(node, ast.Raise)
                and isinstance(node.exc, ast.Call)
                and isinstance(node.exc.func, ast.Name)
                and node.exc.func.id in _RAISED
            ):
                continue
            call, where = node.exc, f"{path.relative_to(root)}:{node.lineno}"
            index = _RAISED[call.func.id]  # type: ignore[union-attr]
            arg = call.args[index] if len(call.args) > index else None
            params = {k.arg for k in call.keywords if k.arg is not None}
            options = [arg.body, arg.orelse] if isinstance(arg, ast.IfExp) else [arg]
            if all(isinstance(o, ast.Constant) and isinstance(o.value, str) for o in options):
                sites.append((where, [o.value for o in options], params))  # type: ignore[union-attr]
            elif not (
                isinstance(arg, ast.Attribute)
                and arg.attr == "template"
                and any(k.arg is None for k in call.keywords)  # **exc.params
            ):
                odd.append(where)
    return sites, odd


def _untranslated(root: Path) -> list[str]:
    """What the Korean catalog of messages lacks or says with other parameters."""
    from axcenter.web.messages import MESSAGES, placeholders

    sites, odd = _raise_sites(root)
    problems = [f"{w}: the template is not a literal string" for w in odd]
    for where, templates, params in sites:
        for template in templates:
            korean = MESSAGES.get(template)
            if korean is None:
                problems.append(f"{where}: no Korean for {template!r}")
                continue
            english = placeholders(template)
            said = {
                p.removesuffix("_ko") + "_en" if p.endswith("_ko") else p
                for p in placeholders(korean)
            }
            if said != english:
                problems.append(
                    f"{where}: {template!r} names {sorted(english)}, Korean {sorted(said)}"
                )
            if not placeholders(korean) <= params or not english <= params:
                problems.append(
                    f"{where}: {template!r} is raised without {sorted(english - params)}"
                )
    return problems


def test_every_refusal_of_the_service_has_korean_words() -> None:
    """Each ``raise`` of a ServiceError passes an English template (the message id) that
    ``web/messages.py`` says in Korean, with the same parameters, all passed."""
    sites, _ = _raise_sites(SRC)
    assert len(sites) > 250, len(sites)  # the walker still finds the raise sites
    problems = _untranslated(SRC)
    assert not problems, "\n".join(problems)


def test_the_walker_fails_on_a_new_untranslated_refusal(tmp_path: Path) -> None:
    (tmp_path / "new.py").write_text(
        "from axcenter.service.errors import Conflict, InvalidInput\n"
        "def f(job_id: str, why: str) -> None:\n"
        "    if why:\n"
        "        raise Conflict('job {job_id} is too shiny', job_id=job_id)\n"
        "    if job_id:\n"
        "        raise InvalidInput('x', f'job {job_id} is odd')\n"
        "    raise Conflict('no job {job_id!r}')\n"
    )
    problems = _untranslated(tmp_path)
    assert sorted(problems) == [
        "new.py:4: no Korean for 'job {job_id} is too shiny'",
        "new.py:6: the template is not a literal string",
        "new.py:7: 'no job {job_id!r}' is raised without ['job_id']",
    ]


def test_every_message_of_the_catalog_is_raised_somewhere() -> None:
    """No stale entry: a reworded message is translated again, not left behind."""
    from axcenter.web.messages import MESSAGES

    raised = {t for _, templates, _ in _raise_sites(SRC)[0] for t in templates}
    assert not sorted(set(MESSAGES) - raised)


def test_the_words_a_message_takes_as_parameters_are_said_in_korean() -> None:
    """The English words use cases pass as a message's verb, action or object."""
    from axcenter.model.arrays import ARRAY_FORMS
    from axcenter.model.rubric import PreferenceKind
    from axcenter.model.terms import ModifierKind
    from axcenter.service.holds import _PARTICIPLES
    from axcenter.web.messages import WORDS

    words = {*_PARTICIPLES, *_PARTICIPLES.values(), *get_args(ModifierKind)}
    words |= {*get_args(PreferenceKind), ARRAY_FORMS, "its single user"}
    words |= _literals("service/allocations.py", r'_expect\(row, [^,]+, "([\w ]+)"\)')
    words |= _literals("service/allocations.py", r'_decide\(\s*center, who, request_id, "(\w+)"')
    words |= _literals("service/tranches.py", r'_decide\(session, who, report_id, "(\w+)"\)')
    words |= _literals(
        "service/policy.py", r'_(?:require_operator|changeable_project)\([^)]*"([\w ]+)"\)'
    )
    things = _literals("service/access.py", r'kind="(\w+)"')
    for path in ("service/audit.py", "service/programs.py"):
        things |= _literals(path, r'center_target\("([\w ]+)"\)')
    missing = sorted((words | things) - set(WORDS))
    assert not missing, missing


def test_a_refusal_in_korean_says_its_parameters_in_words() -> None:
    from axcenter.service.errors import Conflict, Count, InvalidInput, NotFound, Span
    from axcenter.web.messages import detail

    ended = Conflict("job {job_id} already ended: {state}", job_id="job_7", state="cancelled")
    assert detail(ended, "en") == "job job_7 already ended: cancelled" == ended.message
    assert detail(ended, "ko") == "작업 job_7은(는) 이미 종료되었습니다: 취소됨"
    budget = Conflict(
        "program {name!r} has already granted {allocated_won:,} won: its budget cannot drop "
        "to {budget_won:,} won",
        name="p",
        allocated_won=1_500_000,
        budget_won=1_000,
    )
    assert budget.message.endswith("granted 1,500,000 won: its budget cannot drop to 1,000 won")
    assert "1,500,000원을(를) 배정" in detail(budget, "ko") and "1,000원(으)로" in detail(
        budget, "ko"
    )
    nodes = InvalidInput(
        "nodes",
        "{nodes} requested, the center has {center_nodes}",
        nodes=Count(3, "node"),
        center_nodes=Count(1, "node"),
    )
    assert nodes.message == "nodes: 3 nodes requested, the center has 1 node"
    assert detail(nodes, "ko") == "노드 수: 노드 3개를 요청했지만, 센터의 노드는 1개입니다"
    limit = InvalidInput(
        "time_limit_s",
        "{time_limit} is above the center's maximum of {max_time_limit_s}",
        time_limit=Span(90_000),
        max_time_limit_s=Span(86_400),
    )
    assert limit.message == "time_limit_s: 1 day 1 h is above the center's maximum of 1 day"
    assert (
        detail(limit, "ko")
        == "시간 제한 (분): 1일 1시간은(는) 센터 최대 시간 제한 1일을(를) 넘습니다"
    )
    unknown = NotFound("a message nobody translated {x}", x=1)
    assert detail(unknown, "ko") == "a message nobody translated 1"  # English, not a crash
