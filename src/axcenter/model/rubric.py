"""A program's review rubric and its preferences in review, and the totals they give.

A call (공고) says how requests are judged: criteria with weights, each scored on a scale
(e.g. "technical merit" 40%, "feasibility" 30%, "impact" 30%, each 1..5), and who is
preferred (e.g. 5 bonus points for organizations of the program's region). These values
say that, purely:

- a review scores every criterion from 1 to its ``scale``; its **weighted total** is in
  points out of 100: ``100 x sum(weight x score / scale) / sum(weight)``, rounded to two
  decimals (a review of full marks is 100, whatever the weights);
- a request's total is the mean of its reviewers' weighted totals plus the **preference
  points** of the applicant's organization: the sum of the preferences that apply to it
  (they stack, unlike discounts: a call may prefer both the region and startups), each
  shown by its label beside the total, so nobody reads a bonus as merit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from axcenter.model.terms import OrgFacts

__all__ = [
    "Criterion",
    "Preference",
    "RubricError",
    "preference_points",
    "weighted_total",
    "whom",
]

PreferenceKind = Literal["region", "startup", "size"]


class RubricError(ValueError):
    """Scores that do not fit the rubric: ``field`` names the criterion (or ``scores``);
    raised with its English template and parameters, as ``service.errors`` are."""

    def __init__(self, field: str, template: str, /, **params: object) -> None:
        super().__init__(template.format(**params))
        self.field, self.template, self.params = field, template, params


@dataclass(frozen=True, slots=True)
class Criterion:
    """One thing reviewers score: ``key`` (a short name), what it asks (``label``), its
    ``weight`` (a positive integer, relative to the others) and its ``scale`` (scores are
    1..scale)."""

    key: str
    label: str
    weight: int
    scale: int = 5

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "weight": self.weight, "scale": self.scale}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Criterion:
        return cls(
            key=str(data["key"]),
            label=str(data.get("label") or data["key"]),
            weight=int(data["weight"]),
            scale=int(data.get("scale") or 5),
        )


def whom(kind: str, match: str | None) -> str:
    """The organizations a rule of ``kind`` picks, as its label names them."""
    return "youth startup" if kind == "startup" else f"{kind} {match}"


@dataclass(frozen=True, slots=True)
class Preference:
    """Bonus ``points`` added to the total of requests of the organizations it matches:
    ``region`` (case-insensitive), ``size`` (size class) or ``startup`` (youth-startup)."""

    kind: PreferenceKind
    points: int
    match: str | None = None

    def applies(self, org: OrgFacts) -> bool:
        return org.matches(self.kind, self.match)

    @property
    def label(self) -> str:
        what = whom(self.kind, self.match)
        return f"{what} +{self.points}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "match": self.match, "points": self.points}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Preference:
        return cls(kind=data["kind"], points=int(data["points"]), match=data.get("match"))


def weighted_total(criteria: Sequence[Criterion], scores: Mapping[str, int]) -> float:
    """The weighted total (points out of 100) of ``scores``, one per criterion, each
    1..scale; RubricError naming the first criterion missing, unknown or out of range."""
    if not criteria:
        raise RubricError("scores", "the program has no rubric: give one score")
    keys = {c.key for c in criteria}
    for key in scores:
        if key not in keys:
            raise RubricError(
                f"scores.{key}",
                "the rubric has no criterion {key!r} (it has {keys})",
                key=key,
                keys=", ".join(sorted(keys)),
            )
    weighted = 0.0
    for c in criteria:
        if c.key not in scores:
            raise RubricError(
                f"scores.{c.key}", "score {label!r} (1..{scale})", label=c.label, scale=c.scale
            )
        score = scores[c.key]
        if not 1 <= score <= c.scale:
            raise RubricError(
                f"scores.{c.key}",
                "{label!r} is scored 1..{scale}, not {score}",
                label=c.label,
                scale=c.scale,
                score=score,
            )
        weighted += c.weight * score / c.scale
    return round(100 * weighted / sum(c.weight for c in criteria), 2)


def preference_points(preferences: Sequence[Preference], org: OrgFacts) -> tuple[int, list[str]]:
    """The bonus points ``org`` gets and the labels of the preferences that give them."""
    applying = [p for p in preferences if p.applies(org)]
    return sum(p.points for p in applying), [p.label for p in applying]
