"""Job use cases: submit (single or batch, idempotent), query, cancel, read logs."""

from __future__ import annotations

import asyncio
import functools
import os
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from axcenter.control.convert import allocations_from_json, epoch
from axcenter.model.access import Principal, Role
from axcenter.model.cluster import Node
from axcenter.model.ids import new_id
from axcenter.model.jobs import JobOutput, JobState
from axcenter.model.money import BP
from axcenter.model.snapshot import PendingJob
from axcenter.service.access import (
    project_named,
    submittable_projects,
    visible_job_details,
    visible_jobs,
)
from axcenter.service.dependencies import check_dependencies
from axcenter.service.errors import Conflict, Count, Forbidden, InvalidInput, NotFound, Span
from axcenter.service.identities import IDENTITY_TABLES, Identity, check_workdir, identity_for
from axcenter.service.queue import estimated_start, queue_position
from axcenter.service.schemas import EventOut, JobIn, JobOut, PlacementOut, RunGpuUsageOut
from axcenter.service.steps import steps_of
from axcenter.store import orm
from axcenter.store.cache import VersionedCache
from axcenter.store.jobs import NewJob, insert_jobs, transition
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = [
    "cancel",
    "get_job",
    "job_out",
    "job_ref",
    "list_jobs",
    "read_log",
    "submit",
    "submit_async",
    "visible_job",
]

RESERVED_ENV_PREFIXES = ("AXC_", "CUDA_VISIBLE_DEVICES")
DEFAULT_CPUS = 1
DEFAULT_MEMORY_MB = 1024


@dataclass(frozen=True, slots=True)
class Submitted:
    job: JobOut
    created: bool  # False: an earlier submission with the same idempotency key


def submit(center: Center, who: Principal, requests: Sequence[JobIn]) -> list[Submitted]:
    """Validate and commit ``requests`` in one transaction, then wake the scheduler.

    All or nothing: one invalid job rejects the batch, naming its index and field.
    A request whose idempotency key this user used before returns the earlier job.
    The write goes through the center's group commit (``store.group_commit``): it is
    acknowledged once committed, together with whatever else was submitted meanwhile.
    """
    check_dependencies(center.store, who, requests)
    work = _submission(center, who, requests)
    try:
        written = center.writes.run(work)
    except IntegrityError:  # a concurrent submission used the same idempotency key first
        written = center.writes.run(work)  # ...and now it replays that one
    return _accepted(center, written)


async def submit_async(
    center: Center, who: Principal, requests: Sequence[JobIn]
) -> list[Submitted]:
    """``submit`` for the event loop: waits for the commit without a thread of its own.

    When the caches hold all it needs (the projects named), the jobs are prepared without
    reading the database and written alone (``GroupCommit.ainsert_jobs``, on PostgreSQL
    one statement from the loop). An idempotency key used before then fails that write
    on the table's unique key, and the submission goes the read-first way, which
    replays the earlier job.
    """
    if any(r.dependency for r in requests):  # reads the jobs named: off the event loop
        await asyncio.to_thread(check_dependencies, center.store, who, requests)
    nodes = list(center.control.state.nodes.values())
    prepared = _prepare_cached(center, who, requests, nodes)
    if prepared is not None:
        try:
            await center.writes.ainsert_jobs(prepared[1])
        except IntegrityError:
            pass  # a key used before (or a row gone meanwhile): read first, below
        else:
            return _accepted(center, prepared)
    work = _submission(center, who, requests)
    try:
        written = await center.writes.arun(work)
    except IntegrityError:
        written = await center.writes.arun(work)
    return _accepted(center, written)


_Written = tuple[list["Submitted"], list[NewJob]]


def _submission(
    center: Center, who: Principal, requests: Sequence[JobIn]
) -> Callable[[Connection], _Written]:
    """The write of a submission, safe to run again after a rollback (group commit)."""
    nodes = list(center.control.state.nodes.values())

    def work(conn: Connection) -> _Written:
        results, new = _prepare(center, conn, who, requests, nodes, utcnow())
        insert_jobs(conn, new)
        return results, new

    return work


def _accepted(center: Center, written: _Written) -> list[Submitted]:
    results, new = written
    if new:
        center.control.submitted(_pending(j) for j in new)
        dependent = [j.id for j in new if j.dependency is not None]
        if dependent:
            center.dependencies.submitted(dependent)
    return results


