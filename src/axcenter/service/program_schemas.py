"""API bodies of running a program: its rules, grant tranches and progress reports,
outcome-survey forms and answers, obligations and notices, settlement and statements.

Kept apart from ``schemas`` (which is split by area as areas are touched).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from axcenter.model.money import BP

__all__ = [
    "CapsIn",
    "GrantActionIn",
    "GrantNoticeOut",
    "GrantUseListOut",
    "GrantUseOut",
    "ModifierIn",
    "ObligationOut",
    "ObligationsOut",
    "ProgramRulesIn",
    "ProgramRulesListOut",
    "ProgramRulesOut",
    "ProgressReportIn",
    "ProgressReportListOut",
    "ProgressReportOut",
    "ReclaimIn",
    "ReportDecisionIn",
    "SurveyAnswerIn",
    "SurveyAnswerListOut",
    "SurveyAnswerOut",
    "SurveyDueOut",
    "SurveyFieldIn",
    "SurveyFormIn",
    "SurveyFormListOut",
    "SurveyFormOut",
    "TrancheOut",
    "TranchesOut",
]

Discount = Annotated[int, Field(ge=1, le=BP)]
Share = Annotated[int, Field(ge=0, le=BP)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
Comment = Annotated[str, StringConstraints(max_length=2000)]


# -- rules ----------------------------------------------------------------------------------


class ModifierIn(BaseModel):
    """A discount: ``region`` (``match``: the region's name), ``size`` (``match``: SME, mid
    or large) or ``startup`` (youth-startup organizations; no ``match``)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["region", "startup", "size"]
    match: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    discount_bp: Discount


class CapsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: GPU-hours one organization may hold in grants not yet ended, across all programs
    org_gpu_hours: Annotated[int, Field(ge=1)] | None = None
    #: won one organization may be granted by this program
    org_won: Annotated[int, Field(ge=1)] | None = None


class CriterionIn(BaseModel):
    """One criterion of a review rubric: scored 1..``scale``, weighing ``weight``."""

    model_config = ConfigDict(extra="forbid")

    key: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    label: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    weight: Annotated[int, Field(ge=1, le=1000)]
    scale: Annotated[int, Field(ge=2, le=100)] = 5


class PreferenceIn(BaseModel):
    """Bonus points in review for ``region`` (``match``: its name), ``size`` (``match``:
    SME, mid or large) or ``startup`` (youth-startup organizations; no ``match``)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["region", "startup", "size"]
    match: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    points: Annotated[int, Field(ge=1, le=100)]


def _rubric(criteria: list[CriterionIn]) -> list[CriterionIn]:
    keys = [c.key for c in criteria]
    if len(set(keys)) != len(keys):
        raise ValueError("each criterion of a rubric has a key of its own")
    return criteria


def _tranches(shares: list[int]) -> list[int]:
    if sum(shares) != BP:
        raise ValueError(f"tranche shares must add up to 10000 basis points, not {sum(shares)}")
    return shares


class ProgramRulesIn(BaseModel):
    """A program's rules from ``effective_from`` (default now; never in the past) on."""

    model_config = ConfigDict(extra="forbid")

    #: the company's share of every charge (자부담); None: the program's public_share_bp
    self_paid_bp: Share | None = None
    modifiers: Annotated[list[ModifierIn], Field(max_length=20)] = []
    caps: CapsIn = CapsIn()
    tranches_bp: Annotated[
        list[Annotated[int, Field(ge=1, le=BP)]],
        Field(min_length=1, max_length=12),
        AfterValidator(_tranches),
    ] = [BP]
    #: how often running jobs are charged as they run (hour, day, off); None: the center's
    accrual_period: Literal["hour", "day", "off"] | None = None
    #: how reviewers score requests filed under these rules (none: one score 1..5)
    rubric: Annotated[list[CriterionIn], Field(max_length=20), AfterValidator(_rubric)] = []
    #: bonus points in review (regional preference and the like), added to the total
    preferences: Annotated[list[PreferenceIn], Field(max_length=20)] = []
    effective_from: datetime | None = None


class ProgramRulesOut(BaseModel):
    id: str
    program: str
    effective_from: datetime
    #: the rules charged and granted under at the time asked (default now)
    in_force: bool
    self_paid_bp: int | None
    modifiers: list[dict[str, Any]]
    caps: dict[str, int | None]
    tranches_bp: list[int]
    accrual_period: str | None = None
    rubric: list[dict[str, Any]] = []
    preferences: list[dict[str, Any]] = []
    created_by: str | None
    created_at: datetime


class ProgramRulesListOut(BaseModel):
    items: list[ProgramRulesOut]


# -- tranches and progress reports ----------------------------------------------------------


class TrancheOut(BaseModel):
    seq: int
    #: GPU type -> GPU-hours of this part (GPU-seconds / 3600)
    gpu_hours: dict[str, float]
    gpu_seconds: int
    won: int
    #: released, pending (after its report is accepted) or withdrawn (taken back)
    status: str
    report_due_at: datetime | None
    released_at: datetime | None


class ProgressReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    summary: Text


class ReportDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Comment = ""


class ProgressReportOut(BaseModel):
    id: str
    allocation_id: str
    project: str
    tranche_seq: int
    summary: str
    #: submitted, accepted (its tranche was released) or returned (submit another)
    status: str
    submitted_by: str
    submitted_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_comment: str


class ProgressReportListOut(BaseModel):
    items: list[ProgressReportOut]


class TranchesOut(BaseModel):
    allocation_id: str
    project: str
    program: str
    tranches: list[TrancheOut]
    reports: list[ProgressReportOut]


# -- outcome surveys ------------------------------------------------------------------------

_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def _key(value: str) -> str:
    if not _KEY.match(value):
        raise ValueError("a field key is lower-case letters, digits and _ (e.g. papers)")
    return value


