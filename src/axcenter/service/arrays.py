"""Job arrays: one spec run once per index, each task scheduled and accounted as a job.

``axc submit --array 0-1999 -- CMD`` (or ``1,3,5-9:2``, as Slurm writes it) makes 2,000
jobs in one transaction, all sharing an ``arr_…`` id; each task sees its index in
``AXC_ARRAY_INDEX``. Tasks can be listed, shown and cancelled one by one, or all at once
through the array id.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING

from sqlalchemy import func, insert, select, update

from axcenter.model.access import Principal
from axcenter.model.arrays import ArrayError, ArraySpec, parse_array
from axcenter.model.ids import new_id
from axcenter.model.jobs import JobState
from axcenter.service.access import visible_jobs
from axcenter.service.dependencies import check_dependencies
from axcenter.service.errors import Forbidden, InvalidInput, NotFound
from axcenter.service.jobs import cancel, may_manage, new_jobs, pending_job
from axcenter.service.schemas import ArrayIn, ArrayOut
from axcenter.store import orm
from axcenter.store.jobs import insert_jobs
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = ["MAX_TASKS", "array_view", "cancel_array", "parse_indices", "submit_array"]

#: tasks in one array (Slurm's MaxArraySize is 1001 by default; centers raise it)
MAX_TASKS = 100_000


def parse_indices(spec: str) -> ArraySpec:
    """The indices and throttle of Slurm's ``--array`` forms (``model.arrays``):
    ``0-1999``, ``0-1999:10``, ``1,3,5-9``, ``7``, ``0-99%8``."""
    try:
        return parse_array(spec, max_tasks=MAX_TASKS)
    except ArrayError as exc:
        raise InvalidInput("indices", exc.template, **exc.params) from None


def submit_array(center: Center, who: Principal, req: ArrayIn) -> ArrayOut:
    """Validate the spec once, then write every task in one transaction."""
    parsed = parse_indices(req.indices)
    indices, throttle = parsed.indices, parsed.throttle
    check_dependencies(center.store, who, [req])
    if req.idempotency_key:
        with center.store.read() as session:
            earlier = session.scalars(
                select(orm.Job.array_id).where(
                    orm.Job.user_id == who.user_id,
                    orm.Job.idempotency_key == req.idempotency_key,
                    orm.Job.array_id.is_not(None),
                )
            ).first()
        if earlier:
            return array_view(center, who, earlier)
    array_id = new_id("arr")
    now = utcnow()
    with center.store.write() as session:
        [template] = new_jobs(center, session, who, [req], now, copies=len(indices))
        # the tasks share one directory: the one given, the user's home, or (single-user
        # mode) one of the array's own instead of the first task's
        workdir = template.workdir
        if req.workdir is None and os.path.basename(workdir) == template.id:
            workdir = os.path.join(os.path.dirname(workdir), array_id)
        tasks = [
            replace(
                template,
                id=template.id if n == 0 else new_id("job"),
                array_id=array_id,
                array_index=index,
                idempotency_key=template.idempotency_key if n == 0 else None,
                workdir=workdir,
                array_throttle=throttle,
                dependency_pending=template.dependency_pending
                or (throttle is not None and n >= throttle),
            )
            for n, index in enumerate(indices)
        ]
        insert_jobs(session, tasks)
    center.control.submitted(pending_job(t) for t in tasks)
    if req.dependency or throttle is not None:
        center.dependencies.submitted(t.id for t in tasks if t.dependency_pending)
    return ArrayOut(
        array_id=array_id,
        tasks=len(tasks),
        first_index=indices[0],
        last_index=indices[-1],
        throttle=throttle,
        states={JobState.PENDING.value: len(tasks)},
    )


def array_view(center: Center, who: Principal, array_id: str, *, ids: bool = False) -> ArrayOut:
    with center.store.read() as session:
        scope = (orm.Job.array_id == array_id) & visible_jobs(who)
        counts = {
            state: n
            for state, n in session.execute(
                select(orm.Job.state, func.count()).where(scope).group_by(orm.Job.state)
            ).tuples()
        }
        if not counts:
            raise NotFound("no array {array_id!r}", array_id=array_id)
        first, last, throttle = session.execute(
            select(
                func.min(orm.Job.array_index),
                func.max(orm.Job.array_index),
                func.max(orm.Job.array_throttle),
            ).where(scope)
        ).one()
        job_ids = (
            list(session.scalars(select(orm.Job.id).where(scope).order_by(orm.Job.array_index)))
            if ids
            else None
        )
    return ArrayOut(
        array_id=array_id,
        tasks=sum(counts.values()),
        first_index=first,
        last_index=last,
        throttle=throttle,
        states=counts,
        job_ids=job_ids,
    )


def cancel_array(center: Center, who: Principal, array_id: str) -> list[str]:
    """Cancel every task still pending in one statement, and stop the running ones;
    returns the ids of the tasks being stopped (they end once their processes are gone).
    """
    array_view(center, who, array_id)  # 404 unless visible
    now = utcnow()
    with center.store.write() as session:
        scope = (orm.Job.array_id == array_id) & visible_jobs(who)
        task = session.scalars(select(orm.Job).where(scope).limit(1)).one()
        if not may_manage(who, task, session):
            raise Forbidden(
                "you may not cancel array {array_id}: it belongs to another user", array_id=array_id
            )
        pending = list(
            session.scalars(
                select(orm.Job.id).where(scope, orm.Job.state == JobState.PENDING.value)
            )
        )
        if pending:
            session.execute(
                update(orm.Job)
                .where(orm.Job.id.in_(pending), orm.Job.state == JobState.PENDING.value)
                .values(
                    state=JobState.CANCELLED.value, reason=f"cancelled by {who.name}", ended_at=now
                )
                .execution_options(synchronize_session=False)
            )
            session.execute(
                insert(orm.JobEvent),
                [
                    {
                        "job_id": j,
                        "at": now,
                        "from_state": JobState.PENDING.value,
                        "to_state": JobState.CANCELLED.value,
                        "reason": f"cancelled by {who.name}",
                    }
                    for j in pending
                ],
            )
        active = list(
            session.scalars(
                select(orm.Job.id).where(
                    scope,
                    orm.Job.state.in_(
                        [JobState.ADMITTED.value, JobState.RUNNING.value, JobState.PREEMPTED.value]
                    ),
                )
            )
        )
    for job_id in pending:
        center.control.forget(job_id)
    for job_id in active:
        cancel(center, who, job_id)
    return active
