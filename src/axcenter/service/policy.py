"""Scheduling policy use cases: quotas, cohorts, project limits, reservations.

Operators change policy; nobody else does. Reading follows visibility: a quota or a
project's settings are read by whoever may see the project; cohorts and reservations are
center-wide facts every user may list, with other tenants' project names hidden.

Who may do what, in the order it is checked (so that a refusal leaks nothing):

- a project the caller cannot see answers ``NotFound``, as everywhere in the API;
- a visible project, or a center-wide object, that the caller may not change answers
  ``Forbidden``;
- only then is the request itself validated (``InvalidInput`` naming the field,
  ``Conflict`` for a clash with the current state).

Every change commits first and then tells the control loop (``policy_changed``), so the
live scheduler plans its next cycle with what the store now holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from axcenter.model.access import Principal, Role
from axcenter.model.cluster import Node
from axcenter.model.ids import new_id
from axcenter.model.quota import ROOT_COHORT
from axcenter.service.access import project_named, visible_projects
from axcenter.service.audit import record
from axcenter.service.cluster import HIDDEN
from axcenter.service.errors import Conflict, Forbidden, InvalidInput, NotFound
from axcenter.service.schemas import (
    CohortOut,
    ProjectPolicyOut,
    QuotaOut,
    ReservationNodeOut,
    ReservationOut,
)
from axcenter.store import orm
from axcenter.store.policy import granted_quotas
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = [
    "CLEARABLE_LIMITS",
    "MAX_NOMINAL",
    "create_cohort",
    "create_reservation",
    "delete_cohort",
    "delete_quota",
    "delete_reservation",
    "get_project_policy",
    "get_quota",
    "list_cohorts",
    "list_quotas",
    "list_reservations",
    "set_cohort_parent",
    "set_project_cohort",
    "set_project_limits",
    "set_quota",
]

#: the largest nominal quota accepted (the API schema says the same)
MAX_NOMINAL = 100_000
#: project limits that ``set_project_limits(clear=...)`` removes
CLEARABLE_LIMITS = frozenset({"max_running_jobs", "max_gpus"})


# -- common ---------------------------------------------------------------------------------


def _require_operator(who: Principal, action: str) -> None:
    if who.role is not Role.OPERATOR:
        raise Forbidden("only operators may {action}", action=action)


def _project(session: Session, who: Principal, ref: str, *, lock: bool = False) -> orm.Project:
    """The project ``ref`` (name or ``prj_`` id) if ``who`` may see it, else NotFound."""
    query = select(orm.Project).where(project_named(ref), visible_projects(who))
    if lock:
        query = query.with_for_update(key_share=True)
    project = session.scalars(query).one_or_none()
    if project is None:
        raise NotFound("no project {ref!r}", ref=ref)
    return project


def _changeable_project(session: Session, who: Principal, ref: str, action: str) -> orm.Project:
    """Visibility first (404), then the role (403): others learn nothing from a refusal."""
    project = _project(session, who, ref, lock=who.role is Role.OPERATOR)
    _require_operator(who, action)
    return project


def _utc(moment: datetime) -> datetime:
    """Aware UTC; a time without a zone is taken as UTC (the API's convention)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _check_gpus(field: str, value: int | None) -> None:
    if value is not None and not 0 <= value <= MAX_NOMINAL:
        raise InvalidInput(
            field,
            "must be between 0 and {most}, got {value}",
            most=MAX_NOMINAL,
            value=value,
        )


# -- quotas ---------------------------------------------------------------------------------


def _in_use(center: Center) -> dict[tuple[str, str], int]:
    """GPUs held now per (project id, GPU type), from the control loop's cache."""
    held: dict[tuple[str, str], int] = {}
    for job in tuple(center.control.state.running.values()):
        if job.gpu_type:
            key = (job.project_id, job.gpu_type)
            held[key] = held.get(key, 0) + job.gpus
    return held


def _quota_out(
    row: orm.ProjectQuota, project: orm.Project, in_use: Mapping[tuple[str, str], int]
) -> QuotaOut:
    used = in_use.get((row.project_id, row.gpu_type), 0)
    return QuotaOut(
        project=project.name,
        project_id=project.id,
        gpu_type=row.gpu_type,
        nominal=row.nominal,
        borrowing_limit=row.borrowing_limit,
        lending_limit=row.lending_limit,
        in_use=used,
        borrowing=used > row.nominal,
    )


def set_quota(
    center: Center,
    who: Principal,
    project_ref: str,
    gpu_type: str,
    nominal: int,
    borrowing_limit: int | None = None,
    lending_limit: int | None = None,
) -> QuotaOut:
    """Create or replace a project's quota of one GPU type (all three values at once).

    The type is spelled as the nodes spell it (``h100`` is ``H100``); a nominal quota is a
    guarantee, so it may not exceed the center's GPUs of that type."""
    nodes = tuple(center.control.state.nodes.values())
    capacity: dict[str, int] = {}
    for node in nodes:
        capacity[node.gpu_type] = capacity.get(node.gpu_type, 0) + node.gpu_count
    known = sorted(capacity)
    gpu_type = next((t for t in known if t.casefold() == gpu_type.casefold()), gpu_type)
    for attempt in range(2):
        try:
            with center.store.write() as session:
                project = _changeable_project(session, who, project_ref, "change quotas")
                if gpu_type not in known:
                    raise InvalidInput(
                        "gpu_type",
                        "unknown GPU type {gpu_type!r} (this center has {known})",
                        gpu_type=gpu_type,
                        known=", ".join(known),
                    )
                _check_gpus("nominal", nominal)
                if nominal > capacity[gpu_type]:
                    raise InvalidInput(
                        "nominal",
                        (
                            "{nominal} {gpu_type} GPUs guaranteed, but the center has "
                            "{capacity}: a nominal quota is a guarantee, give at most "
                            "{capacity} (borrowing_limit lets a project use more)"
                        ),
                        nominal=nominal,
                        gpu_type=gpu_type,
                        capacity=capacity[gpu_type],
                    )
                _check_gpus("borrowing_limit", borrowing_limit)
                _check_gpus("lending_limit", lending_limit)
                if lending_limit is not None and lending_limit > nominal:
                    raise InvalidInput(
                        "lending_limit",
                        (
                            "{lending_limit} is above the nominal quota {nominal}: a project can "
                            "only lend what it is granted"
                        ),
                        lending_limit=lending_limit,
                        nominal=nominal,
                    )
                row = session.get(orm.ProjectQuota, (project.id, gpu_type))
                if row is None:
                    row = orm.ProjectQuota(project_id=project.id, gpu_type=gpu_type, nominal=0)
                    session.add(row)
                row.nominal = nominal
                row.borrowing_limit = borrowing_limit
                row.lending_limit = lending_limit
                record(
                    session,
                    who,
                    "quota.set",
                    "project",
                    project.id,
                    {
                        "gpu_type": gpu_type,
                        "nominal": nominal,
                        "borrowing_limit": borrowing_limit,
                        "lending_limit": lending_limit,
                    },
                )
                out = _quota_out(row, project, _in_use(center))
            break
        except IntegrityError:
            # a concurrent first quota for the same (project, type): update it instead
            if attempt:
                raise
    center.control.policy_changed()
    return out


def get_quota(center: Center, who: Principal, project_ref: str, gpu_type: str) -> QuotaOut:
    with center.store.read() as session:
        project = _project(session, who, project_ref)
        row = session.get(orm.ProjectQuota, (project.id, gpu_type))
        if row is None:
            raise NotFound(
                "project {project} has no {gpu_type} quota", project=project.name, gpu_type=gpu_type
            )
        return _quota_out(row, project, _in_use(center))


def delete_quota(center: Center, who: Principal, project_ref: str, gpu_type: str) -> None:
    """Remove a quota: the project's jobs of that type then only borrow."""
    with center.store.write() as session:
        project = _changeable_project(session, who, project_ref, "change quotas")
        row = session.get(orm.ProjectQuota, (project.id, gpu_type))
        if row is None:
            raise NotFound(
                "project {project} has no {gpu_type} quota", project=project.name, gpu_type=gpu_type
            )
        session.delete(row)
        record(session, who, "quota.delete", "project", project.id, {"gpu_type": gpu_type})
    center.control.policy_changed()


def list_quotas(center: Center, who: Principal, project_ref: str | None = None) -> list[QuotaOut]:
    """Quotas of the projects ``who`` may see, as the scheduler applies them: those set by
    operators and, for the other GPU types, those derived from active grants; with what
    each project holds right now."""
    in_use = _in_use(center)
    with center.store.read() as session:
        projects = select(orm.Project).where(visible_projects(who))
        if project_ref is not None:
            projects = projects.where(orm.Project.id == _project(session, who, project_ref).id)
        visible = {p.id: p for p in session.scalars(projects)}
        out = [
            _quota_out(q, visible[q.project_id], in_use)
            for q in session.scalars(
                select(orm.ProjectQuota).where(orm.ProjectQuota.project_id.in_(list(visible)))
            )
        ]
        set_by_operator = {(q.project_id, q.gpu_type) for q in out}
        for project_id, types in granted_quotas(session, utcnow()).items():
            project = visible.get(project_id)
            for gpu_type, quota in types.items():
                if project is None or (project_id, gpu_type) in set_by_operator:
                    continue
                used = in_use.get((project_id, gpu_type), 0)
                out.append(
                    QuotaOut(
                        project=project.name,
                        project_id=project_id,
                        gpu_type=gpu_type,
                        nominal=quota.nominal,
                        borrowing_limit=None,
                        lending_limit=None,
                        in_use=used,
                        borrowing=used > quota.nominal,
                        source="grant",
                    )
                )
    return sorted(out, key=lambda q: (q.project, q.gpu_type))


# -- cohorts --------------------------------------------------------------------------------


def _cohort(session: Session, name: str, *, field: str | None = None) -> orm.Cohort:
    """The cohort named ``name``; unknown is NotFound in a path, InvalidInput in a body."""
    cohort = session.scalars(select(orm.Cohort).where(orm.Cohort.name == name)).one_or_none()
    if cohort is None:
        if field is not None:
            raise InvalidInput(field, "unknown cohort {name!r}", name=name)
        raise NotFound("no cohort {name!r}", name=name)
    return cohort


def _check_cohort_name(name: str) -> None:
    if name == ROOT_COHORT:
        raise InvalidInput(
            "name",
            "{ROOT_COHORT!r} is the center's root cohort, which always exists",
            ROOT_COHORT=ROOT_COHORT,
        )


def create_cohort(
    center: Center, who: Principal, name: str, parent: str | None = None
) -> CohortOut:
    _require_operator(who, "create cohorts")
    _check_cohort_name(name)
    try:
        with center.store.write() as session:
            if session.scalars(select(orm.Cohort.id).where(orm.Cohort.name == name)).first():
                raise Conflict("cohort {name!r} already exists", name=name)
            parent_row = None if parent is None else _cohort(session, parent, field="parent")
            row = orm.Cohort(
                id=new_id("coh"),
                name=name,
                parent_id=parent_row.id if parent_row else None,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            out = CohortOut(
                id=row.id,
                name=row.name,
                parent=parent_row.name if parent_row else None,
                projects=[],
                children=[],
            )
    except IntegrityError:
        raise Conflict("cohort {name!r} already exists", name=name) from None
    center.control.policy_changed()
    return out


def set_cohort_parent(center: Center, who: Principal, name: str, parent: str | None) -> CohortOut:
    """Move a cohort under another (or the root), refusing to make the tree a cycle."""
    _require_operator(who, "change cohorts")
    with center.store.write() as session:
        # lock every cohort: two concurrent moves could otherwise close a cycle together
        cohorts = {
            c.id: c for c in session.scalars(select(orm.Cohort).with_for_update(key_share=True))
        }
        row = _cohort(session, name)
        parent_row = None if parent is None else _cohort(session, parent, field="parent")
        ancestor = parent_row
        while ancestor is not None:
            if ancestor.id == row.id:
                raise InvalidInput(
                    "parent",
                    "cohort {parent!r} is {name!r} or inside it: the move would make a cycle",
                    parent=parent,
                    name=name,
                )
            ancestor = cohorts.get(ancestor.parent_id) if ancestor.parent_id else None
        row.parent_id = parent_row.id if parent_row else None
        out = _cohorts_out(session, None, [row])[0]
    center.control.policy_changed()
    return out


def _cohorts_out(
    session: Session, who: Principal | None, rows: Sequence[orm.Cohort]
) -> list[CohortOut]:
    """Cohorts with parent, children and member projects (those ``who`` may see)."""
    every = session.scalars(select(orm.Cohort)).all()
    names = {c.id: c.name for c in every}
    children: dict[str, list[str]] = {}
    for c in every:
        if c.parent_id:
            children.setdefault(c.parent_id, []).append(c.name)
    query = select(orm.Project.cohort_id, orm.Project.name).where(
        orm.Project.cohort_id.in_([r.id for r in rows])
    )
    if who is not None:
        query = query.where(visible_projects(who))
    members: dict[str, list[str]] = {}
    for cohort_id, project in session.execute(query).tuples():
        if cohort_id is not None:
            members.setdefault(cohort_id, []).append(project)
    return [
        CohortOut(
            id=r.id,
            name=r.name,
            parent=names.get(r.parent_id) if r.parent_id else None,
            projects=sorted(members.get(r.id, [])),
            children=sorted(children.get(r.id, [])),
        )
        for r in rows
    ]


def list_cohorts(center: Center, who: Principal) -> list[CohortOut]:
    """Every cohort (the tree is center-wide); members only where ``who`` sees them."""
    with center.store.read() as session:
        rows = session.scalars(select(orm.Cohort).order_by(orm.Cohort.name)).all()
        return _cohorts_out(session, who, rows)


def delete_cohort(center: Center, who: Principal, name: str) -> None:
    """Delete an empty cohort; one with projects or cohorts in it is refused (Conflict)."""
    _require_operator(who, "delete cohorts")
    try:
        _delete_cohort(center, name)
    except IntegrityError:
        # a project or cohort was put in it meanwhile (PostgreSQL's foreign key saw it)
        raise Conflict("cohort {name!r} is no longer empty", name=name) from None
    center.control.policy_changed()


def _delete_cohort(center: Center, name: str) -> None:
    with center.store.write() as session:
        row = _cohort(session, name)
        projects = session.scalars(
            select(orm.Project.name).where(orm.Project.cohort_id == row.id).limit(3)
        ).all()
        if projects:
            raise Conflict(
                ("cohort {name!r} still has projects ({projects}): move them out first"),
                name=name,
                projects=", ".join(projects) + (", ..." if len(projects) == 3 else ""),
            )
        children = session.scalars(
            select(orm.Cohort.name).where(orm.Cohort.parent_id == row.id).limit(3)
        ).all()
        if children:
            raise Conflict(
                ("cohort {name!r} still has cohorts ({children}): move or delete them first"),
                name=name,
                children=", ".join(children) + (", ..." if len(children) == 3 else ""),
            )
        session.delete(row)


def _project_policy(session: Session, project: orm.Project) -> ProjectPolicyOut:
    cohort = session.get(orm.Cohort, project.cohort_id) if project.cohort_id else None
    return ProjectPolicyOut(
        id=project.id,
        name=project.name,
        cohort=cohort.name if cohort else None,
        fair_share_weight=project.fair_share_weight,
        max_running_jobs=project.max_running_jobs,
        max_gpus=project.max_gpus,
    )


def set_project_cohort(
    center: Center, who: Principal, project_ref: str, cohort: str | None
) -> ProjectPolicyOut:
    """Put a project in a cohort, or (``None``) directly under the root.

    Projects are the leaves of the tree, so this can never make a cycle.
    """
    try:
        with center.store.write() as session:
            project = _changeable_project(session, who, project_ref, "change cohorts")
            row = None if cohort is None else _cohort(session, cohort, field="cohort")
            project.cohort_id = row.id if row else None
            out = _project_policy(session, project)
    except IntegrityError:
        raise Conflict("cohort {cohort!r} was deleted meanwhile", cohort=cohort) from None
    center.control.policy_changed()
    return out


# -- project limits -------------------------------------------------------------------------


def get_project_policy(center: Center, who: Principal, project_ref: str) -> ProjectPolicyOut:
    with center.store.read() as session:
        return _project_policy(session, _project(session, who, project_ref))


def set_project_limits(
    center: Center,
    who: Principal,
    project_ref: str,
    *,
    fair_share_weight: float | None = None,
    max_running_jobs: int | None = None,
    max_gpus: int | None = None,
    clear: Iterable[str] = (),
) -> ProjectPolicyOut:
    """Change a project's fair-share weight and caps.

    ``None`` leaves a setting as it is; a cap is removed only by naming it in ``clear``
    (``"max_running_jobs"``, ``"max_gpus"``), so that a partial update never drops a
    limit by accident. Setting and clearing the same cap at once is refused.
    """
    cleared = set(clear)
    with center.store.write() as session:
        project = _changeable_project(session, who, project_ref, "change project limits")
        unknown = cleared - CLEARABLE_LIMITS
        if unknown:
            raise InvalidInput(
                "clear",
                "cannot clear {unknown}: only {CLEARABLE_LIMITS}",
                unknown=", ".join(sorted(unknown)),
                CLEARABLE_LIMITS=", ".join(sorted(CLEARABLE_LIMITS)),
            )
        if fair_share_weight is not None and not 0 < fair_share_weight <= 1_000_000:
            raise InvalidInput("fair_share_weight", "must be more than 0 (and at most 1000000)")
        for field, value in (("max_running_jobs", max_running_jobs), ("max_gpus", max_gpus)):
            if value is None:
                continue
            if field in cleared:
                raise InvalidInput(field, "given a value and also asked to clear it")
            if value < 1:
                raise InvalidInput(
                    field,
                    "must be at least 1 (clear it to remove the cap), got {value}",
                    value=value,
                )
        if fair_share_weight is not None:
            project.fair_share_weight = fair_share_weight
        if max_running_jobs is not None:
            project.max_running_jobs = max_running_jobs
        if max_gpus is not None:
            project.max_gpus = max_gpus
        if "max_running_jobs" in cleared:
            project.max_running_jobs = None
        if "max_gpus" in cleared:
            project.max_gpus = None
        out = _project_policy(session, project)
    center.control.policy_changed()
    return out


# -- reservations ---------------------------------------------------------------------------


def create_reservation(
    center: Center,
    who: Principal,
    name: str,
    project_ref: str,
    starts_at: datetime | None,
    ends_at: datetime,
    nodes: Sequence[str],
    devices: Mapping[str, Sequence[int]] | None = None,
) -> ReservationOut:
    """Hold devices for one project during ``[starts_at, ends_at)``.

    ``nodes`` are node names; ``devices`` optionally narrows a node to some of its device
    indices (default: all of them). ``starts_at`` ``None`` is now; times without a zone
    are UTC. A reservation may not share a device with another one whose window overlaps
    (Conflict naming it): the scheduler could not honour both.
    """
    now = utcnow()
    start = now if starts_at is None else _utc(starts_at)
    end = _utc(ends_at)
    cluster = {n.name: n for n in tuple(center.control.state.nodes.values())}
    try:
        with center.store.write() as session:
            project = _changeable_project(session, who, project_ref, "create reservations")
            if end <= start:
                raise InvalidInput(
                    "ends_at",
                    "{end} is not after starts_at {start}",
                    end=_when(end),
                    start=_when(start),
                )
            if end <= now:
                raise InvalidInput("ends_at", "{end} is in the past", end=_when(end))
            held = _devices_to_hold(cluster, nodes, devices or {})
            # lock the nodes: two concurrent reservations of a device cannot both pass
            session.scalars(
                select(orm.Node.id)
                .where(orm.Node.id.in_(list(held)))
                .with_for_update(key_share=True)
            ).all()
            if session.scalars(
                select(orm.Reservation.id).where(orm.Reservation.name == name)
            ).first():
                raise Conflict("reservation {name!r} already exists", name=name)
            _check_no_overlap(session, held, start, end, {n.id: n.name for n in cluster.values()})
            row = orm.Reservation(
                id=new_id("rsv"),
                name=name,
                project_id=project.id,
                starts_at=start,
                ends_at=end,
                devices=[{"node_id": n, "devices": d} for n, d in held.items()],
                created_at=now,
            )
            session.add(row)
            session.flush()
            out = _reservation_out(
                row, project.name, project.id, {n.id: n.name for n in cluster.values()}, now
            )
    except IntegrityError:
        raise Conflict("reservation {name!r} already exists", name=name) from None
    center.control.policy_changed()
    return out


def _devices_to_hold(
    cluster: Mapping[str, Node], nodes: Sequence[str], devices: Mapping[str, Sequence[int]]
) -> dict[str, list[int]]:
    """Node id -> device indices for the requested node names, each checked."""
    if not nodes:
        raise InvalidInput("nodes", "name at least one node")
    held: dict[str, list[int]] = {}
    for index, node_name in enumerate(nodes):
        field = f"nodes[{index}]"
        node = cluster.get(node_name)
        if node is None:
            raise InvalidInput(
                f"{field}.node",
                "unknown node {node_name!r} (this center has {cluster})",
                node_name=node_name,
                cluster=", ".join(sorted(cluster)),
            )
        if node.id in held:
            raise InvalidInput(
                f"{field}.node", "node {node_name!r} is named twice", node_name=node_name
            )
        wanted = list(range(node.gpu_count))
        if node_name in devices:
            wanted = sorted(set(devices[node_name]))
            if not wanted:
                raise InvalidInput(f"{field}.devices", "name at least one device")
            bad = [d for d in wanted if not 0 <= d < node.gpu_count]
            if bad:
                raise InvalidInput(
                    f"{field}.devices",
                    "node {node_name} has devices 0..{last}, not {bad}",
                    node_name=node_name,
                    last=node.gpu_count - 1,
                    bad=bad,
                )
        if not wanted:
            raise InvalidInput(
                f"{field}.node", "node {node_name} has no GPUs to reserve", node_name=node_name
            )
        held[node.id] = wanted
    return held


def _check_no_overlap(
    session: Session,
    held: Mapping[str, Sequence[int]],
    start: datetime,
    end: datetime,
    node_names: Mapping[str, str],
) -> None:
    """Conflict naming the first reservation sharing a device and a moment with ``held``."""
    mine = {(node_id, d) for node_id, wanted in held.items() for d in wanted}
    for other in session.scalars(
        select(orm.Reservation)
        .where(orm.Reservation.starts_at < end, orm.Reservation.ends_at > start)
        .order_by(orm.Reservation.starts_at, orm.Reservation.name)
    ):
        shared = sorted(
            (node_names.get(n["node_id"], n["node_id"]), d)
            for n in other.devices
            for d in n["devices"]
            if (n["node_id"], d) in mine
        )
        if shared:
            where = ", ".join(f"{node}[{d}]" for node, d in shared[:8])
            raise Conflict(
                "overlaps reservation {name!r} ({starts_at} to {ends_at}) on {where}",
                name=other.name,
                starts_at=_when(other.starts_at),
                ends_at=_when(other.ends_at),
                where=where,
            )


def _reservation_out(
    row: orm.Reservation,
    project: str,
    project_id: str | None,
    node_names: Mapping[str, str],
    now: datetime,
) -> ReservationOut:
    """``project_id`` None: the caller may not see the project, nor the name given."""
    return ReservationOut(
        id=row.id,
        name=row.name if project_id is not None else HIDDEN,
        project=project,
        project_id=project_id,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        nodes=[
            ReservationNodeOut(
                node=node_names.get(n["node_id"], n["node_id"]), devices=list(n["devices"])
            )
            for n in row.devices
        ],
        active=row.starts_at <= now < row.ends_at,
    )


def list_reservations(
    center: Center, who: Principal, *, include_ended: bool = False
) -> list[ReservationOut]:
    """Every reservation, earliest first: all users must see what blocks their jobs.

    The project of a reservation, and the reservation's own name (which often says
    what the project works on), are shown only to those who may see the project; the
    others see when and which devices.
    """
    now = utcnow()
    with center.store.read() as session:
        query = select(orm.Reservation, orm.Project.name, visible_projects(who)).join(
            orm.Project, orm.Project.id == orm.Reservation.project_id
        )
        if not include_ended:
            query = query.where(orm.Reservation.ends_at > now)
        rows = session.execute(
            query.order_by(orm.Reservation.starts_at, orm.Reservation.name)
        ).tuples()
        node_names = {n.id: n.name for n in session.scalars(select(orm.Node))}
        return [
            _reservation_out(
                r,
                project if visible else HIDDEN,
                r.project_id if visible else None,
                node_names,
                now,
            )
            for r, project, visible in rows
        ]


def delete_reservation(center: Center, who: Principal, name: str) -> None:
    """Remove a reservation (also one in progress: its devices become free at once)."""
    _require_operator(who, "delete reservations")
    with center.store.write() as session:
        row = session.scalars(
            select(orm.Reservation).where(orm.Reservation.name == name)
        ).one_or_none()
        if row is None:
            raise NotFound("no reservation {name!r}", name=name)
        session.delete(row)
    center.control.policy_changed()
