"""Accounting tests, and builders that write programs, grants, jobs and ledger rows directly.

The builders bypass the API on purpose: accounting is checked against the store itself,
with dates chosen by the test (a report of March needs charges booked in March).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from axcenter.model.ids import new_id
from axcenter.model.money import split
from axcenter.store import orm

__all__ = [
    "allocation",
    "at",
    "charge",
    "job",
    "ledger_sums",
    "organization",
    "price",
    "program",
    "project",
    "running_sums",
]


def at(day: str, time: str = "00:00:00") -> datetime:
    """``at("2025-03-01", "12:00:00")``: an aware UTC datetime."""
    return datetime.fromisoformat(f"{day}T{time}").replace(tzinfo=UTC)


def organization(
    s: Session, name: str, size_class: str | None = "SME", region: str | None = "Seoul"
) -> orm.Organization:
    org = orm.Organization(id=new_id("org"), name=name, size_class=size_class, region=region)
    s.add(org)
    s.flush()
    return org


def program(
    s: Session,
    name: str,
    budget_won: int,
    public_share_bp: int = 10_000,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
) -> orm.Program:
    row = orm.Program(
        id=new_id("prg"),
        name=name,
        budget_won=budget_won,
        public_share_bp=public_share_bp,
        starts_at=starts_at,
        ends_at=ends_at,
    )
    s.add(row)
    s.flush()
    return row


def project(
    s: Session, name: str, org: orm.Organization, prog: orm.Program | None, sector: str = "bio"
) -> orm.Project:
    row = orm.Project(
        id=new_id("prj"),
        name=name,
        organization_id=org.id,
        program_id=prog.id if prog else None,
        sector=sector,
    )
    s.add(row)
    s.flush()
    return row


def allocation(
    s: Session,
    prj: orm.Project,
    prog: orm.Program,
    starts_at: datetime,
    ends_at: datetime,
    items: dict[str, tuple[int, int]],
    on_exhaustion: str = "stop",
) -> orm.Allocation:
    """An active allocation granting ``{gpu type: (GPU-seconds, won)}``."""
    row = orm.Allocation(
        id=new_id("alc"),
        project_id=prj.id,
        program_id=prog.id,
        starts_at=starts_at,
        ends_at=ends_at,
        status="active",
        on_exhaustion=on_exhaustion,
    )
    s.add(row)
    s.flush()
    for gpu_type, (secs, won) in items.items():
        s.add(
            orm.AllocationItem(allocation_id=row.id, gpu_type=gpu_type, gpu_seconds=secs, won=won)
        )
    s.flush()
    return row


def price(s: Session, gpu_type: str, won_per_gpu_hour: int, effective_from: datetime) -> None:
    s.add(
        orm.Price(
            id=new_id("prc"),
            gpu_type=gpu_type,
            won_per_gpu_hour=won_per_gpu_hour,
            effective_from=effective_from,
        )
    )
    s.flush()


def job(
    s: Session,
    prj: orm.Project,
    user: orm.User,
    submitted_at: datetime,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    *,
    gpu_type: str = "H100",
    gpus: int = 1,
    state: str = "succeeded",
    alloc: orm.Allocation | None = None,
) -> orm.Job:
    row = orm.Job(
        id=new_id("job"),
        project_id=prj.id,
        user_id=user.id,
        command=["true"],
        workdir="/tmp",
        env={},
        gpus_per_node=gpus,
        nodes=1,
        cpus_per_node=1,
        memory_mb_per_node=1024,
        time_limit_s=3600,
        priority=0,
        gpu_types=[gpu_type],
        state=state,
        gpu_type=gpu_type if started_at else None,
        submitted_at=submitted_at,
        started_at=started_at,
        ended_at=ended_at,
        allocation_id=alloc.id if alloc else None,
    )
    s.add(row)
    s.flush()
    return row


def charge(
    s: Session,
    alloc: orm.Allocation,
    gpu_type: str,
    gpu_seconds: int,
    won: int,
    when: datetime,
    job_id: str | None = None,
) -> orm.LedgerEntry:
    """A charge booked at ``when``, split by the allocation's program as settle does."""
    prog = s.get(orm.Program, alloc.program_id)
    assert prog is not None
    public, copay = split(won, prog.public_share_bp)
    row = orm.LedgerEntry(
        at=when,
        kind="charge",
        allocation_id=alloc.id,
        program_id=alloc.program_id,
        project_id=alloc.project_id,
        job_id=job_id,
        gpu_type=gpu_type,
        gpu_seconds=gpu_seconds,
        amount_won=won,
        public_won=public,
        copay_won=copay,
    )
    s.add(row)
    s.flush()
    return row


Sums = dict[tuple[str, str], tuple[int, int, int, int]]


def ledger_sums(s: Session, allocation_id: str | None = None) -> Sums:
    """{(allocation, GPU type): (held won, charged won, held GPU-seconds, charged
    GPU-seconds)} summed from the whole ledger (held: holds minus releases minus what
    accruals took off them at list price; charged: charges and accruals)."""
    e = orm.LedgerEntry

    def held(col: Any, accrued: Any) -> Any:
        return func.sum(
            case(
                (e.kind == "release", -col),
                (e.kind == "charge", 0),
                (e.kind == "accrual", -accrued),
                else_=col,
            )
        )

    def charged(col: Any) -> Any:
        return func.sum(case((e.kind.in_(("charge", "accrual")), col), else_=0))

    query = select(
        e.allocation_id,
        e.gpu_type,
        held(e.amount_won, e.list_won),
        charged(e.amount_won),
        held(e.gpu_seconds, e.gpu_seconds),
        charged(e.gpu_seconds),
    ).group_by(e.allocation_id, e.gpu_type)
    if allocation_id is not None:
        query = query.where(e.allocation_id == allocation_id)
    return {
        (a, g): (int(hw), int(cw), int(hs), int(cs)) for a, g, hw, cw, hs, cs in s.execute(query)
    }


def running_sums(s: Session, allocation_id: str | None = None) -> Sums:
    """The same, as ``allocation_balances`` keeps them."""
    b = orm.AllocationBalance
    query = select(
        b.allocation_id,
        b.gpu_type,
        b.held_won,
        b.charged_won,
        b.held_gpu_seconds,
        b.charged_gpu_seconds,
    )
    if allocation_id is not None:
        query = query.where(b.allocation_id == allocation_id)
    return {(a, g): (hw, cw, hs, cs) for a, g, hw, cw, hs, cs in s.execute(query)}
