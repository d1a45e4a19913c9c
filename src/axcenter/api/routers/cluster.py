"""The cluster: nodes, devices and who holds them."""

from __future__ import annotations

from fastapi import APIRouter

from axcenter.api.deps import CenterDep, PrincipalDep
from axcenter.service.cluster import cluster_view
from axcenter.service.schemas import ClusterOut

router = APIRouter(tags=["cluster"])


@router.get("/cluster")
def cluster(center: CenterDep, who: PrincipalDep) -> ClusterOut:
    return cluster_view(center, who)
