"""Running a program: its rules, grant tranches and progress reports, outcome surveys,
what each grant owes and the reminders and notices sent about it, its settlement and the
monthly statements of organizations (JSON, CSV, XLSX)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel

from axcenter.api.deps import CenterDep, PrincipalDep
from axcenter.service import (
    evidence,
    monitoring,
    obligations,
    rules,
    settlement,
    surveys,
    tranches,
)
from axcenter.service.program_schemas import (
    GrantActionIn,
    GrantNoticeOut,
    GrantUseListOut,
    ObligationsOut,
    ProgramRulesIn,
    ProgramRulesListOut,
    ProgramRulesOut,
    ProgressReportIn,
    ProgressReportOut,
    ReclaimIn,
    ReportDecisionIn,
    SurveyAnswerIn,
    SurveyAnswerListOut,
    SurveyAnswerOut,
    SurveyFormIn,
    SurveyFormListOut,
    SurveyFormOut,
    TranchesOut,
)

router = APIRouter(tags=["programs"])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class NoticeListOut(BaseModel):
    items: list[GrantNoticeOut]


@router.get("/programs/{program}/rules")
def list_rules(
    program: str, center: CenterDep, who: PrincipalDep, at: datetime | None = None
) -> ProgramRulesListOut:
    """Every rule set of a program, oldest first; ``in_force`` marks the one in force."""
    return ProgramRulesListOut(items=rules.list_rules(center, who, program, at))


@router.post("/programs/{program}/rules", status_code=status.HTTP_201_CREATED)
def set_rules(
    program: str, body: ProgramRulesIn, center: CenterDep, who: PrincipalDep
) -> ProgramRulesOut:
    """Rules from ``effective_from`` (default now, never in the past) on."""
    return rules.set_rules(center, who, program, body)


@router.delete("/programs/{program}/rules/{rules_id}")
def remove_rules(
    program: str, rules_id: str, center: CenterDep, who: PrincipalDep
) -> ProgramRulesOut:
    """Withdraw rules that have not taken effect yet (409 for rules in force or past:
    set new rules instead)."""
    return rules.remove_rules(center, who, program, rules_id)


@router.get("/programs/{program}/surveys")
def list_surveys(program: str, center: CenterDep, who: PrincipalDep) -> SurveyFormListOut:
    return SurveyFormListOut(items=surveys.list_forms(center, who, program))


@router.post("/programs/{program}/surveys", status_code=status.HTTP_201_CREATED)
def create_survey(
    program: str, body: SurveyFormIn, center: CenterDep, who: PrincipalDep
) -> SurveyFormOut:
    return surveys.create_form(center, who, program, body)


@router.get("/programs/{program}/obligations")
def program_obligations(program: str, center: CenterDep, who: PrincipalDep) -> ObligationsOut:
    """Each grant of the program the caller may read: its tranches, the next progress
    report and every survey round, with where each stands."""
    return obligations.obligations(center, who, program)


@router.post("/programs/{program}/reminders")
def send_reminders(program: str, center: CenterDep, who: PrincipalDep) -> NoticeListOut:
    """Remind each grant of what it owes overdue (once per week per obligation)."""
    return NoticeListOut(items=obligations.remind(center, who, program))


@router.get("/allocations/{allocation_id}/tranches")
def grant_tranches(allocation_id: str, center: CenterDep, who: PrincipalDep) -> TranchesOut:
    return tranches.get_tranches(center, who, allocation_id)


@router.get("/allocations/{allocation_id}/notices")
def grant_notices(allocation_id: str, center: CenterDep, who: PrincipalDep) -> NoticeListOut:
    return NoticeListOut(items=obligations.list_notices(center, who, allocation_id))


@router.post("/allocations/{allocation_id}/reports", status_code=status.HTTP_201_CREATED)
def submit_report(
    allocation_id: str, body: ProgressReportIn, center: CenterDep, who: PrincipalDep
) -> ProgressReportOut:
    """The progress report asking for the grant's next tranche."""
    return tranches.submit_report(center, who, allocation_id, body)


@router.post("/progress-reports/{report_id}/accept")
def accept_report(
    report_id: str, body: ReportDecisionIn, center: CenterDep, who: PrincipalDep
) -> ProgressReportOut:
    """Accept a report: its tranche is released."""
    return tranches.accept_report(center, who, report_id, body.comment)


@router.post("/progress-reports/{report_id}/return")
def return_report(
    report_id: str, body: ReportDecisionIn, center: CenterDep, who: PrincipalDep
) -> ProgressReportOut:
    return tranches.return_report(center, who, report_id, body.comment)


