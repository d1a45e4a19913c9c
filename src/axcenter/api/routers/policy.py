"""Scheduling policy: quotas, cohorts, project limits, reservations (operators change them)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from axcenter.api.deps import CenterDep, PrincipalDep
from axcenter.service import policy as service
from axcenter.service.schemas import (
    CohortIn,
    CohortListOut,
    CohortOut,
    CohortParentIn,
    ProjectCohortIn,
    ProjectLimitsIn,
    ProjectPolicyOut,
    QuotaIn,
    QuotaListOut,
    QuotaOut,
    ReservationIn,
    ReservationListOut,
    ReservationOut,
)

router = APIRouter(tags=["policy"])


# -- quotas ---------------------------------------------------------------------------------


@router.get("/quotas")
def list_quotas(center: CenterDep, who: PrincipalDep, project: str | None = None) -> QuotaListOut:
    """Quotas of the projects the caller may see, with the GPUs each holds now."""
    return QuotaListOut(items=service.list_quotas(center, who, project))


@router.get("/quotas/{project}/{gpu_type}")
def get_quota(project: str, gpu_type: str, center: CenterDep, who: PrincipalDep) -> QuotaOut:
    return service.get_quota(center, who, project, gpu_type)


@router.put("/quotas/{project}/{gpu_type}")
def set_quota(
    project: str, gpu_type: str, body: QuotaIn, center: CenterDep, who: PrincipalDep
) -> QuotaOut:
    """Create or replace a project's quota of one GPU type."""
    return service.set_quota(
        center,
        who,
        project,
        gpu_type,
        body.nominal,
        borrowing_limit=body.borrowing_limit,
        lending_limit=body.lending_limit,
    )


@router.delete("/quotas/{project}/{gpu_type}", status_code=status.HTTP_204_NO_CONTENT)
def delete_quota(project: str, gpu_type: str, center: CenterDep, who: PrincipalDep) -> Response:
    service.delete_quota(center, who, project, gpu_type)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- cohorts --------------------------------------------------------------------------------


@router.get("/cohorts")
def list_cohorts(center: CenterDep, who: PrincipalDep) -> CohortListOut:
    return CohortListOut(items=service.list_cohorts(center, who))


@router.post("/cohorts", status_code=status.HTTP_201_CREATED)
def create_cohort(body: CohortIn, center: CenterDep, who: PrincipalDep) -> CohortOut:
    return service.create_cohort(center, who, body.name, body.parent)


@router.put("/cohorts/{name}/parent")
def move_cohort(name: str, body: CohortParentIn, center: CenterDep, who: PrincipalDep) -> CohortOut:
    """Move a cohort under another one (``parent: null``: under the root)."""
    return service.set_cohort_parent(center, who, name, body.parent)


@router.delete("/cohorts/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_cohort(name: str, center: CenterDep, who: PrincipalDep) -> Response:
    service.delete_cohort(center, who, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- project settings -----------------------------------------------------------------------


@router.put("/projects/{project}/cohort")
def set_project_cohort(
    project: str, body: ProjectCohortIn, center: CenterDep, who: PrincipalDep
) -> ProjectPolicyOut:
    return service.set_project_cohort(center, who, project, body.cohort)


@router.get("/projects/{project}/limits")
def get_project_limits(project: str, center: CenterDep, who: PrincipalDep) -> ProjectPolicyOut:
    return service.get_project_policy(center, who, project)


@router.put("/projects/{project}/limits")
def set_project_limits(
    project: str, body: ProjectLimitsIn, center: CenterDep, who: PrincipalDep
) -> ProjectPolicyOut:
    """Fields left out keep their value; ``clear`` removes the named caps."""
    return service.set_project_limits(
        center,
        who,
        project,
        fair_share_weight=body.fair_share_weight,
        max_running_jobs=body.max_running_jobs,
        max_gpus=body.max_gpus,
        clear=body.clear,
    )


# -- reservations ---------------------------------------------------------------------------


@router.get("/reservations")
def list_reservations(
    center: CenterDep, who: PrincipalDep, include_ended: bool = False
) -> ReservationListOut:
    """Reservations not yet ended (all with ``include_ended``), earliest first."""
    return ReservationListOut(
        items=service.list_reservations(center, who, include_ended=include_ended)
    )


@router.post("/reservations", status_code=status.HTTP_201_CREATED)
def create_reservation(body: ReservationIn, center: CenterDep, who: PrincipalDep) -> ReservationOut:
    return service.create_reservation(
        center,
        who,
        body.name,
        body.project,
        body.starts_at,
        body.ends_at,
        [n.node for n in body.nodes],
        {n.node: n.devices for n in body.nodes if n.devices is not None},
    )


@router.delete("/reservations/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_reservation(name: str, center: CenterDep, who: PrincipalDep) -> Response:
    service.delete_reservation(center, who, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