def new_jobs(
    center: Center,
    session: Session,
    who: Principal,
    requests: Sequence[JobIn],
    now: datetime,
    *,
    copies: int = 1,
) -> list[NewJob]:
    """Validated jobs for ``requests``, not yet written (no idempotency replay);
    ``copies``: how many jobs each will become (an array's tasks), for the caps."""
    nodes = list(center.control.state.nodes.values())
    plain = [r.model_copy(update={"idempotency_key": None}) for r in requests]
    jobs = _prepare(center, session, who, plain, nodes, now, copies=copies)[1]
    return [
        replace(j, idempotency_key=r.idempotency_key) for j, r in zip(jobs, requests, strict=True)
    ]


def pending_job(job: NewJob) -> PendingJob:
    """The scheduler's view of a job just written."""
    return _pending(job)


def _prepare(
    center: Center,
    db: Session | Connection,
    who: Principal,
    requests: Sequence[JobIn],
    nodes: Sequence[Node],
    now: datetime,
    *,
    copies: int = 1,
) -> _Written:
    """The submission's answers and its new jobs; a reused idempotency key replays."""
    keys = [r.idempotency_key for r in requests if r.idempotency_key]
    seen: dict[str, JobOut] = {}
    if keys:  # replays are answered from the ORM (on a Connection: a session on it)
        with _orm(db) as session:
            seen = {
                j.idempotency_key or "": job_out(session, j)
                for j in session.scalars(
                    select(orm.Job).where(
                        orm.Job.user_id == who.user_id, orm.Job.idempotency_key.in_(keys)
                    )
                )
            }
    written = _prepare_using(
        center,
        who,
        requests,
        nodes,
        now,
        seen,
        lambda ref: resolve_project(center, db, who, ref),
        copies,
    )
    assert written is not None  # every project resolves (or raises)
    return written


def _prepare_cached(
    center: Center, who: Principal, requests: Sequence[JobIn], nodes: Sequence[Node]
) -> _Written | None:
    """``_prepare`` from the caches alone, without replaying idempotency keys (the
    insert's unique key catches a reuse); None when a project named is not cached."""
    return _prepare_using(
        center, who, requests, nodes, utcnow(), {}, lambda ref: cached_project(center, who, ref)
    )


def _prepare_using(
    center: Center,
    who: Principal,
    requests: Sequence[JobIn],
    nodes: Sequence[Node],
    now: datetime,
    seen: dict[str, JobOut],
    project_of: Callable[[str | None], ProjectRef | None],
    copies: int = 1,
) -> _Written | None:
    """The answers and new jobs of a submission, once the throttle admits it (429
    otherwise, ``service.throttle``); None when ``project_of`` does not know a project."""
    projects: dict[str | None, ProjectRef] = {}
    results: list[Submitted] = []
    new: list[NewJob] = []
    batch = len(requests) > 1
    for index, req in enumerate(requests):
        if req.idempotency_key and req.idempotency_key in seen:
            results.append(Submitted(seen[req.idempotency_key], created=False))
            continue
        prefix = f"jobs[{index}]." if batch else ""
        try:
            if req.project not in projects:
                found = project_of(req.project)
                if found is None:
                    return None
                projects[req.project] = found
            project = projects[req.project]
            job = _new_job(center, who, project, req, nodes, now)
        except InvalidInput as exc:
            raise InvalidInput(prefix + exc.field, exc.template, **exc.params) from None
        out = _out_new(job, project.name, who.name)
        if req.idempotency_key:
            seen[req.idempotency_key] = out
        new.append(job)
        results.append(Submitted(out, created=True))
    if new:
        adding: dict[str, tuple[str, int]] = {}
        for job in new:
            name, n = adding.get(job.project_id, ("", 0))
            adding[job.project_id] = (name, n + copies)
        names = {p.id: p.name for p in projects.values()}
        center.throttle.admit(who, {p: (names[p], n) for p, (_, n) in adding.items()})
    return results, new


def _orm(db: Session | Connection) -> AbstractContextManager[Session]:
    return nullcontext(db) if isinstance(db, Session) else Session(bind=db)


