"""Steps: commands run inside a running job's allocation (Slurm's ``srun`` in a batch job
or under ``salloc``; docs/cli.md, docs/engines.md).

A step runs as the job's own unix account, confined as the job is (its control group,
its devices), with its environment (``CUDA_VISIBLE_DEVICES``, ``AXC_*``) and
``AXC_STEP_ID``: the engine's ``run_step`` makes it so; the service only decides who may
start one and records it. Only the job's owner, or an operator, may start a step (an
organization's administrator may cancel a member's job, but never run commands as the
member). Steps are numbered ``JOB.0``, ``JOB.1``... in the job's whole life, recorded
``running`` when they start and with their end, exit code and message when they end.

A step lives as long as the request that runs it: its caller's Ctrl-C (the connection
closes) cancels it, the job's end kills it, and a service that stops takes its steps with
it; those it could not record are ended ``lost`` at the next start (``end_orphans``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from axcenter.control.convert import allocations_from_json, utc
from axcenter.executors.base import (
    Outcome,
    RunAs,
    RunSpec,
    StepEnded,
    StepOutput,
    StepSpec,
)
from axcenter.model.access import Principal, Role
from axcenter.model.jobs import JobOutput, JobState
from axcenter.service.access import visible_jobs
from axcenter.service.errors import Conflict, Forbidden, InvalidInput, NotFound
from axcenter.service.schemas import StepIn, StepOut
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = ["begin", "end_orphans", "finish", "run", "steps_of"]

RUNNING = "running"
#: a step's message column holds this much
_MESSAGE_MAX = 300
_LOST = "lost: the service that ran it stopped"
#: a step's variables may not replace these (the job's devices and identity)
_RESERVED_ENV = ("AXC_", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")


def begin(center: Center, who: Principal, job_id: str, body: StepIn) -> StepSpec:
    """Record step ``JOB.N`` of the running job ``job_id`` as started by ``who`` and
    return what the engine needs to run it."""
    for key in body.env:
        if key.startswith(_RESERVED_ENV):
            raise InvalidInput("env", "{key} is set by axcenter and cannot be overridden", key=key)
    with center.store.write() as session:
        row = session.scalars(
            select(orm.Job).where(orm.Job.id == job_id, visible_jobs(who))
        ).one_or_none()
        if row is None:
            raise NotFound("no job {job_id!r}", job_id=job_id)
        if who.role is not Role.OPERATOR and row.user_id != who.user_id:
            raise Forbidden(
                ("you may not run a step in job {job_id}: only its owner (or an operator) may"),
                job_id=job_id,
            )
        # the job's row, locked: two steps started at once get two numbers
        session.execute(select(orm.Job.id).where(orm.Job.id == job_id).with_for_update())
        session.refresh(row)
        if row.state != JobState.RUNNING.value:
            raise Conflict(
                (
                    "job {job_id} is {state}: a step runs only inside a running job's "
                    "allocation (`axc salloc` makes one)"
                ),
                job_id=job_id,
                state=row.state,
            )
        run = _run_spec(session, row)
        last = session.scalar(
            select(func.max(orm.JobStep.step)).where(orm.JobStep.job_id == job_id)
        )
        number = 0 if last is None else last + 1
        session.add(
            orm.JobStep(
                job_id=job_id,
                step=number,
                attempt=row.attempts,
                user_id=who.user_id,
                command=list(body.command),
                state=RUNNING,
                started_at=utcnow(),
                message="",
            )
        )
    return StepSpec(run, number, tuple(body.command), dict(body.env))


def run(center: Center, step: StepSpec, output: StepOutput, cancel: threading.Event) -> StepOut:
    """Run a begun step on the engine to its end and record how it ended."""
    try:
        ended = center.control.engine.run_step(step, output, cancel)
    except Exception as exc:  # LaunchError, or an engine that failed: the step failed
        ended = StepEnded(Outcome.FAILED, None, None, utcnow().timestamp(), f"launch failed: {exc}")
    return finish(center, step, ended)


def finish(center: Center, step: StepSpec, ended: StepEnded) -> StepOut:
    """Record the end of a step."""
    job_id = step.run.job_id
    with center.store.write() as session:
        row = session.get(orm.JobStep, (job_id, step.step))
        assert row is not None, f"step {step.step_id} was begun"
        message = ended.message
        row.state = ended.outcome.value
        row.exit_code = ended.exit_code
        row.ended_at = utc(ended.ended_at)
        if ended.started_at is not None:
            row.started_at = utc(ended.started_at)
        row.message = message[:_MESSAGE_MAX]
        session.flush()
        user = session.get(orm.User, row.user_id)
        return step_out(row, user.name if user else "")


def end_orphans(center: Center) -> int:
    """Steps a stopped service left ``running`` died with it: record them ``lost``."""
    with center.store.write() as session:
        result = session.execute(
            update(orm.JobStep)
            .where(orm.JobStep.state == RUNNING)
            .values(state=Outcome.LOST.value, ended_at=utcnow(), message=_LOST)
        )
        return int(getattr(result, "rowcount", 0) or 0)


def steps_of(session: Session, job_ids: list[str]) -> dict[str, list[StepOut]]:
    """The steps of each job, in order."""
    found: dict[str, list[StepOut]] = {job_id: [] for job_id in job_ids}
    if not job_ids:
        return found
    rows = session.execute(
        select(orm.JobStep, orm.User.name)
        .join(orm.User, orm.User.id == orm.JobStep.user_id)
        .where(orm.JobStep.job_id.in_(job_ids))
        .order_by(orm.JobStep.job_id, orm.JobStep.step)
    )
    for step, user in rows:
        found[step.job_id].append(step_out(step, user))
    return found


def step_out(row: orm.JobStep, user: str) -> StepOut:
    return StepOut(
        id=f"{row.job_id}.{row.step}",
        step=row.step,
        attempt=row.attempt,
        user=user,
        command=[str(a) for a in row.command],
        state=row.state,
        started_at=row.started_at,
        ended_at=row.ended_at,
        exit_code=row.exit_code,
        message=row.message,
    )


def _run_spec(session: Session, row: orm.Job) -> RunSpec:
    """The running job's run as its engine was given it: its nodes and devices (its
    placement), its unix identity, its environment."""
    placement = allocations_from_json(row.placement or [])
    names = {
        node.id: node.name
        for node in session.scalars(
            select(orm.Node).where(orm.Node.id.in_([a.node_id for a in placement]))
        )
    }
    account = session.get(orm.UnixAccount, row.user_id)
    group = session.get(orm.ProjectGroup, row.project_id)
    run_as = None
    if account is not None:
        gid = group.gid if group is not None else account.gid
        run_as = RunAs(account.name, account.uid, gid, (account.gid,), account.home)
    extra = {}
    if row.array_id is not None:
        extra = {"AXC_ARRAY_ID": row.array_id, "AXC_ARRAY_INDEX": str(row.array_index)}
    return RunSpec(
        job_id=row.id,
        attempt=row.attempts,
        command=tuple(str(a) for a in row.command),
        workdir=row.workdir,
        env={str(k): str(v) for k, v in row.env.items()},
        node_devices=tuple((names.get(a.node_id, a.node_id), a.devices) for a in placement),
        time_limit_s=row.time_limit_s,
        output=JobOutput(row.output),
        extra_env=extra,
        run_as=run_as,
        cpus=row.cpus_per_node,
        memory_mb=row.memory_mb_per_node,
    )
