"""Korean and English: language choice, labels for fixed vocabularies, won and times as
people write them.

Korean is the default when the browser asks for it (``Accept-Language``); a choice made
on the page is kept in a cookie. Won amounts: Korean ``1,234,567원`` in tables and
``12억 3,456만 7,890원`` in headline figures; English ``₩1,234,567``. Times are stored in
UTC and shown in the center's time zone (``Settings.time_zone``, Asia/Seoul by default),
always with the zone's name, so nobody has to guess.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, tzinfo
from typing import Final

from axcenter.web.catalog import CATALOG

__all__ = [
    "CATALOG",
    "DEFAULT",
    "LANGUAGES",
    "duration",
    "event_note",
    "label",
    "moment",
    "negotiate",
    "reviewer_name",
    "translate",
    "won",
    "won_words",
    "zone_name",
]

LANGUAGES: Final = ("ko", "en")
DEFAULT: Final = "en"


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The page language: the cookie's choice, else the browser's first of ``LANGUAGES``
    by preference (``q``), else English."""
    if cookie in LANGUAGES:
        return cookie
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > 0:
            ranked.append((-q, i, primary))
    return min(ranked)[2] if ranked else DEFAULT


def translate(key: str, lang: str) -> str:
    """The text of ``key``; an unknown key shows itself (a test checks there are none)."""
    entry = CATALOG.get(key)
    if entry is None:
        return key
    return entry[1] if lang == "ko" else entry[0]


def won(amount: int, lang: str) -> str:
    """Exact won with digit grouping: ``1,234,567원`` or ``₩1,234,567``."""
    if lang == "ko":
        return f"{amount:,}원"
    sign = "-" if amount < 0 else ""
    return f"{sign}₩{abs(amount):,}"


def won_words(amount: int, lang: str) -> str:
    """Headline won: Korean groups by 억 (10^8) and 만 (10^4): ``12억 3,456만 7,890원``;
    English keeps the exact figure."""
    if lang != "ko":
        return won(amount, lang)
    sign = "-" if amount < 0 else ""
    rest = abs(amount)
    eok, rest = divmod(rest, 10**8)
    man, one = divmod(rest, 10**4)
    parts = []
    if eok:
        parts.append(f"{eok:,}억")
    if man:
        parts.append(f"{man:,}만")
    if one or not parts:
        parts.append(f"{one:,}")
    return sign + " ".join(parts) + "원"


def label(group: str, value: str | None, lang: str) -> str:
    """A value of a fixed vocabulary (``state``, ``node``, ``stage``, ...) in words; a
    value the catalog lacks shows as it is (``tests/web/test_i18n.py`` checks there is none)."""
    if value is None:
        return "\u2013"
    key = f"{group}.{value}"
    return translate(key, lang) if key in CATALOG else value


#: the free-text notes the control loop, the executor and the service write on a job
#: (``detail``: a note itself, said in turn)
_NOTES = (
    (
        re.compile(
            r"^admitted on (?P<where>.+?)(?: \(borrowed capacity\))?,"
            r" to start when (?P<jobs>.+) end$"
        ),
        "event.staged",
    ),
    (re.compile(r"^admitted on (?P<where>.+) \(borrowed capacity\)$"), "event.admitted_borrowed"),
    (re.compile(r"^admitted on (?P<where>.+)$"), "event.admitted_on"),
    (
        re.compile(r"^withdrawn: the job it was to follow runs past its expected end$"),
        "event.withdrawn_overrun",
    ),
    (
        re.compile(r"^withdrawn: the job it was to follow is preempted for (?P<job>\S+)$"),
        "event.withdrawn_preempted",
    ),
    (
        re.compile(r"^requeued: its staged run was withdrawn at a restart of the service$"),
        "event.withdrawn_restart",
    ),
    (re.compile(r"^requeued: run (?P<n>\d+) never reached the engine$"), "event.never_handed"),
    (re.compile(r"^cancelled by (?P<who>\S+)$"), "event.cancelled_by"),
    (re.compile(r"^submitted$"), "event.submitted"),
    (re.compile(r"^started$"), "event.started"),
    (re.compile(r"^exit code (?P<code>-?\d+)$"), "event.exit_code"),
    (re.compile(r"^exit status unknown$"), "event.exit_unknown"),
    (re.compile(r"^killed by signal (?P<signal>\S+)$"), "event.signal"),
    (
        re.compile(r"^killed after time limit (?P<limit>\d+)s \((?P<detail>.+)\)$"),
        "event.time_limit",
    ),
    (re.compile(r"^preempted to reclaim quota for (?P<job>\S+)$"), "event.reclaimed"),
    (re.compile(r"^requeued: service restarted$"), "event.restarted"),
    (re.compile(r"^lost: executor shut down \((?P<detail>.+)\)$"), "event.lost"),
    (re.compile(r"^(?P<state>cancelled|preempted) \((?P<detail>.+)\)$"), "event.outcome"),
)


def event_note(note: str | None, lang: str) -> str:
    """A job's note in the page's language where it has a known shape, else as written."""
    if not note:
        return ""
    for pattern, key in _NOTES:
        found = pattern.match(note)
        if found:
            parts = found.groupdict()
            if "detail" in parts:
                parts["detail"] = event_note(parts["detail"], lang)
            if "state" in parts:
                parts["state"] = label("state", parts["state"], lang)
            return translate(key, lang).format(**parts)
    return note


#: a reviewer's pseudonym as the service writes it (``service.requests.PSEUDONYM``)
_PSEUDONYM = re.compile(r"reviewer (?P<n>\d+)")


def reviewer_name(name: str, lang: str) -> str:
    """A reviewer's name, or its pseudonym (``reviewer 2``) in the page's language."""
    found = _PSEUDONYM.fullmatch(name)
    return translate("requests.reviewer_n", lang).format(**found.groupdict()) if found else name


def zone_name(zone: tzinfo, at: datetime | None = None) -> str:
    """The zone's abbreviation at ``at`` (now by default): ``KST``, ``UTC``, ``CET``."""
    moment_ = (at or datetime.now(UTC)).astimezone(zone)
    return moment_.tzname() or str(zone)


def moment(value: datetime | date | None, lang: str, zone: tzinfo = UTC) -> str:
    """A stored (UTC) time in ``zone``, with the zone: ``2026-11-26 03:20 KST`` (the same
    in both languages); a date as ``2026-11-26``."""
    del lang
    if value is None:
        return "\u2013"
    if isinstance(value, datetime):
        local = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(zone)
        return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"
    return value.isoformat()


def duration(seconds: float | None, lang: str) -> str:
    """A span as people say it: ``1 h 30 min`` / ``1시간 30분``, ``2 d 4 h`` / ``2일 4시간``,
    ``45 s`` / ``45초`` (two units at most, the rest dropped)."""
    if seconds is None:
        return "\u2013"
    rest = round(seconds)
    units = (("d", "일", 86_400), ("h", "시간", 3_600), ("min", "분", 60), ("s", "초", 1))
    parts: list[str] = []
    for en, ko, size in units:
        count, rest = divmod(rest, size)
        if count and len(parts) < 2:
            parts.append(f"{count}{ko}" if lang == "ko" else f"{count} {en}")
        elif parts:
            break  # keep the two units next to each other: 1 d 0 h 5 min is 1 d
    if not parts:
        return "0초" if lang == "ko" else "0 s"
    return " ".join(parts)