@dataclass(frozen=True, slots=True)
class ProjectRef:
    """The project a submission names, as far as submitting needs it: with who the
    submitter's jobs in it run as, and where they may work."""

    id: str
    name: str
    identity: Identity
    #: it has an active allocation (always True where the center runs GPU jobs of
    #: projects without one: then it is not read)
    allocated: bool = True


#: what project resolution reads; a commit that changes one of them empties the cache
PROJECT_TABLES = ("projects", "project_members", "allocations", *IDENTITY_TABLES)
#: bound on how long a change made by another process (not seen by the store) goes unseen
PROJECT_TTL_S = 5.0


def resolve_project(
    center: Center, db: Session | Connection, who: Principal, ref: str | None
) -> ProjectRef:
    """The project ``who`` submits to when naming ``ref`` (None: its only one).

    Cached per (caller, reference): every submission of a loop names the same project,
    and a membership or project change drops the cache (``Store.cache``).
    """
    found = cached_project(center, who, ref)
    if found is None:
        cache = _project_cache(center)
        version = cache.version()
        found = _resolve_project(center, db, who, ref)
        if not found.identity.new:  # else: cached once committed, by the next submission
            cache.put(_project_key(who, ref), found, version)
    return found


def cached_project(center: Center, who: Principal, ref: str | None) -> ProjectRef | None:
    """``resolve_project``'s answer if it is cached (None: it must read)."""
    found: ProjectRef | None = _project_cache(center).get(_project_key(who, ref))
    return found


def _project_cache(center: Center) -> VersionedCache[Any, Any]:
    return center.store.cache("submit-projects", PROJECT_TABLES, PROJECT_TTL_S)


def _project_key(who: Principal, ref: str | None) -> tuple[str, str, str | None, str | None]:
    return (who.user_id, who.role, who.organization_id, ref)


def _resolve_project(
    center: Center, db: Session | Connection, who: Principal, ref: str | None
) -> ProjectRef:
    query = select(orm.Project.id, orm.Project.name).where(submittable_projects(who))
    if ref is None:
        candidates = db.execute(query.limit(2)).all()
        if len(candidates) != 1:
            raise InvalidInput(
                "project",
                "no project given and you belong to several (or none): name one with --project",
            )
        project_id, name = candidates[0]
    else:
        found = db.execute(query.where(project_named(ref))).one_or_none()
        if found is None:
            raise InvalidInput("project", "unknown project {ref!r}", ref=ref)
        project_id, name = found
    identity = identity_for(center.settings, db, (who.user_id, who.name), (project_id, name))
    allocated = center.settings.unallocated_gpu_jobs == "free" or _has_allocation(
        db, project_id, utcnow()
    )
    return ProjectRef(project_id, name, identity, allocated)


def _has_allocation(db: Session | Connection, project_id: str, at: datetime) -> bool:
    """Whether an active allocation of the project covers ``at``."""
    return (
        db.execute(
            select(orm.Allocation.id)
            .where(
                orm.Allocation.project_id == project_id,
                orm.Allocation.status == "active",
                orm.Allocation.starts_at <= at,
                orm.Allocation.ends_at > at,
            )
            .limit(1)
        ).first()
        is not None
    )


