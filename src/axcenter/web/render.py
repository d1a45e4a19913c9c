"""Rendering pages: the Jinja2 environment, formatting filters and security headers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from axcenter.model.access import Role
from axcenter.web.i18n import LANGUAGES, moment, translate, won, won_words
from axcenter.web.session import Viewer

__all__ = ["SECURITY_HEADERS", "TEMPLATES", "chart_json", "page"]

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
    ("/ui/jobs", "nav.jobs", None),
    ("/ui/projects", "nav.projects", None),
    ("/ui/requests", "nav.requests", None),
    ("/ui/programs", "nav.programs", None),
)


def chart_json(config: Mapping[str, Any]) -> str:
    """A chart's configuration for ``<script type="application/json">``: ``<`` escaped so
    no value can close the script element."""
    return json.dumps(config, ensure_ascii=False).replace("<", "\\u003c")


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

    def why(reason: str) -> str:
        """A pending reason in words (the raw reason where the catalog has none)."""
        key = f"reason.{reason}"
        text = translate(key, lang)
        return reason if text == key else text

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
        why=why,
        won=lambda amount: won(int(amount), lang),
        won_words=lambda amount: won_words(int(amount), lang),
        moment=lambda value: moment(value, lang),
        chart_json=chart_json,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=dict(SECURITY_HEADERS))
