"""What jobs cost: one job's holds, releases and charges in won; every job of a period with
its time, GPU-hours and won (``axc acct``, as Slurm's ``sacct``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from axcenter.api.deps import CenterDep, PrincipalDep
from axcenter.service.charges import MAX_ACCOUNTS, job_accounts, job_charges
from axcenter.service.jobs import job_ref
from axcenter.service.schemas import ChargesOut, JobAccountsOut

router = APIRouter(tags=["jobs"])


@router.get("/jobs/{job_id}/charges")
def charges(job_id: str, center: CenterDep, who: PrincipalDep) -> ChargesOut:
    """The job's ledger rows, oldest first: a hold at admission, its release and the rated
    charge when each run ends."""
    return job_charges(center, who, job_ref(center, who, job_id))


@router.get("/accounting/jobs")
def accounting(
    center: CenterDep,
    who: PrincipalDep,
    since: datetime | None = None,
    until: datetime | None = None,
    user: Annotated[list[str] | None, Query(description="user names or usr_ ids")] = None,
    project: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ACCOUNTS)] = 10_000,
) -> JobAccountsOut:
    """The jobs you may see that ran during the period (default: the last 7 days), each
    with its elapsed time, GPU-seconds and the won charged for it."""
    return job_accounts(
        center, who, since=since, until=until, users=user or (), project=project, limit=limit
    )
