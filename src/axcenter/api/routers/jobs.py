"""Jobs: submit (one or many), list, show, cancel, hold, release, update, requeue,
checkpoint, resubmit, wait, logs, steps (srun in a running job's allocation).

Endpoints are ``async`` and run their store work with one ``run_in_threadpool``: a plain
``def`` endpoint costs FastAPI a second thread-pool hop to validate its answer.
Submissions, the hot path, go through the center's group commit instead (no thread hop
when nothing else is writing; one commit per burst when many arrive together).
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import json
import threading
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from axcenter.api.deps import BEARER_SECURITY, CenterDep, PrincipalDep, authenticated
from axcenter.model.jobs import JobState
from axcenter.service import arrays, holds, steps
from axcenter.service import jobs as service
from axcenter.service.center import Center
from axcenter.service.schemas import (
    MAX_INT64,
    ArrayIn,
    ArrayOut,
    JobBatchIn,
    JobIn,
    JobListOut,
    JobOut,
    JobUpdateIn,
    StepIn,
    StepOut,
)

router = APIRouter(tags=["jobs"])

MAX_WAIT_S = 60.0
LOG_CHUNK = 1024 * 1024


@router.post(
    "/jobs",
    status_code=status.HTTP_201_CREATED,
    response_model=JobOut,
    responses={422: {"description": "a field is invalid (the message names it)"}},
    # the hot path: no FastAPI dependencies (authenticated by a plain call) and the body
    # parsed by pydantic straight from its JSON; so its body schema and its security are
    # declared here, as the signature no longer names them
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobIn"}}},
        },
        "security": BEARER_SECURITY,
    },
)
async def submit(request: Request) -> Response:
    """Submit a job. Replaying an idempotency key returns the earlier job with 200."""
    who = await authenticated(request)
    center: Center = request.app.state.center
    try:
        body = JobIn.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    (result,) = await service.submit_async(center, who, [body])
    return Response(
        JobOut.__pydantic_serializer__.to_json(result.job),
        status_code=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        media_type="application/json",
    )


@router.post("/jobs:batch", status_code=status.HTTP_201_CREATED)
async def submit_batch(body: JobBatchIn, center: CenterDep, who: PrincipalDep) -> JobListOut:
    """Submit many jobs in one transaction: all are accepted or none."""
    results = await service.submit_async(center, who, body.jobs)
    return JobListOut(items=[r.job for r in results], next_cursor=None)


@router.get("/jobs")
async def list_jobs(
    center: CenterDep,
    who: PrincipalDep,
    state: Annotated[list[str] | None, Query()] = None,
    project: str | None = None,
    mine: bool = False,
    array: str | None = None,
    user: Annotated[list[str] | None, Query(description="user names or usr_ ids")] = None,
    name: Annotated[list[str] | None, Query(description="job names")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
) -> JobListOut:
    items, next_cursor = await run_in_threadpool(
        service.list_jobs,
        center,
        who,
        states=state or (),
        project=project,
        mine=mine,
        array=array,
        users=user or (),
        names=name or (),
        limit=limit,
        cursor=cursor,
    )
    return JobListOut(items=items, next_cursor=next_cursor)


async def _job_id(center: Center, who: PrincipalDep, ref: str) -> str:
    """The job that a path names: its id, or an array task as ``arr_…_INDEX``."""
    return await run_in_threadpool(service.job_ref, center, who, ref) if ref[:4] == "arr_" else ref


@router.get("/jobs/{job_id}")
async def show(job_id: str, center: CenterDep, who: PrincipalDep) -> JobOut:
    """A job, by id or as an array task (``arr_…_INDEX``, Slurm's ``JOBID_IDX``)."""
    job_id = await _job_id(center, who, job_id)
    return await run_in_threadpool(service.get_job, center, who, job_id)


@router.post("/jobs/{job_id}/cancel")
async def cancel(job_id: str, center: CenterDep, who: PrincipalDep) -> JobOut:
    """Cancel; for a running job, answer once its processes are gone (or after the grace)."""
    job_id = await _job_id(center, who, job_id)
    state = await run_in_threadpool(service.cancel, center, who, job_id)
    if not state.terminal:
        await _wait(center, who, job_id, center.settings.kill_grace_s + 5.0)
    return await run_in_threadpool(service.get_job, center, who, job_id)


@router.post("/jobs/{job_id}/hold")
async def hold(job_id: str, center: CenterDep, who: PrincipalDep) -> JobOut:
    """Keep a pending job from starting, in its place in the queue (reason ``held``)."""
    job_id = await _job_id(center, who, job_id)
    return await run_in_threadpool(functools.partial(holds.hold, held=True), center, who, job_id)


@router.post("/jobs/{job_id}/release")
async def release(job_id: str, center: CenterDep, who: PrincipalDep) -> JobOut:
    """Let a held job start again."""
    job_id = await _job_id(center, who, job_id)
    return await run_in_threadpool(functools.partial(holds.hold, held=False), center, who, job_id)


@router.post("/jobs/{job_id}/requeue")
async def requeue(
    job_id: str,
    center: CenterDep,
    who: PrincipalDep,
    hold: Annotated[bool, Query(description="come back held (scontrol requeuehold)")] = False,
) -> JobOut:
    """Put a job that ran or ended back in the queue with its id and history: an ended
    job at once, a running one once its run is stopped (it then answers ``running``)."""
    job_id = await _job_id(center, who, job_id)
    return await run_in_threadpool(functools.partial(holds.requeue, held=hold), center, who, job_id)


@router.patch("/jobs/{job_id}")
async def update_job(
    job_id: str, body: JobUpdateIn, center: CenterDep, who: PrincipalDep
) -> JobOut:
    """Change a job's name, or a pending job's time limit or priority."""
    job_id = await _job_id(center, who, job_id)
    return await run_in_threadpool(holds.update_job, center, who, job_id, body)


@router.post("/jobs/{job_id}/checkpoint")
async def checkpoint(job_id: str, center: CenterDep, who: PrincipalDep) -> JobOut:
    """A running job saved its work (call it from inside the job, ``axc checkpoint``):
    preempting it now loses only what it does from here."""
    job_id = await _job_id(center, who, job_id)
    await run_in_threadpool(service.checkpoint, center, who, job_id)
    return await run_in_threadpool(service.get_job, center, who, job_id, events=False)


@router.post("/jobs/{job_id}/resubmit", status_code=status.HTTP_201_CREATED)
async def resubmit(job_id: str, center: CenterDep, who: PrincipalDep) -> JobOut:
    """A new job with this job's specification (for those who may cancel it)."""
    job_id = await _job_id(center, who, job_id)
    result = await run_in_threadpool(service.resubmit, center, who, job_id)
    return result.job


@router.get("/jobs/{job_id}/wait")
async def wait(
    job_id: str,
    center: CenterDep,
    who: PrincipalDep,
    timeout: Annotated[float, Query(ge=0, le=MAX_WAIT_S)] = 30.0,
) -> JobOut:
    """Long poll: answers when the job has ended or after ``timeout`` seconds."""
    job_id = await _job_id(center, who, job_id)
    await _wait(center, who, job_id, timeout)
    return await run_in_threadpool(service.get_job, center, who, job_id)


async def _wait(center: CenterDep, who: PrincipalDep, job_id: str, timeout: float) -> None:
    async def done() -> bool:
        state: JobState = await run_in_threadpool(service.job_state, center, who, job_id)
        return state.terminal

    await center.watch.wait(job_id, timeout, done)


@router.get("/jobs/{job_id}/log")
async def log(
    job_id: str,
    center: CenterDep,
    who: PrincipalDep,
    offset: Annotated[int, Query(ge=0, le=MAX_INT64)] = 0,
) -> Response:
    """Log bytes from ``offset``; ``X-Log-Offset`` is where to continue."""
    job_id = await _job_id(center, who, job_id)
    data, next_offset, state = await run_in_threadpool(
        service.read_log, center, who, job_id, offset, LOG_CHUNK
    )
    return Response(
        content=data,
        media_type="text/plain; charset=utf-8",
        headers={"X-Log-Offset": str(next_offset), "X-Job-State": state},
    )


@router.post(
    "/jobs/{job_id}/steps",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": 'JSON lines: {"output": TEXT} as the step writes, then {"step": '
            'StepOut} when it ended (or {"error": TEXT})',
            "content": {"application/x-ndjson": {}},
        },
        409: {"description": "the job is not running"},
    },
)
async def run_step(
    job_id: str, body: StepIn, center: CenterDep, who: PrincipalDep
) -> StreamingResponse:
    """Run a command inside the running job's allocation (Slurm's srun), as the job's own
    user, with its devices and environment; its output streams back as it comes. Only
    the job's owner or an operator may. Closing the connection cancels the step."""
    job_id = await _job_id(center, who, job_id)
    spec = await run_in_threadpool(steps.begin, center, who, job_id, body)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | StepOut | Exception] = asyncio.Queue()
    cancel = threading.Event()

    def put(item: bytes | StepOut | Exception) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:  # a thread of its own: a step may run for hours
        try:
            put(steps.run(center, spec, put, cancel))
        except Exception as exc:  # the store failed to record its end
            put(exc)

    threading.Thread(target=work, name=f"axc-step-{spec.step_id}", daemon=True).start()

    async def lines() -> AsyncIterator[bytes]:
        text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            while True:
                item = await queue.get()
                if isinstance(item, bytes):
                    yield json.dumps({"output": text.decode(item)}).encode() + b"\n"
                elif isinstance(item, StepOut):
                    yield b'{"step": ' + item.model_dump_json().encode() + b"}\n"
                    return
                else:
                    yield json.dumps({"error": f"step {spec.step_id}: {item}"}).encode() + b"\n"
                    return
        finally:
            cancel.set()  # the caller went away (Ctrl-C) or the step ended

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.post("/arrays", status_code=status.HTTP_201_CREATED)
async def submit_array(body: ArrayIn, center: CenterDep, who: PrincipalDep) -> ArrayOut:
    """Submit a job array: one job per index, written in one transaction."""
    return await run_in_threadpool(arrays.submit_array, center, who, body)


@router.get("/arrays/{array_id}")
async def show_array(
    array_id: str, center: CenterDep, who: PrincipalDep, ids: bool = False
) -> ArrayOut:
    """Tasks per state (and, with ``ids``, every task's job id in index order)."""
    return await run_in_threadpool(arrays.array_view, center, who, array_id, ids=ids)


@router.post("/arrays/{array_id}/cancel")
async def cancel_array(array_id: str, center: CenterDep, who: PrincipalDep) -> ArrayOut:
    """Cancel every task that has not ended; answer once the running ones are gone."""
    stopping = await run_in_threadpool(arrays.cancel_array, center, who, array_id)
    grace = center.settings.kill_grace_s + 5.0
    await asyncio.gather(*(_wait(center, who, job_id, grace) for job_id in stopping))
    return await run_in_threadpool(arrays.array_view, center, who, array_id)