class SurveyFieldIn(BaseModel):
    """One question: ``count`` (a whole number: papers, patents, jobs), ``won`` (an
    amount: revenue, investment), ``yes_no``, or ``text``."""

    model_config = ConfigDict(extra="forbid")

    key: Annotated[str, AfterValidator(_key)]
    label_en: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    label_ko: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    kind: Literal["count", "won", "yes_no", "text"]
    required: bool = True


def _unique_keys(fields: list[SurveyFieldIn]) -> list[SurveyFieldIn]:
    keys = [f.key for f in fields]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(f"field keys must be unique: {', '.join(dup)}")
    return fields


class SurveyFormIn(BaseModel):
    """A form every project funded by the program answers by each of ``due_dates``
    (rounds named by the date) and, with ``at_end``, once more within
    ``FINAL_GRACE_DAYS`` of its grant's end (round ``final``)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    fields: Annotated[
        list[SurveyFieldIn], Field(min_length=1, max_length=60), AfterValidator(_unique_keys)
    ]
    due_dates: Annotated[list[date], Field(max_length=24)] = []
    at_end: bool = True


class SurveyFormOut(BaseModel):
    id: str
    program: str
    name: str
    fields: list[dict[str, Any]]
    due_dates: list[date]
    at_end: bool
    created_at: datetime


class SurveyFormListOut(BaseModel):
    items: list[SurveyFormOut]


class SurveyAnswerIn(BaseModel):
    """A project's answers for one round (a due date ``YYYY-MM-DD``, or ``final``); a
    later answer for the same round corrects it, and both stay in the history."""

    model_config = ConfigDict(extra="forbid")

    project: str
    round: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    answers: dict[str, Any]


class SurveyAnswerOut(BaseModel):
    id: int
    form: str
    project: str
    round: str
    answers: dict[str, Any]
    submitted_by: str
    submitted_at: datetime
    #: the latest answer of its round (the one that counts)
    current: bool


class SurveyAnswerListOut(BaseModel):
    items: list[SurveyAnswerOut]


# -- obligations and notices ----------------------------------------------------------------

#: where an obligation stands
ObligationState = Literal["not_due", "due", "overdue", "submitted", "done"]


class SurveyDueOut(BaseModel):
    form: str
    round: str
    due_at: datetime
    state: ObligationState


class ObligationOut(BaseModel):
    """What one grant owes its program, and where each thing stands."""

    allocation_id: str
    project: str
    organization: str
    status: str
    ends_at: datetime
    tranches_released: int
    tranches_total: int
    #: the next tranche's progress report (None: every tranche is released)
    report_seq: int | None
    report_due_at: datetime | None
    report_state: ObligationState | None
    surveys: list[SurveyDueOut]
    overdue: int


class ObligationsOut(BaseModel):
    program: str
    at: datetime
    items: list[ObligationOut]
    #: grants with something overdue
    overdue_grants: int


class GrantNoticeOut(BaseModel):
    id: int
    allocation_id: str
    project: str
    #: reminder, warning, suspension, resumption, reclaim
    kind: str
    subject: str
    reason: str
    evidence: dict[str, Any]
    gpu_seconds: int
    won: int
    actor: str | None
    at: datetime


# -- use monitoring and take-back -----------------------------------------------------------


class GrantUseOut(BaseModel):
    """How a grant is used against how it would be used evenly over its window: the
    evidence an operator acts on (``service.monitoring``)."""

    allocation_id: str
    project: str
    organization: str
    status: str
    starts_at: datetime
    ends_at: datetime
    #: the part of the window passed, in basis points
    elapsed_bp: int
    granted_gpu_seconds: int
    #: GPU-seconds even use would have reached by now
    expected_gpu_seconds: int
    #: GPU-seconds charged, plus those of runs still running
    used_gpu_seconds: int
    #: used / expected in basis points (None: nothing expected yet)
    use_bp: int | None
    last_use_at: datetime | None
    idle_days: int
    running_jobs: int
    #: ``under_used`` (below the threshold of even use), ``idle`` (no use lately),
    #: ``gpus_idle`` (its jobs held GPUs at near-zero utilisation), ``off_purpose`` (its
    #: project ran outside the grant's terms)
    flags: list[str]
    #: GPU-hours per type the grant will not use at its pace so far: a take-back to weigh
    suggested_reclaim_gpu_hours: dict[str, int]
    #: its runs whose engines sampled their GPUs: how many, their mean utilisation, and
    #: the share of GPU-samples at or below 5% (basis points); None: none sampled
    sampled_runs: int = 0
    gpu_util_mean_pct: int | None = None
    gpu_idle_bp: int | None = None
    #: GPU-hours of sampled runs spent at or below 5% utilisation, and the worst runs
    idle_gpu_hours: float = 0.0
    idle_jobs: list[str] = []
    #: runs of the grant's project in its window on GPU types it does not cover, with
    #: who paid (``off_purpose`` is flagged for those no grant paid)
    off_purpose: list[OffPurposeOut] = []


class OffPurposeOut(BaseModel):
    """A run of a grant's project on a GPU type the grant does not cover."""

    job_id: str
    gpu_type: str
    gpu_hours: float
    started_at: datetime
    #: the grant that paid for it (None: run free of charge, outside every grant)
    funded_by: str | None = None
    why: str


class GrantUseListOut(BaseModel):
    program: str
    at: datetime
    items: list[GrantUseOut]


class GrantActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class ReclaimIn(BaseModel):
    """Take back GPU-hours of a grant (never what is charged or held); with
    ``withdraw_pending`` its tranches not yet released go back too."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    gpu_hours: dict[str, Annotated[int, Field(ge=1)]] = {}
    withdraw_pending: bool = False