@router.post("/surveys/{form_id}/answers", status_code=status.HTTP_201_CREATED)
def answer_survey(
    form_id: str, body: SurveyAnswerIn, center: CenterDep, who: PrincipalDep
) -> SurveyAnswerOut:
    return surveys.answer(center, who, form_id, body)


@router.get("/surveys/{form_id}/answers/{project}")
def survey_answers(
    form_id: str, project: str, center: CenterDep, who: PrincipalDep
) -> SurveyAnswerListOut:
    """Every answer of a project to a form, with its history."""
    return SurveyAnswerListOut(items=surveys.answers(center, who, form_id, project))


# -- settlement and statements --------------------------------------------------------------

SheetFormat = Annotated[Literal["json", "csv", "xlsx"], Query(alias="format")]
_SHEETS: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/csv": {}, XLSX: {}},
        "description": "JSON, or the documented layout as CSV or XLSX with format=csv|xlsx",
    }
}


def _sheet(
    report: settlement.SettlementOut | settlement.StatementOut, fmt: str, name: str
) -> Response:
    if fmt == "csv":
        return Response(
            settlement.sheet_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    if fmt == "xlsx":
        return Response(
            settlement.sheet_xlsx(report),
            media_type=XLSX,
            headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
        )
    return Response(report.model_dump_json(), media_type="application/json")


@router.get(
    "/programs/{program}/settlement", response_model=settlement.SettlementOut, responses=_SHEETS
)
def program_settlement(
    program: str,
    center: CenterDep,
    who: PrincipalDep,
    since: datetime | None = None,
    until: datetime | None = None,
    fmt: SheetFormat = "json",
) -> Response:
    """Per organization: granted, withdrawn, released; charged in ``[since, until)`` at
    list price, discounted, paid by the program and by the company; unused and open."""
    out = settlement.program_settlement(center, who, program, since, until)
    return _sheet(out, fmt, "settlement")


@router.get(
    "/organizations/{organization}/statements/{month}",
    response_model=settlement.StatementOut,
    responses=_SHEETS,
)
def monthly_statement(
    organization: str, month: str, center: CenterDep, who: PrincipalDep, fmt: SheetFormat = "json"
) -> Response:
    """An organization's charges of a month (``YYYY-MM``, the center's zone)."""
    out = settlement.monthly_statement(center, who, organization, month)
    return _sheet(out, fmt, f"statement-{month}")


# -- use monitoring and take-back -----------------------------------------------------------


@router.get("/programs/{program}/use")
def grant_use(
    program: str, center: CenterDep, who: PrincipalDep, all: bool = False
) -> GrantUseListOut:
    """The program's grants in force with their use against even use, and the flags
    ``under_used``, ``idle``, ``gpus_idle`` and ``off_purpose`` with their evidence
    (``all``: the unflagged ones too)."""
    return monitoring.idle_grants(center, who, program, flagged_only=not all)


@router.post("/allocations/{allocation_id}/warn")
def warn_grant(
    allocation_id: str, body: GrantActionIn, center: CenterDep, who: PrincipalDep
) -> GrantNoticeOut:
    return monitoring.warn(center, who, allocation_id, body.reason)


@router.post("/allocations/{allocation_id}/suspend")
def suspend_grant(
    allocation_id: str, body: GrantActionIn, center: CenterDep, who: PrincipalDep
) -> GrantNoticeOut:
    """The grant pays for no new run until it is resumed."""
    return monitoring.suspend(center, who, allocation_id, body.reason)


@router.post("/allocations/{allocation_id}/resume")
def resume_grant(
    allocation_id: str, body: GrantActionIn, center: CenterDep, who: PrincipalDep
) -> GrantNoticeOut:
    return monitoring.resume(center, who, allocation_id, body.reason)


@router.post("/allocations/{allocation_id}/reclaim")
def reclaim_grant(
    allocation_id: str, body: ReclaimIn, center: CenterDep, who: PrincipalDep
) -> GrantNoticeOut:
    """Take back GPU-hours (and pending tranches): they return to the program's budget."""
    return monitoring.reclaim(center, who, allocation_id, body)


@router.get("/programs/{program}/evidence")
def program_evidence(
    program: str,
    center: CenterDep,
    who: PrincipalDep,
    since: datetime | None = None,
    until: datetime | None = None,
) -> evidence.EvidenceOut:
    """Everything ``axc report evidence`` says of the program (operators, program
    managers): what it bought, whom it reached, waits, outcomes, requests turned down,
    and the live cluster and history the what-if replays."""
    return evidence.evidence(center, who, program, since, until)
