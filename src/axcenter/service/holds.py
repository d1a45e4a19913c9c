"""Changing a job that waits: hold, release and update (Slurm's ``scontrol``).

A held job stays pending and keeps its place in the queue; the scheduler passes it over
(``PendingJob.held``, reason ``held``) until it is released. A pending job's time limit
and priority may be changed; its name at any time. Only those who may cancel a job may
change it (its owner, its organization's admins, operators).

None of these is a state change: the row's ``held``, ``time_limit_s``, ``priority`` or
``name`` is updated where the job is still pending (a guarded UPDATE), and the control
loop is handed the job's new scheduling view (``forget`` then ``submitted``, in that
order in its inbox). A cycle that admitted the job in between wins: the change then
answers 409, as the job is no longer pending.
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

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = ["hold", "update_job"]

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
            f"{limit} s is above the center's maximum of {center.settings.max_time_limit_s} s",
        )
    return _change(center, who, job_id, values, "update")


def _change(
    center: Center, who: Principal, job_id: str, values: dict[str, object], verb: str
) -> JobOut:
    scheduling = set(values) - {"name"}
    with center.store.write() as session:
        row = visible_job(session, who, job_id)
        if not may_manage(who, row, session):
            raise Forbidden(f"you may not {verb} job {job_id}: it belongs to another user")
        done_to = _PARTICIPLES[verb]
        if scheduling and row.state != JobState.PENDING.value:
            raise Conflict(
                f"job {job_id} is no longer pending ({row.state}): only a pending job can be "
                f"{done_to}"
            )
        query = update(orm.Job).where(orm.Job.id == job_id).values(**values)
        if scheduling:
            query = query.where(orm.Job.state == JobState.PENDING.value)
        done = session.execute(query.execution_options(synchronize_session=False))
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict(f"job {job_id} has just started: only a pending job can be {done_to}")
        record(session, who, f"job.{verb}", "job", job_id, values)
        session.expire(row)
        pending = pending_from_row(row) if scheduling else None
    if pending is not None:
        center.control.forget(job_id)
        center.control.submitted([pending])
    return get_job(center, who, job_id)
