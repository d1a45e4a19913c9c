"""A program's rules, and the terms they give one organization's charges.

Public GPU programs price by who the company is: a regional discount (50% for companies
of the region), youth-startup terms, a rate by company size; the company pays a self-paid
share (자부담) of what is charged and the program the rest; and no organization may hold
more than a cap. These values say that, purely: ``ProgramRules`` as the store keeps them
(JSON), ``terms`` for one organization, ``charge`` for one run.

Rules, written down once (docs/accounting.md, "Program rules"):

- Modifiers are discounts (0 < discount <= 100%), never surcharges: a charge never
  exceeds the hold taken at list price. Of the modifiers that apply, the largest
  discount counts (they do not stack), the first listed on a tie.
- ``won = list - floor(list x discount_bp / 10000)``: the discount is floored, so a
  discounted charge is never rounded below what the rule says.
- ``self_paid_bp`` replaces the program's co-funding rule: public = floor(won x (10000 -
  self_paid_bp) / 10000), the company pays the rest (``money.split``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from axcenter.model.money import BP, split
from axcenter.model.rubric import Criterion, Preference, whom

__all__ = [
    "MODIFIER_KINDS",
    "Caps",
    "Modifier",
    "OrgFacts",
    "ProgramRules",
    "Terms",
    "charge",
    "terms",
    "tranche_split",
]

ModifierKind = Literal["region", "startup", "size"]
MODIFIER_KINDS: tuple[ModifierKind, ...] = ("region", "startup", "size")


@dataclass(frozen=True, slots=True)
class Modifier:
    """A discount for the organizations it ``matches``: ``region`` (the organization's
    region, case-insensitive), ``size`` (its size class) or ``startup`` (youth-startup
    organizations; ``match`` unused)."""

    kind: ModifierKind
    discount_bp: int
    match: str | None = None

    def applies(self, org: OrgFacts) -> bool:
        return org.matches(self.kind, self.match)

    @property
    def label(self) -> str:
        what = whom(self.kind, self.match)
        return f"{what} -{self.discount_bp / 100:g}%"


@dataclass(frozen=True, slots=True)
class Caps:
    """Concentration caps checked when a grant is approved (None: no cap).

    ``org_gpu_hours``: GPU-hours one organization may hold in grants not yet ended,
    across all programs; ``org_won``: won one organization may be granted by this program.
    """

    org_gpu_hours: int | None = None
    org_won: int | None = None


@dataclass(frozen=True, slots=True)
class ProgramRules:
    """Everything a program decides about its grants and charges from a moment on."""

    self_paid_bp: int | None = None
    modifiers: tuple[Modifier, ...] = ()
    caps: Caps = field(default_factory=Caps)
    #: each tranche's share of a new grant in basis points, summing to 10000; the first
    #: is released at approval, each next one after a progress report is accepted
    tranches_bp: tuple[int, ...] = (BP,)
    #: how often its running jobs are charged as they run: ``hour``, ``day``, ``off``
    #: (None: the center's ``accrual_period``)
    accrual_period: str | None = None
    #: how reviewers score a request filed under these rules (``model.rubric``), and the
    #: bonus points of the organizations the call prefers
    rubric: tuple[Criterion, ...] = ()
    preferences: tuple[Preference, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "self_paid_bp": self.self_paid_bp,
            "modifiers": [
                {"kind": m.kind, "match": m.match, "discount_bp": m.discount_bp}
                for m in self.modifiers
            ],
            "caps": {"org_gpu_hours": self.caps.org_gpu_hours, "org_won": self.caps.org_won},
            "tranches_bp": list(self.tranches_bp),
            "accrual_period": self.accrual_period,
            "rubric": [c.to_json() for c in self.rubric],
            "preferences": [p.to_json() for p in self.preferences],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProgramRules:
        caps = data.get("caps") or {}
        return cls(
            self_paid_bp=data.get("self_paid_bp"),
            modifiers=tuple(
                Modifier(kind=m["kind"], discount_bp=int(m["discount_bp"]), match=m.get("match"))
                for m in data.get("modifiers") or ()
            ),
            caps=Caps(org_gpu_hours=caps.get("org_gpu_hours"), org_won=caps.get("org_won")),
            tranches_bp=tuple(int(b) for b in data.get("tranches_bp") or (BP,)),
            accrual_period=data.get("accrual_period"),
            rubric=tuple(Criterion.from_json(c) for c in data.get("rubric") or ()),
            preferences=tuple(Preference.from_json(p) for p in data.get("preferences") or ()),
        )


@dataclass(frozen=True, slots=True)
class OrgFacts:
    """What the rules look at in an organization."""

    region: str | None = None
    size_class: str | None = None
    youth_startup: bool = False

    def matches(self, kind: str, match: str | None) -> bool:
        """Whether a rule for ``kind`` (``region``, case-insensitive; ``size``, the size
        class; ``startup``, youth startups, ``match`` unused) picks this organization:
        discounts and review preferences choose organizations alike."""
        if kind == "startup":
            return self.youth_startup
        value = self.region if kind == "region" else self.size_class
        return value is not None and match is not None and value.casefold() == match.casefold()


@dataclass(frozen=True, slots=True)
class Terms:
    """What one organization's charges are booked under."""

    discount_bp: int
    public_bp: int
    label: str


def terms(rules: ProgramRules | None, public_share_bp: int, org: OrgFacts) -> Terms:
    """The terms of ``org``'s charges under ``rules`` (None: the program's co-funding
    rule ``public_share_bp`` alone, no discount)."""
    if rules is None:
        return Terms(0, public_share_bp, "")
    best: Modifier | None = None
    for m in rules.modifiers:
        if m.applies(org) and (best is None or m.discount_bp > best.discount_bp):
            best = m
    parts = [best.label] if best is not None else []
    public_bp = public_share_bp
    if rules.self_paid_bp is not None:
        public_bp = BP - rules.self_paid_bp
    parts.append(f"self-paid {(BP - public_bp) / 100:g}%")
    return Terms(best.discount_bp if best else 0, public_bp, "; ".join(parts))


def charge(list_won: int, t: Terms) -> tuple[int, int, int]:
    """(won, public, company) of a run rated ``list_won`` at list price under ``t``."""
    won = list_won - list_won * t.discount_bp // BP
    public, company = split(won, t.public_bp)
    return won, public, company


def tranche_split(amount: int, shares_bp: tuple[int, ...]) -> list[int]:
    """``amount`` in parts by ``shares_bp``: each part floored, the last takes the rest,
    so the parts always add up to ``amount``."""
    parts = [amount * b // BP for b in shares_bp[:-1]]
    return [*parts, amount - sum(parts)]
