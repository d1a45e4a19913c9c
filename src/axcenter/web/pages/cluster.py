"""The cluster page (nodes, devices, holders, history charts) and the queue page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from axcenter.service.center import Center
from axcenter.service.cluster import cluster_view
from axcenter.service.history import cluster_history
from axcenter.service.queue import queue
from axcenter.web.charts import history_charts
from axcenter.web.render import center_zone, page
from axcenter.web.session import PageViewer

router = APIRouter(prefix="/ui", include_in_schema=False)

#: the windows offered on the page: hours -> buckets
WINDOWS = {6: 36, 24: 48, 168: 56}
QUEUE_PAGE = 50
#: nodes per page of the device table (a big center has thousands)
NODE_PAGE = 64


@router.get("/")
def cluster_page(
    request: Request,
    viewer: PageViewer,
    hours: Annotated[int, Query()] = 24,
    gpu_type: str = "",
    state: str = "",
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    center: Center = request.app.state.center
    hours = hours if hours in WINDOWS else 24
    view = cluster_view(center, viewer.who)
    history = cluster_history(center, viewer.who, hours=hours, buckets=WINDOWS[hours])
    nodes = [
        n
        for n in view.nodes
        if (not gpu_type or n.gpu_type == gpu_type) and (not state or n.state == state)
    ]
    return page(
        request,
        viewer,
        "cluster.html",
        lang=viewer.lang,
        cluster=view,
        nodes=nodes[offset : offset + NODE_PAGE],
        matching=len(nodes),
        offset=offset,
        page_size=NODE_PAGE,
        gpu_types=sorted({n.gpu_type for n in view.nodes}),
        node_states=sorted({n.state for n in view.nodes}),
        gpu_type=gpu_type,
        state=state,
        charts=history_charts(history, viewer.lang, center_zone(request)),
        hours=hours,
        windows=list(WINDOWS),
    )


@router.get("/queue")
def queue_page(
    request: Request, viewer: PageViewer, offset: Annotated[int, Query(ge=0)] = 0
) -> HTMLResponse:
    center: Center = request.app.state.center
    listing = queue(center, viewer.who, offset=offset, limit=QUEUE_PAGE)
    return page(
        request,
        viewer,
        "queue.html",
        lang=viewer.lang,
        queue=listing,
        offset=offset,
        page_size=QUEUE_PAGE,
    )