def _new_job(
    center: Center,
    who: Principal,
    project: ProjectRef,
    req: JobIn,
    nodes: Sequence[Node],
    now: datetime,
) -> NewJob:
    settings = center.settings
    req = _spelled_as_nodes(req, nodes)
    if req.exclusive:
        req = _whole_nodes(req, nodes)
    _check_fits(req, nodes)
    if req.gpus_per_node and not project.allocated:
        raise InvalidInput(
            "project",
            (
                "{project} has no active allocation, and this center runs no GPU job "
                "without one (its policy: unallocated_gpu_jobs=refuse): ask for "
                "GPU-hours with `axc alloc request`, or submit with --gpus 0"
            ),
            project=project.name,
        )
    if any(not arg for arg in req.command[:1]):
        raise InvalidInput("command", "the program to run is empty")
    if any("\x00" in arg for arg in req.command):
        raise InvalidInput("command", "arguments may not contain NUL bytes")
    for key in req.env:
        if key.startswith(RESERVED_ENV_PREFIXES):
            raise InvalidInput("env", "{key} is set by axcenter and cannot be overridden", key=key)
    time_limit = req.time_limit_s or settings.default_time_limit_s
    if time_limit > settings.max_time_limit_s:
        raise InvalidInput(
            "time_limit_s",
            "{time_limit} is above the center's maximum of {max_time_limit_s}",
            time_limit=Span(time_limit),
            max_time_limit_s=Span(settings.max_time_limit_s),
        )
    job_id = new_id("job")
    workdir = check_workdir(project.identity, req.workdir) or os.path.join(
        _real_dir(settings.jobs_dir), job_id
    )
    return NewJob(
        id=job_id,
        project_id=project.id,
        user_id=who.user_id,
        name=req.name,
        command=list(req.command),
        workdir=workdir,
        env=dict(req.env),
        gpus_per_node=req.gpus_per_node,
        nodes=req.nodes,
        cpus_per_node=req.cpus_per_node or DEFAULT_CPUS,
        memory_mb_per_node=req.memory_mb_per_node or DEFAULT_MEMORY_MB,
        time_limit_s=time_limit,
        priority=req.priority,
        gpu_types=list(dict.fromkeys(req.gpu_types)),
        idempotency_key=req.idempotency_key,
        submitted_at=now,
        output=req.output,
        output_path=req.output_path,
        error_path=req.error_path,
        held=req.held,
        dependency=req.dependency,
        dependency_pending=req.dependency is not None,
        script=req.script,
    )


@functools.lru_cache(maxsize=16)
def _real_dir(path: Path) -> str:
    """``path`` resolved once: a job's default working directory is a new child of it."""
    return str(path.resolve())


def _spelled_as_nodes(req: JobIn, nodes: Sequence[Node]) -> JobIn:
    """``req`` with its GPU types spelled as the nodes spell them (``h100`` is ``H100``)."""
    known = {n.gpu_type for n in nodes}
    if all(t in known for t in req.gpu_types):
        return req  # the usual case: nothing to copy
    folded = {t.casefold(): t for t in known}
    types = [t if t in known else folded.get(t.casefold(), t) for t in req.gpu_types]
    return req.model_copy(update={"gpu_types": types})


def _whole_nodes(req: JobIn, nodes: Sequence[Node]) -> JobIn:
    """An exclusive job asks for all of a node: its GPUs, CPUs and memory (so nothing else
    can share it, and it is charged for the whole node, as Slurm does)."""
    usable = [n for n in nodes if not req.gpu_types or n.gpu_type in req.gpu_types]
    sizes = {(n.gpu_count, n.cpus, n.memory_mb) for n in usable}
    if len(sizes) != 1:
        found = ", ".join(sorted({f"{n.gpu_type}x{n.gpu_count}" for n in usable})) or "none"
        raise InvalidInput(
            "exclusive",
            (
                "whole nodes of different sizes could be chosen ({found}): name one "
                "--gpu-type whose nodes are all alike, or ask for GPUs, CPUs and memory "
                "instead"
            ),
            found=found,
        )
    ((gpus, cpus, memory),) = sizes
    return req.model_copy(
        update={"gpus_per_node": gpus, "cpus_per_node": cpus, "memory_mb_per_node": memory}
    )


