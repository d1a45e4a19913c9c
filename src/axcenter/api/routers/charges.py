"""What a job cost: its holds, releases and charges in won."""

from __future__ import annotations

from fastapi import APIRouter

from axcenter.api.deps import CenterDep, PrincipalDep
from axcenter.service.charges import job_charges
from axcenter.service.schemas import ChargesOut

router = APIRouter(tags=["jobs"])


@router.get("/jobs/{job_id}/charges")
def charges(job_id: str, center: CenterDep, who: PrincipalDep) -> ChargesOut:
    """The job's ledger rows, oldest first: a hold at admission, its release and the rated
    charge when each run ends."""
    return job_charges(center, who, job_id)
