"""Use monitoring and take-back: grants whose GPUs sit idle, and what an operator does.

A grant is compared with even use over its window (the quota it derives assumes as
much, docs/accounting.md §6): by now it would have used ``granted x elapsed`` GPU-seconds.
Its use is what was charged to it plus what its running jobs have run so far. It is
flagged ``under_used`` once ``MIN_ELAPSED_BP`` of its window has passed and it used less
than ``UNDER_USE_BP`` of that, and ``idle`` when nothing ran on it for ``IDLE_DAYS``. The
evidence (each figure, the last use, the running jobs) is kept with every action.

Program managers and operators act (``request.decide``), and each action is a notice the
organization sees in its feed, and an audit entry:

- ``warn``: a notice, nothing else changes;
- ``suspend``: the grant pays for no new run (its jobs wait, reason ``budget``; running
  ones finish and are charged to it); ``resume`` lifts it;
- ``reclaim``: GPU-hours taken back from what is left (never what is charged or held),
  their won in proportion; with ``withdraw_pending`` the tranches not yet released go too.
  What is taken back is no longer granted, so it is back in the program's budget.

Beside allocated-but-idle time (which every engine reports), where engines see real GPUs
they report each run's utilisation (``run_gpu_usage``): a grant whose sampled GPU-samples
are at or below 5% for ``GPUS_IDLE_BP`` of the time is flagged ``gpus_idle`` (GPUs held,
doing nothing), with the GPU-hours so spent and the worst jobs. A grant's terms are its
GPU types, and a run is funded only by a grant that covers its type (the hold needs the
type's GPU-seconds), so the grant's own runs are never outside them; its project's runs
in its window on other types are listed with who paid (another grant: for the officer
to judge), and flagged ``off_purpose`` when no grant did (run free of charge).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from axcenter.accounting.ledger import CHARGE_KINDS, balance
from axcenter.model.access import Principal, Role
from axcenter.model.money import BP
from axcenter.service.access import (
    allocation_for,
    center_target,
    require,
    visible_allocations,
)
from axcenter.service.audit import record
from axcenter.service.errors import Conflict, Forbidden, InvalidInput
from axcenter.service.obligations import notice_out
from axcenter.service.program_schemas import (
    GrantNoticeOut,
    GrantUseListOut,
    GrantUseOut,
    OffPurposeOut,
    ReclaimIn,
)
from axcenter.service.programs import program_by_ref
from axcenter.service.tranches import withdraw_pending
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = [
    "GPUS_IDLE_BP",
    "IDLE_DAYS",
    "MIN_ELAPSED_BP",
    "UNDER_USE_BP",
    "grant_use",
    "idle_grants",
    "one_grant_use",
    "reclaim",
    "resume",
    "suspend",
    "warn",
]

UNDER_USE_BP = 3000
#: the share of a grant's sampled GPU-samples at or below 5% that flags ``gpus_idle``
GPUS_IDLE_BP = 8000
#: the worst jobs listed as evidence
EVIDENCE_JOBS = 10
MIN_ELAPSED_BP = 2500
IDLE_DAYS = 14
SECONDS_PER_HOUR = 3600
DAY_S = 86_400


def grant_use(session: Session, allocation: orm.Allocation, now: datetime) -> GrantUseOut:
    """A grant's use against even use, with the flags it earns at ``now``."""
    project = session.get(orm.Project, allocation.project_id)
    org = session.get(orm.Organization, project.organization_id) if project else None
    b = balance(session, allocation.id)
    granted = sum(b.granted_gpu_seconds.values())
    window = max((allocation.ends_at - allocation.starts_at).total_seconds(), 1.0)
    passed = min(max((now - allocation.starts_at).total_seconds(), 0.0), window)
    elapsed_bp = int(passed * BP // window)
    expected = granted * elapsed_bp // BP
    sums = orm.AllocationBalance
    charged_secs = int(
        session.scalar(
            select(func.coalesce(func.sum(sums.charged_gpu_seconds), 0)).where(
                sums.allocation_id == allocation.id
            )
        )
        or 0
    )
    running = session.execute(
        select(orm.Job.gpus_per_node * orm.Job.nodes, orm.Job.started_at).where(
            orm.Job.allocation_id == allocation.id,
            orm.Job.state == "running",
            orm.Job.started_at.is_not(None),
        )
    ).all()
    running_secs = sum(
        int(gpus) * max(int((now - started).total_seconds()), 0) for gpus, started in running
    )
    used = charged_secs + running_secs
    last_charge = session.scalar(
        select(func.max(orm.LedgerEntry.at)).where(
            orm.LedgerEntry.allocation_id == allocation.id,
            orm.LedgerEntry.kind.in_(CHARGE_KINDS),
        )
    )
    last_use = now if running else last_charge
    idle_days = int(((now - (last_use or allocation.starts_at)).total_seconds()) // DAY_S)
    flags = []
    if expected and elapsed_bp >= MIN_ELAPSED_BP and used * BP < expected * UNDER_USE_BP:
        flags.append("under_used")
    if idle_days >= IDLE_DAYS and passed >= IDLE_DAYS * DAY_S:
        flags.append("idle")
    suggested: dict[str, int] = {}
    if flags and passed > 0:
        pace = used / passed  # GPU-seconds per second so far, all types together
        will_use = pace * window
        left = b.gpu_seconds_left()
        spare_total = max(granted - will_use, 0.0)
        for gpu_type, type_granted in b.granted_gpu_seconds.items():
            share = spare_total * type_granted / granted if granted else 0.0
            hours = int(min(share, left.get(gpu_type, 0)) // SECONDS_PER_HOUR)
            if hours > 0:
                suggested[gpu_type] = hours
    util = _gpu_use(session, allocation)
    if util.idle_bp is not None and util.idle_bp >= GPUS_IDLE_BP:
        flags.append("gpus_idle")
    off_purpose = _off_purpose(session, allocation, b.granted_gpu_seconds, now)
    if any(o.funded_by is None for o in off_purpose):  # outside every grant's terms
        flags.append("off_purpose")
    return GrantUseOut(
        allocation_id=allocation.id,
        project=project.name if project else "?",
        organization=org.name if org else "?",
        status=allocation.status,
        starts_at=allocation.starts_at,
        ends_at=allocation.ends_at,
        elapsed_bp=elapsed_bp,
        granted_gpu_seconds=granted,
        expected_gpu_seconds=expected,
        used_gpu_seconds=used,
        use_bp=used * BP // expected if expected else None,
        last_use_at=last_use,
        idle_days=idle_days,
        running_jobs=len(running),
        flags=flags,
        suggested_reclaim_gpu_hours=suggested,
        sampled_runs=util.runs,
        gpu_util_mean_pct=util.mean_pct,
        gpu_idle_bp=util.idle_bp,
        idle_gpu_hours=util.idle_gpu_hours,
        idle_jobs=util.worst,
        off_purpose=off_purpose,
    )


@dataclass(frozen=True, slots=True)
class _GpuUse:
    runs: int
    mean_pct: int | None
    idle_bp: int | None
    idle_gpu_hours: float
    worst: list[str]


def _gpu_use(session: Session, allocation: orm.Allocation) -> _GpuUse:
    """The utilisation its engines sampled of the runs of the grant's jobs."""
    u = orm.RunGpuUsage
    rows = session.execute(
        select(
            u.job_id,
            u.samples,
            u.util_mean_pct,
            u.idle_samples,
            u.sample_s,
        )
        .join(orm.Job, orm.Job.id == u.job_id)
        .where(orm.Job.allocation_id == allocation.id, u.samples > 0)
    ).all()
    if not rows:
        return _GpuUse(0, None, None, 0.0, [])
    samples = sum(r.samples for r in rows)
    mean = (2 * sum(r.samples * r.util_mean_pct for r in rows) + samples) // (2 * samples)
    idle = sum(r.idle_samples for r in rows)
    idle_hours = sum(r.idle_samples * r.sample_s for r in rows) / SECONDS_PER_HOUR
    worst = sorted(rows, key=lambda r: (-r.idle_samples * r.sample_s, r.job_id))
    jobs = list(dict.fromkeys(r.job_id for r in worst if r.idle_samples))[:EVIDENCE_JOBS]
    return _GpuUse(len(rows), mean, idle * BP // samples, round(idle_hours, 3), jobs)


def _off_purpose(
    session: Session, allocation: orm.Allocation, granted: dict[str, int], now: datetime
) -> list[OffPurposeOut]:
    """Runs of the grant's project in its window on GPU types the grant does not cover,
    and who paid for each (another grant, or nobody: run free of charge)."""
    j = orm.Job
    a = orm.Allocation
    p = orm.Program
    rows = session.execute(
        select(
            j.id,
            j.gpu_type,
            j.gpus_per_node * j.nodes,
            j.started_at,
            j.ended_at,
            a.id,
            p.name,
        )
        .outerjoin(a, a.id == j.allocation_id)
        .outerjoin(p, p.id == a.program_id)
        .where(
            j.project_id == allocation.project_id,
            j.started_at.is_not(None),
            j.started_at >= allocation.starts_at,
            j.started_at < min(allocation.ends_at, now),
            j.gpu_type.is_not(None),
            j.gpu_type.not_in(sorted(granted)),
        )
        .order_by(j.started_at, j.id)
        .limit(EVIDENCE_JOBS)
    ).all()
    out = []
    types = ", ".join(sorted(granted)) or "none"
    for job_id, gpu_type, gpus, started, ended, paid_by, program in rows:
        seconds = max(((ended or now) - started).total_seconds(), 0.0)
        payer = f"charged to grant {paid_by} of {program}" if paid_by else "run free of charge"
        out.append(
            OffPurposeOut(
                job_id=job_id,
                gpu_type=gpu_type,
                gpu_hours=round(int(gpus) * seconds / SECONDS_PER_HOUR, 3),
                started_at=started,
                funded_by=paid_by,
                why=f"{gpu_type} is not among the grant's GPU types ({types}); {payer}",
            )
        )
    return out


def idle_grants(
    center: Center,
    who: Principal,
    program_ref: str,
    *,
    at: datetime | None = None,
    flagged_only: bool = True,
) -> GrantUseListOut:
    """The program's grants in force (active or suspended) the caller may read, with their
    use; by default only the flagged ones, least used first."""
    if who.role is Role.REVIEWER:
        raise Forbidden("reviewers may not see how grants are used")
    require(who, "program.read", center_target("programs"))
    now = at or utcnow()
    with center.store.read() as session:
        program = program_by_ref(session, program_ref)
        rows = session.scalars(
            select(orm.Allocation).where(
                orm.Allocation.program_id == program.id,
                orm.Allocation.status.in_(("active", "suspended")),
                orm.Allocation.starts_at <= now,
                orm.Allocation.ends_at > now,
                visible_allocations(who),
            )
        ).all()
        items = [grant_use(session, a, now) for a in rows]
    if flagged_only:
        items = [i for i in items if i.flags]
    items.sort(key=lambda i: (i.use_bp if i.use_bp is not None else BP, i.project))
    return GrantUseListOut(program=program.name, at=now, items=items)


def one_grant_use(center: Center, who: Principal, allocation_id: str) -> GrantUseOut:
    """One grant's use now (404 unless the caller may read the grant)."""
    with center.store.read() as session:
        allocation, _ = allocation_for(session, who, allocation_id, "allocation.read")
        return grant_use(session, allocation, utcnow())


def _notice(
    session: Session,
    who: Principal,
    allocation: orm.Allocation,
    kind: str,
    reason: str,
    now: datetime,
    *,
    evidence: dict[str, Any],
    gpu_seconds: int = 0,
    won: int = 0,
) -> GrantNoticeOut:
    row = orm.GrantNotice(
        allocation_id=allocation.id,
        kind=kind,
        subject="use",
        reason=reason,
        evidence=evidence,
        gpu_seconds=gpu_seconds,
        won=won,
        actor_id=who.user_id,
        at=now,
    )
    session.add(row)
    session.flush()
    record(
        session,
        who,
        f"grant.{kind}",
        "allocation",
        allocation.id,
        {"reason": reason, "gpu_seconds": gpu_seconds, "won": won, "evidence": evidence},
    )
    return notice_out(session, row)


def _evidence(session: Session, allocation: orm.Allocation, now: datetime) -> dict[str, Any]:
    return grant_use(session, allocation, now).model_dump(
        mode="json",
        include={
            "elapsed_bp",
            "granted_gpu_seconds",
            "expected_gpu_seconds",
            "used_gpu_seconds",
            "use_bp",
            "last_use_at",
            "idle_days",
            "running_jobs",
            "flags",
        },
    )


def warn(center: Center, who: Principal, allocation_id: str, reason: str) -> GrantNoticeOut:
    now = utcnow()
    with center.store.write() as session:
        allocation, _ = allocation_for(session, who, allocation_id, "request.decide", lock=True)
        if allocation.status not in ("active", "suspended"):
            raise Conflict(
                "allocation {allocation} is {status}",
                allocation=allocation.id,
                status=allocation.status,
            )
        return _notice(
            session,
            who,
            allocation,
            "warning",
            reason,
            now,
            evidence=_evidence(session, allocation, now),
        )


def suspend(center: Center, who: Principal, allocation_id: str, reason: str) -> GrantNoticeOut:
    now = utcnow()
    with center.store.write() as session:
        allocation, _ = allocation_for(session, who, allocation_id, "request.decide", lock=True)
        if allocation.status != "active":
            raise Conflict(
                "allocation {allocation} is {status}: not suspended",
                allocation=allocation.id,
                status=allocation.status,
            )
        evidence = _evidence(session, allocation, now)
        allocation.status = "suspended"
        out = _notice(session, who, allocation, "suspension", reason, now, evidence=evidence)
    center.control.policy_changed()  # budgets and quotas follow
    return out


def resume(center: Center, who: Principal, allocation_id: str, reason: str) -> GrantNoticeOut:
    now = utcnow()
    with center.store.write() as session:
        allocation, _ = allocation_for(session, who, allocation_id, "request.decide", lock=True)
        if allocation.status != "suspended":
            raise Conflict(
                "allocation {allocation} is {status}: not resumed",
                allocation=allocation.id,
                status=allocation.status,
            )
        allocation.status = "active"
        out = _notice(
            session,
            who,
            allocation,
            "resumption",
            reason,
            now,
            evidence=_evidence(session, allocation, now),
        )
    center.control.policy_changed()
    return out


def reclaim(center: Center, who: Principal, allocation_id: str, body: ReclaimIn) -> GrantNoticeOut:
    """Take back part of a grant; the program's budget gets it back."""
    if not body.gpu_hours and not body.withdraw_pending:
        raise InvalidInput("gpu_hours", "say how many GPU-hours to take back (or the tranches)")
    now = utcnow()
    with center.store.write() as session:
        allocation, _ = allocation_for(session, who, allocation_id, "request.decide", lock=True)
        if allocation.status not in ("active", "suspended"):
            raise Conflict(
                "allocation {allocation} is {status}",
                allocation=allocation.id,
                status=allocation.status,
            )
        evidence = _evidence(session, allocation, now)
        b = balance(session, allocation.id)
        left = b.gpu_seconds_left()
        won_left = b.won_left
        taken_secs = taken_won = 0
        parts: dict[str, dict[str, int]] = {}
        for gpu_type, hours in sorted(body.gpu_hours.items()):
            item = session.get(orm.AllocationItem, (allocation.id, gpu_type))
            field = f"gpu_hours.{gpu_type}"
            if item is None:
                raise InvalidInput(
                    field,
                    "allocation {allocation} grants no {gpu_type}",
                    allocation=allocation.id,
                    gpu_type=gpu_type,
                )
            secs = hours * SECONDS_PER_HOUR
            if secs > left.get(gpu_type, 0):
                raise Conflict(
                    (
                        "allocation {allocation} has {left_hours:,} {gpu_type} GPU-hours left "
                        "(charged and held ones stay): {hours:,} cannot be taken back"
                    ),
                    allocation=allocation.id,
                    left_hours=left.get(gpu_type, 0) // SECONDS_PER_HOUR,
                    gpu_type=gpu_type,
                    hours=hours,
                )
            won = min(item.won * secs // item.gpu_seconds if item.gpu_seconds else 0, won_left)
            item.gpu_seconds -= secs
            item.won -= won
            won_left -= won
            taken_secs += secs
            taken_won += won
            parts[gpu_type] = {"gpu_seconds": secs, "won": won}
        withdrawn = withdraw_pending(session, allocation.id) if body.withdraw_pending else 0
        evidence = {**evidence, "taken": parts, "tranches_withdrawn_won": withdrawn}
        out = _notice(
            session,
            who,
            allocation,
            "reclaim",
            body.reason,
            now,
            evidence=evidence,
            gpu_seconds=taken_secs,
            won=taken_won,
        )
    center.control.policy_changed()
    return out