def _check_fits(req: JobIn, nodes: Sequence[Node]) -> None:
    """Refuse what no node of the center could ever run, naming the field at fault."""
    known = sorted({n.gpu_type for n in nodes})
    for gpu_type in req.gpu_types:
        if gpu_type not in known:
            raise InvalidInput(
                "gpu_types",
                "unknown GPU type {gpu_type!r} (this center has {known})",
                gpu_type=gpu_type,
                known=", ".join(known),
            )
    usable = [n for n in nodes if not req.gpu_types or n.gpu_type in req.gpu_types]
    if req.gpus_per_node:
        most = max((n.gpu_count for n in usable), default=0)
        if req.gpus_per_node > most:
            raise InvalidInput(
                "gpus_per_node",
                (
                    "{gpus_per_node} per node requested, but the largest node of the accepted "
                    "types has {most}"
                    if req.gpu_types
                    else "{gpus_per_node} per node requested, but the largest node has {most}"
                ),
                gpus_per_node=Count(req.gpus_per_node, "GPU"),
                most=most,
            )
        by_type: dict[str, int] = {}
        for n in usable:
            if n.gpu_count >= req.gpus_per_node:
                by_type[n.gpu_type] = by_type.get(n.gpu_type, 0) + 1
        if req.nodes > max(by_type.values(), default=0):
            raise InvalidInput(
                "nodes",
                (
                    "{nodes} with {gpus_per_node} each requested, but {most_nodes} of one "
                    "GPU type at most have that many"
                ),
                nodes=Count(req.nodes, "node"),
                gpus_per_node=Count(req.gpus_per_node, "GPU"),
                most_nodes=Count(max(by_type.values(), default=0), "node"),
            )
    elif req.nodes > len(nodes):
        raise InvalidInput(
            "nodes",
            "{nodes} requested, the center has {center_nodes}",
            nodes=Count(req.nodes, "node"),
            center_nodes=Count(len(nodes), "node"),
        )
    cpus = req.cpus_per_node or DEFAULT_CPUS
    if cpus > max((n.cpus for n in usable), default=0):
        raise InvalidInput("cpus_per_node", "no node has {cpus} CPUs", cpus=cpus)
    memory = req.memory_mb_per_node or DEFAULT_MEMORY_MB
    if memory > max((n.memory_mb for n in usable), default=0):
        raise InvalidInput("memory_mb_per_node", "no node has {memory} MB of memory", memory=memory)


def _pending(job: NewJob) -> PendingJob:
    return PendingJob(
        id=job.id,
        project_id=job.project_id,
        user_id=job.user_id,
        submitted_at=epoch(job.submitted_at),
        gpus_per_node=job.gpus_per_node,
        nodes=job.nodes,
        cpus_per_node=job.cpus_per_node,
        memory_mb_per_node=job.memory_mb_per_node,
        time_limit_s=job.time_limit_s,
        priority=job.priority,
        gpu_types=tuple(job.gpu_types),
        held=job.held,
        dependent=job.dependency_pending,
    )


def _out_new(job: NewJob, project: str, user: str) -> JobOut:
    """The answer for a job just written, built from what was written (no re-read)."""
    return JobOut.model_construct(
        id=job.id,
        name=job.name,
        project=project,
        project_id=job.project_id,
        user=user,
        state=JobState.PENDING.value,
        reason=None,
        command=job.command,
        workdir=job.workdir,
        env=job.env,
        gpus_per_node=job.gpus_per_node,
        nodes=job.nodes,
        cpus_per_node=job.cpus_per_node,
        memory_mb_per_node=job.memory_mb_per_node,
        time_limit_s=job.time_limit_s,
        priority=job.priority,
        gpu_types=job.gpu_types,
        gpu_type=None,
        placement=[],
        output=job.output.value,
        output_path=job.output_path,
        error_path=job.error_path,
        held=job.held,
        dependency=job.dependency,
        submitted_at=job.submitted_at,
        started_at=None,
        ended_at=None,
        exit_code=None,
        attempts=0,
        idempotency_key=job.idempotency_key,
        array_id=job.array_id,
        array_index=job.array_index,
        borrowed=False,
        estimated_start=None,
        events=None,
    )


def job_out(
    session: Session,
    row: orm.Job,
    *,
    reason: str | None = None,
    events: list[EventOut] | None = None,
) -> JobOut:
    project = session.get(orm.Project, row.project_id)
    user = session.get(orm.User, row.user_id)
    node_names = {n.id: n.name for n in session.scalars(select(orm.Node))}
    out = _out(
        row, project.name if project else "?", user.name if user else "?", node_names, reason
    )
    out.events = events
    return out


def _out(
    row: orm.Job,
    project: str,
    user: str,
    node_names: dict[str, str],
    reason: str | None,
) -> JobOut:
    placement = [
        PlacementOut(node=node_names.get(a.node_id, a.node_id), devices=list(a.devices))
        for a in allocations_from_json(row.placement or [])
    ]
    return JobOut(
        id=row.id,
        name=row.name,
        project=project,
        project_id=row.project_id,
        user=user,
        state=row.state,
        reason=reason if reason is not None else row.reason,
        command=list(row.command),
        workdir=row.workdir,
        env=dict(row.env),
        gpus_per_node=row.gpus_per_node,
        nodes=row.nodes,
        cpus_per_node=row.cpus_per_node,
        memory_mb_per_node=row.memory_mb_per_node,
        time_limit_s=row.time_limit_s,
        priority=row.priority,
        gpu_types=list(row.gpu_types),
        gpu_type=row.gpu_type,
        placement=placement,
        output=row.output,
        output_path=row.output_path,
        error_path=row.error_path,
        held=bool(row.held),
        dependency=row.dependency,
        submitted_at=row.submitted_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        exit_code=row.exit_code,
        attempts=row.attempts,
        idempotency_key=row.idempotency_key,
        array_id=row.array_id,
        array_index=row.array_index,
        borrowed=bool(row.borrowed),
        last_checkpoint_at=row.last_checkpoint_at,
    )


