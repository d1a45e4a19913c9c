"""Rendering pages: the Jinja2 environment, formatting filters and security headers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import tzinfo
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from axcenter.model.access import Role
from axcenter.service.notifications import unread as count_unread
from axcenter.web.i18n import (
    LANGUAGES,
    duration,
    event_note,
    label,
    moment,
    reviewer_name,
    translate,
    won,
    won_words,
    zone_name,
)
from axcenter.web.session import Viewer, seen

__all__ = ["SECURITY_HEADERS", "TEMPLATES", "center_zone", "chart_json", "page"]

TEMPLATES = Path(__file__).parent / "templates"

#: no inline script, nothing from elsewhere, no framing; pages are private: not cached
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

#: (path, catalog key, roles that see the entry; None: everyone)
NAV: tuple[tuple[str, str, frozenset[Role] | None], ...] = (
    ("/ui/", "nav.cluster", None),
    ("/ui/queue", "nav.queue", None),
    # reviewers run no jobs: their Jobs page would always be empty
    (
        "/ui/jobs",
        "nav.jobs",
        frozenset({Role.OPERATOR, Role.PROGRAM_MANAGER, Role.ORG_ADMIN, Role.MEMBER}),
    ),
    ("/ui/projects", "nav.projects", None),
    # members read no requests (``request.read``): the page would always be empty
    (
        "/ui/requests",
        "nav.requests",
        frozenset({Role.OPERATOR, Role.PROGRAM_MANAGER, Role.ORG_ADMIN, Role.REVIEWER}),
    ),
    ("/ui/programs", "nav.programs", None),
    # reviewers read no usage (``service.usage``)
    (
        "/ui/usage",
        "nav.usage",
        frozenset({Role.OPERATOR, Role.PROGRAM_MANAGER, Role.ORG_ADMIN, Role.MEMBER}),
    ),
    ("/ui/notifications", "nav.notifications", None),
)


def chart_json(config: Mapping[str, Any]) -> str:
    """A chart's configuration for ``<script type="application/json">``: ``<`` escaped so
    no value can close the script element."""
    return json.dumps(config, ensure_ascii=False).replace("<", "\\u003c")


def center_zone(request: Request) -> tzinfo:
    """The center's time zone (``Settings.time_zone``), in which pages show times."""
    zone: tzinfo = request.app.state.center.settings.zone
    return zone


def page(
    request: Request,
    viewer: Viewer | None,
    template: str,
    *,
    lang: str,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    def t(key: str) -> str:
        return translate(key, lang)

    zone = center_zone(request)
    unread = 0
    if viewer is not None and request.headers.get("x-refresh") is None:
        unread = count_unread(request.app.state.center, viewer.who, seen(request))
    html = _env.get_template(template).render(
        request=request,
        viewer=viewer,
        lang=lang,
        languages=LANGUAGES,
        path=request.url.path,
        nav=[
            (href, key)
            for href, key, roles in NAV
            if roles is None or (viewer is not None and viewer.role in roles)
        ],
        t=t,
        why=lambda reason: label("reason", reason, lang),
        won=lambda amount: won(int(amount), lang),
        won_words=lambda amount: won_words(int(amount), lang),
        moment=lambda value: moment(value, lang, zone),
        zone=zone_name(zone),
        label=lambda group, value: label(group, value, lang),
        note=lambda text: event_note(text, lang),
        duration=lambda seconds: duration(seconds, lang),
        reviewer_name=lambda name: reviewer_name(name, lang),
        chart_json=chart_json,
        unread=unread,
        live_version=getattr(request.state, "live_version", 0),
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=dict(SECURITY_HEADERS))
