"""Language choice, won formatting and the completeness of the message catalog."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from axcenter.web.i18n import CATALOG, negotiate, translate, won, won_words

TEMPLATES = Path(__file__).parents[2] / "src" / "axcenter" / "web" / "templates"
PAGES = Path(__file__).parents[2] / "src" / "axcenter" / "web"


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
