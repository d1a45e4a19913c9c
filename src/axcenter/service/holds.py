"""Changing a job that waits: hold, release and update; putting a job back in the queue:
requeue (Slurm's ``scontrol``).

A held job stays pending and keeps its place in the queue; the scheduler passes it over
(``PendingJob.held``, reason ``held``) until it is released. A pending job's time limit
and priority may be changed; its name at any time. Only those who may cancel a job may
change it (its owner, its organization's admins, operators).

None of these is a state change: the row's ``held``, ``time_limit_s``, ``priority`` or
``name`` is updated where the job is still pending (a guarded UPDATE), and the control
loop is handed the job's new scheduling view (``forget`` then ``submitted``, in that
order in its inbox). A cycle that admitted the job in between wins: the change then
answers 409, as the job is no longer pending.

Requeue is a state change and keeps the job's id, its events and its charges: an ended
job goes back to pending at once (``store.jobs.transition``, guarded on the state it was
read in), its run's fields cleared; a job that holds devices is stopped by the control
loop as for a preemption, and its end puts it back to pending (``control.runs.requeue``:
the run is charged up to its end). Its next run is the next attempt, and its log follows
the earlier ones'. With ``held`` it comes back held (``scontrol requeuehold``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import update

from axcenter.control.convert import pending_from_row
from axcenter.model.access import Principal
from axcenter.model.jobs import JobState
from axcenter.service.audit import record
from axcenter.service.errors import Conflict, Forbidden, InvalidInput
from axcenter.service.jobs import get_job, may_manage, visible_job
from axcenter.service.schemas import JobOut, JobUpdateIn
from axcenter.store import orm
from axcenter.store.jobs import transition
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = ["hold", "requeue", "update_job"]

_PARTICIPLES = {"hold": "held", "release": "released", "update": "updated"}


def hold(center: Center, who: Principal, job_id: str, *, held: bool) -> JobOut:
    """Hold (``held``) or release a pending job."""
    verb = "hold" if held else "release"
    return _change(center, who, job_id, {"held": held}, verb)


def update_job(center: Center, who: Principal, job_id: str, changes: JobUpdateIn) -> JobOut:
    """Change a job's name, or a pending job's time limit or priority."""
    values = changes.model_dump(exclude_none=True)
    if not values:
        raise InvalidInput("body", "nothing to change: give name, time_limit_s or priority")
    limit = values.get("time_limit_s")
    if limit is not None and limit > center.settings.max_time_limit_s:
        raise InvalidInput(
            "time_limit_s",
            "{limit} s is above the center's maximum of {max_time_limit_s} s",
            limit=limit,
            max_time_limit_s=center.settings.max_time_limit_s,
        )
    return _change(center, who, job_id, values, "update")


def _change(
    center: Center, who: Principal, job_id: str, values: dict[str, object], verb: str
) -> JobOut:
    scheduling = set(values) - {"name"}
    with center.store.write() as session:
        row = visible_job(session, who, job_id)
        if not may_manage(who, row, session):
            raise Forbidden(
                "you may not {verb} job {job_id}: it belongs to another user",
                verb=verb,
                job_id=job_id,
            )
        done_to = _PARTICIPLES[verb]
        if scheduling and row.state != JobState.PENDING.value:
            raise Conflict(
                (
                    "job {job_id} is no longer pending ({state}): only a pending job can be "
                    "{done_to}"
                ),
                job_id=job_id,
                state=row.state,
                done_to=done_to,
            )
        query = update(orm.Job).where(orm.Job.id == job_id).values(**values)
        if scheduling:
            query = query.where(orm.Job.state == JobState.PENDING.value)
        done = session.execute(query.execution_options(synchronize_session=False))
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict(
                "job {job_id} has just started: only a pending job can be {done_to}",
                job_id=job_id,
                done_to=done_to,
            )
        record(session, who, f"job.{verb}", "job", job_id, values)
        session.expire(row)
        pending = pending_from_row(row) if scheduling else None
    if pending is not None:
        center.control.forget(job_id)
        center.control.submitted([pending])
    return get_job(center, who, job_id)


#: states whose job holds devices: the control loop stops its run, whose end requeues it
_RUNS = (JobState.ADMITTED.value, JobState.RUNNING.value)


def requeue(center: Center, who: Principal, job_id: str, *, held: bool = False) -> JobOut:
    """Put a job back in the queue with its id and history (Slurm's ``scontrol requeue``,
    or ``requeuehold`` with ``held``): an ended job at once, a running one once its run
    is stopped (the answer then shows it still running, ``requeue requested``)."""
    reason = f"requeued by {who.name}"
    pending = None
    with center.store.write() as session:
        row = visible_job(session, who, job_id)
        if not may_manage(who, row, session):
            raise Forbidden(
                "you may not requeue job {job_id}: it belongs to another user", job_id=job_id
            )
        state = JobState(row.state)
        if state is JobState.PENDING:
            raise Conflict(
                (
                    "job {job_id} is pending already: only a job that ran or ended can be "
                    "requeued (`axc hold` keeps a pending job from starting)"
                ),
                job_id=job_id,
            )
        if state is JobState.PREEMPTED:
            raise Conflict("job {job_id} is being requeued already (preempted)", job_id=job_id)
        owner = session.get(orm.User, row.user_id)
        if owner is None or not owner.active:
            raise Conflict(
                "job {job_id}'s owner is no longer active: it cannot run again", job_id=job_id
            )
        if state.terminal:
            now = utcnow()
            moved = transition(
                session,
                job_id,
                [state],
                JobState.PENDING,
                at=now,
                reason=reason,
                held=held,
                placement=None,
                gpu_type=None,
                engine_ref=None,
                started_at=None,
                ended_at=None,
                exit_code=None,
            )
            if moved is None:
                raise Conflict("job {job_id} changed meanwhile: requeue it again", job_id=job_id)
            session.expire(row)
            pending = pending_from_row(row)
        else:
            query = (
                update(orm.Job)
                .where(orm.Job.id == job_id, orm.Job.state.in_(_RUNS))
                .values(held=held, reason=f"requeue requested by {who.name}")
                .execution_options(synchronize_session=False)
            )
            if session.execute(query).rowcount != 1:  # type: ignore[attr-defined]
                raise Conflict("job {job_id} ended meanwhile: requeue it again", job_id=job_id)
        record(session, who, "job.requeue", "job", job_id, {"from": state.value, "held": held})
    if pending is not None:
        center.control.submitted([pending])
    else:
        center.control.requeue(job_id, reason, held=held)
    return get_job(center, who, job_id)