#: a task of an array as Slurm's JOBID_IDX writes it: ``arr_…_7``
_TASK_REF = re.compile(r"(?P<array>arr_[0-9a-z]+)_(?P<index>\d{1,7})")


def job_ref(center: Center, who: Principal, ref: str) -> str:
    """The job id that ``ref`` names: a job id as it is, or an array task written
    ``ARRAY_INDEX`` (``arr_…_7``, as Slurm's ``JOBID_IDX``), looked up."""
    task = _TASK_REF.fullmatch(ref)
    if task is None:
        return ref
    with center.store.read() as session:
        found = session.scalar(
            select(orm.Job.id).where(
                orm.Job.array_id == task["array"],
                orm.Job.array_index == int(task["index"]),
                visible_jobs(who),
            )
        )
    if found is None:
        raise NotFound(
            "no task {index} in array {array!r}", index=task["index"], array=task["array"]
        )
    return found


def visible_job(session: Session, who: Principal, job_id: str) -> orm.Job:
    """The job row ``who`` may see (``NotFound`` otherwise, as for a job that is not)."""
    row = session.scalars(
        select(orm.Job).where(orm.Job.id == job_id, visible_jobs(who))
    ).one_or_none()
    if row is None:
        raise NotFound("no job {job_id!r}", job_id=job_id)
    return row


def _live_reason(center: Center, row: orm.Job) -> str | None:
    """A pending job's reason is the scheduler's latest word, kept in memory only."""
    if row.state == JobState.PENDING.value:
        reason = center.control.reason(row.id)
        if reason is not None:
            return reason.value
    return None


def _estimate(center: Center, row: orm.Job) -> datetime | None:
    return estimated_start(center, row.id) if row.state == JobState.PENDING.value else None


def get_job(center: Center, who: Principal, job_id: str, *, events: bool = True) -> JobOut:
    with center.store.read() as session:
        row = visible_job(session, who, job_id)
        history = None
        if events:
            history = [
                EventOut(at=e.at, from_state=e.from_state, to_state=e.to_state, reason=e.reason)
                for e in session.scalars(
                    select(orm.JobEvent)
                    .where(orm.JobEvent.job_id == job_id)
                    .order_by(orm.JobEvent.id)
                )
            ]
        out = job_out(session, row, reason=_live_reason(center, row), events=history)
        out.gpu_usage = [
            RunGpuUsageOut(
                attempt=u.attempt,
                ended_at=u.ended_at,
                samples=u.samples,
                util_mean_pct=u.util_mean_pct,
                util_max_pct=u.util_max_pct,
                memory_max_mib=u.memory_max_mib,
                idle_bp=u.idle_samples * BP // u.samples if u.samples else 0,
            )
            for u in session.scalars(
                select(orm.RunGpuUsage)
                .where(orm.RunGpuUsage.job_id == row.id)
                .order_by(orm.RunGpuUsage.attempt)
            )
        ]
        if events:
            out.steps = steps_of(session, [row.id])[row.id]
            out.script = row.script
        out.estimated_start = _estimate(center, row)
        if row.state == JobState.PENDING.value:
            place = queue_position(center, session, row.id)
            if place is not None:
                out.queue_position, out.queue_length = place
        if not _details_allowed(session, who, [row.id]):
            _redact(out)
        return out


#: what replaces a command, a directory or a path the caller may not read
REDACTED = "(other tenant)"


