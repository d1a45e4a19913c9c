"""The cluster: nodes, devices and who holds them; its history; the pending queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from axcenter.api.deps import CenterDep, PrincipalDep
from axcenter.service import history, queue
from axcenter.service.cluster import cluster_view
from axcenter.service.schemas import MAX_INT64, ClusterOut, HistoryOut, QueueOut

router = APIRouter(tags=["cluster"])


@router.get("/cluster")
def cluster(center: CenterDep, who: PrincipalDep) -> ClusterOut:
    return cluster_view(center, who)


@router.get("/cluster/history")
def cluster_history(
    center: CenterDep,
    who: PrincipalDep,
    hours: Annotated[int, Query(ge=1, le=history.MAX_HOURS)] = 24,
    buckets: Annotated[int, Query(ge=1, le=history.MAX_BUCKETS)] = 48,
) -> HistoryOut:
    """GPU utilization per type, mean queue length and queue-wait percentiles per bucket
    of the last ``hours`` (center-wide figures: they name no job or tenant)."""
    return history.cluster_history(center, who, hours=hours, buckets=buckets)


@router.get("/queue")
def pending_queue(
    center: CenterDep,
    who: PrincipalDep,
    offset: Annotated[int, Query(ge=0, le=MAX_INT64)] = 0,
    limit: Annotated[int, Query(ge=1, le=queue.MAX_PAGE)] = 50,
) -> QueueOut:
    """The pending jobs the caller may see, in the scheduler's order, each with the reason
    it waits and its estimated start where backfill reserved one."""
    return queue.queue(center, who, offset=offset, limit=limit)