def _redact(out: JobOut) -> None:
    """Another tenant's job, seen by a program manager: its state and size stay, but its
    command, environment, directories and log paths (which may hold a company's data,
    secrets and what it works on) are for operators and the tenant only."""
    out.env = {}
    out.command = [REDACTED]
    out.workdir = REDACTED
    out.output_path = out.output_path and REDACTED
    out.error_path = out.error_path and REDACTED
    out.script = out.script and REDACTED
    for step in out.steps or ():
        step.command = [REDACTED]


def _details_allowed(session: Session, who: Principal, job_ids: list[str]) -> set[str]:
    """Which of ``job_ids`` ``who`` may read the log and environment of."""
    if who.role is Role.OPERATOR or not job_ids:
        return set(job_ids)
    return set(
        session.scalars(select(orm.Job.id).where(orm.Job.id.in_(job_ids), visible_job_details(who)))
    )


def job_state(center: Center, who: Principal, job_id: str) -> JobState:
    with center.store.read() as session:
        return JobState(visible_job(session, who, job_id).state)


def list_jobs(
    center: Center,
    who: Principal,
    *,
    states: Sequence[str] = (),
    project: str | None = None,
    mine: bool = False,
    array: str | None = None,
    users: Sequence[str] = (),
    names: Sequence[str] = (),
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[JobOut], str | None]:
    """Newest first, keyset-paginated on the time-ordered job id.

    Several states are read as one newest-first range per state (index ``(state, id)``),
    merged: an ``IN`` over the states would sort every matching row of a long history.
    """
    for state in states:
        if state not in JobState.__members__.values():
            raise InvalidInput("state", "unknown state {state!r}", state=state)
    where = [visible_jobs(who)]
    if mine:
        where.append(orm.Job.user_id == who.user_id)
    if array:
        where.append(orm.Job.array_id == array)
    if users:
        ids = [u for u in users if u.startswith("usr_")]
        named = select(orm.User.id).where(orm.User.name.in_([u for u in users if u not in ids]))
        where.append(orm.Job.user_id.in_(ids) | orm.Job.user_id.in_(named))
    if names:
        where.append(orm.Job.name.in_(list(names)))
    if cursor:
        where.append(orm.Job.id < cursor)
    if project:
        where.append(orm.Job.project_id.in_(select(orm.Project.id).where(project_named(project))))
    newest = orm.Job.id.desc()
    query = select(orm.Job).where(*where)
    if len(states) == 1:
        query = query.where(orm.Job.state == states[0])
    elif states:
        ranges = [
            select(orm.Job.id)
            .where(*where, orm.Job.state == state)
            .order_by(newest)
            .limit(limit + 1)
            .subquery()
            for state in dict.fromkeys(states)
        ]
        query = select(orm.Job).where(orm.Job.id.in_(union_all(*(select(r.c.id) for r in ranges))))
    with center.store.read() as session:
        rows = session.scalars(query.order_by(newest).limit(limit + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        projects = {
            p.id: p.name
            for p in session.scalars(
                select(orm.Project).where(orm.Project.id.in_({r.project_id for r in rows}))
            )
        }
        user_names = {
            u.id: u.name
            for u in session.scalars(
                select(orm.User).where(orm.User.id.in_({r.user_id for r in rows}))
            )
        }
        node_names = {n.id: n.name for n in session.scalars(select(orm.Node))}
        allowed = _details_allowed(session, who, [r.id for r in rows])
        items = [
            _out(
                r,
                projects.get(r.project_id, "?"),
                user_names.get(r.user_id, "?"),
                node_names,
                _live_reason(center, r),
            )
            for r in rows
        ]
        for item in items:
            if item.id not in allowed:
                _redact(item)
    return items, (rows[-1].id if more and rows else None)


def cancel(center: Center, who: Principal, job_id: str) -> JobState:
    """Cancel a job: a pending one at once, a running one by stopping its processes.

    Returns the state the job is in after the request (``cancelled``, or ``running``
    while its processes are being stopped).
    """
    with center.store.write() as session:
        row = visible_job(session, who, job_id)
        if not may_manage(who, row, session):
            raise Forbidden(
                "you may not cancel job {job_id}: it belongs to another user", job_id=job_id
            )
        state = JobState(row.state)
        if state.terminal:
            raise Conflict("job {job_id} already ended: {state}", job_id=job_id, state=state.value)
        if state is JobState.PENDING:
            now = utcnow()
            done = transition(
                session,
                job_id,
                [JobState.PENDING],
                JobState.CANCELLED,
                at=now,
                reason=f"cancelled by {who.name}",
                ended_at=now,
            )
            if done is not None:
                center.control.forget(job_id)
                return JobState.CANCELLED
    # admitted or running (or admitted meanwhile): the control loop stops it
    center.control.cancel(job_id)
    return state


def checkpoint(center: Center, who: Principal, job_id: str) -> datetime:
    """A running job saved its work: a preemption would now lose only what it does from
    here (docs/scheduling.md, "What reclaim weighs"). Called from inside the job
    (``axc checkpoint`` reads ``AXC_JOB_ID``), by those who may cancel it. Returns the
    time recorded."""
    now = utcnow()
    with center.store.write() as session:
        row = visible_job(session, who, job_id)
        if not may_manage(who, row, session):
            raise Forbidden(
                "you may not report a checkpoint of job {job_id}: not your job", job_id=job_id
            )
        if row.state != JobState.RUNNING.value:
            raise Conflict(
                "job {job_id} is {state}: only a running job checkpoints",
                job_id=job_id,
                state=row.state,
            )
        row.last_checkpoint_at = now
    center.control.checkpointed(job_id, epoch(now))
    return now


def resubmit(center: Center, who: Principal, job_id: str) -> Submitted:
    """A new job with the specification of ``job_id``, whose history stays as it is.

    Only those who may cancel the job may resubmit it (its environment may hold secrets).
    The new job is its owner's, whoever resubmits it (as Slurm's requeue): it runs as the
    owner's unix account, in the owner's working directory, charged to the owner's
    project; an administrator acting for a user never gains the user's files.
    """
    with center.store.read() as session:
        row = visible_job(session, who, job_id)
        if not may_manage(who, row, session):
            raise Forbidden(
                "you may not resubmit job {job_id}: it belongs to another user", job_id=job_id
            )
        owner = session.get(orm.User, row.user_id)
        if owner is None or not owner.active:
            raise Conflict(
                "job {job_id}'s owner is no longer active: it cannot run again", job_id=job_id
            )
        if owner.id != who.user_id:
            who = Principal(owner.id, owner.name, owner.organization_id, Role(owner.role))
        spec = JobIn(
            project=row.project_id,
            name=row.name,
            command=list(row.command),
            workdir=row.workdir,
            env=dict(row.env),
            gpus_per_node=row.gpus_per_node,
            nodes=row.nodes,
            cpus_per_node=row.cpus_per_node,
            memory_mb_per_node=row.memory_mb_per_node,
            time_limit_s=row.time_limit_s,
            priority=row.priority,
            gpu_types=list(row.gpu_types),
            output=JobOutput(row.output),
            output_path=row.output_path,
            error_path=row.error_path,
            script=row.script,
        )
    (result,) = submit(center, who, [spec])
    return result


def may_manage(who: Principal, row: orm.Job, session: Session) -> bool:
    if who.role is Role.OPERATOR or row.user_id == who.user_id:
        return True
    if who.role is Role.ORG_ADMIN:
        project = session.get(orm.Project, row.project_id)
        return project is not None and project.organization_id == who.organization_id
    return False


def read_log(
    center: Center, who: Principal, job_id: str, offset: int, limit: int
) -> tuple[bytes, int, str]:
    """Bytes of the job's log from ``offset``; returns (data, next offset, job state)."""
    if offset < 0:
        raise InvalidInput("offset", "must be 0 or more")
    with center.store.read() as session:
        row = visible_job(session, who, job_id)
        state = row.state
        if not _details_allowed(session, who, [job_id]):
            raise Forbidden(
                "the log of job {job_id} belongs to another organization", job_id=job_id
            )
        if row.output == JobOutput.DISCARD:
            raise Conflict(
                "job {job_id} has no log: it was submitted with output=discard", job_id=job_id
            )
    chunk = center.control.engine.read_log(job_id, offset, limit)
    if chunk is None:
        return b"", offset, state
    if chunk.start > offset:  # rotated away (executors/logs.py): say so, in the log's place
        gap = f"[axcenter] {chunk.start - offset} bytes of earlier output were rotated away\n"
        return gap.encode() + chunk.data, chunk.start + len(chunk.data), state
    return chunk.data, chunk.start + len(chunk.data), state
