"""Funding programs and the price book: the money side of the center.

A program (a call) has a budget in won, an optional period, and a co-funding rule in
basis points (``public_share_bp`` 8000: the program pays 80% of every charge, the
company 20%). Programs and prices are center-wide facts every user may read; operators
and program managers manage programs, only operators set prices.

Prices are never retroactive: a new price takes effect now or later, because charges
already booked (and the holds of running jobs) were rated with the price in force when
their runs started, and the ledger must stay reproducible from the price book.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from axcenter.model.access import Principal
from axcenter.model.ids import new_id
from axcenter.service.access import center_target, require
from axcenter.service.audit import record
from axcenter.service.errors import Conflict, InvalidInput, NotFound
from axcenter.service.schemas import PriceOut, ProgramIn, ProgramOut, ProgramPatchIn
from axcenter.service.tranches import pending_won
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = [
    "PRICE_SKEW",
    "allocated_won",
    "create_program",
    "create_program_tx",
    "get_program",
    "list_prices",
    "list_programs",
    "program_by_ref",
    "remove_price",
    "set_price",
    "set_price_tx",
    "update_program",
]

#: how far in the past a new price's start may lie (clock skew between client and server)
PRICE_SKEW = timedelta(minutes=5)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def program_by_ref(
    session: Session, ref: str, *, field: str | None = None, lock: bool = False
) -> orm.Program:
    """The program ``ref`` (``prg_`` id or name); unknown is NotFound in a path and
    InvalidInput naming ``field`` in a body."""
    column = orm.Program.id if ref.startswith("prg_") else orm.Program.name
    query = select(orm.Program).where(column == ref)
    if lock:
        query = query.with_for_update()
    program = session.scalars(query).one_or_none()
    if program is None:
        if field is not None:
            raise InvalidInput(field, "unknown program {ref!r}", ref=ref)
        raise NotFound("no program {ref!r}", ref=ref)
    return program


def allocated_won(session: Session, program_ids: list[str]) -> dict[str, int]:
    """Won granted per program: the sum of its allocations' items and of the tranches it
    has committed but not yet released (``tranches``)."""
    rows = session.execute(
        select(orm.Allocation.program_id, func.coalesce(func.sum(orm.AllocationItem.won), 0))
        .join(orm.AllocationItem, orm.AllocationItem.allocation_id == orm.Allocation.id)
        .where(orm.Allocation.program_id.in_(program_ids))
        .group_by(orm.Allocation.program_id)
    ).all()
    out = {program_id: int(won) for program_id, won in rows}
    for program_id, won in pending_won(session, program_ids).items():
        out[program_id] = out.get(program_id, 0) + won
    return out


def _out(row: orm.Program, allocated: int) -> ProgramOut:
    return ProgramOut(
        id=row.id,
        name=row.name,
        budget_won=row.budget_won,
        allocated_won=allocated,
        public_share_bp=row.public_share_bp,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        description=row.description,
        created_at=row.created_at,
    )


def _check_period(starts_at: datetime | None, ends_at: datetime | None) -> None:
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise InvalidInput("ends_at", "the program must end after it starts")


def _name_taken(session: Session, name: str, but: str | None = None) -> bool:
    query = select(orm.Program.id).where(orm.Program.name == name)
    if but is not None:
        query = query.where(orm.Program.id != but)
    return session.scalars(query).first() is not None


def list_programs(center: Center, who: Principal) -> list[ProgramOut]:
    require(who, "program.read", center_target("programs"))
    with center.store.read() as session:
        rows = session.scalars(select(orm.Program).order_by(orm.Program.name)).all()
        allocated = allocated_won(session, [r.id for r in rows])
        return [_out(r, allocated.get(r.id, 0)) for r in rows]


def get_program(center: Center, who: Principal, ref: str) -> ProgramOut:
    require(who, "program.read", center_target("programs"))
    with center.store.read() as session:
        row = program_by_ref(session, ref)
        return _out(row, allocated_won(session, [row.id]).get(row.id, 0))


def create_program_tx(session: Session, who: Principal, body: ProgramIn) -> ProgramOut:
    """Create a program inside the caller's transaction (``create_program`` opens one)."""
    require(who, "program.write", center_target("programs"))
    starts_at, ends_at = _utc(body.starts_at), _utc(body.ends_at)
    _check_period(starts_at, ends_at)
    if _name_taken(session, body.name):
        raise Conflict("program {name!r} already exists", name=body.name)
    row = orm.Program(
        id=new_id("prg"),
        name=body.name,
        budget_won=body.budget_won,
        starts_at=starts_at,
        ends_at=ends_at,
        public_share_bp=body.public_share_bp,
        description=body.description,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    record(session, who, "program.create", "program", row.id, body.model_dump())
    return _out(row, 0)


def create_program(center: Center, who: Principal, body: ProgramIn) -> ProgramOut:
    try:
        with center.store.write() as session:
            return create_program_tx(session, who, body)
    except IntegrityError:
        raise Conflict("program {name!r} already exists", name=body.name) from None


def update_program(center: Center, who: Principal, ref: str, body: ProgramPatchIn) -> ProgramOut:
    """Change what is given. The budget may not drop below what is already granted, and
    a new co-funding rule applies to charges booked from now on."""
    require(who, "program.write", center_target("programs"))
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    try:
        with center.store.write() as session:
            row = program_by_ref(session, ref, lock=True)
            if "name" in changes and _name_taken(session, changes["name"], but=row.id):
                raise Conflict("program {name!r} already exists", name=changes["name"])
            starts_at = _utc(body.starts_at) or row.starts_at
            ends_at = _utc(body.ends_at) or row.ends_at
            _check_period(starts_at, ends_at)
            allocated = allocated_won(session, [row.id]).get(row.id, 0)
            if body.budget_won is not None and body.budget_won < allocated:
                raise Conflict(
                    (
                        "program {name!r} has already granted {allocated_won:,} won: its budget "
                        "cannot drop to {budget_won:,} won"
                    ),
                    name=row.name,
                    allocated_won=allocated,
                    budget_won=body.budget_won,
                )
            before = {k: getattr(row, k) for k in changes}
            for key, value in changes.items():
                setattr(row, key, _utc(value) if isinstance(value, datetime) else value)
            record(
                session,
                who,
                "program.update",
                "program",
                row.id,
                {"before": before, "after": changes},
            )
            return _out(row, allocated)
    except IntegrityError:
        raise Conflict("program {name!r} already exists", name=changes.get("name")) from None


# -- the price book -------------------------------------------------------------------------


def list_prices(
    center: Center, who: Principal, gpu_type: str | None = None, at: datetime | None = None
) -> list[PriceOut]:
    """Every price (or one type's), oldest first per type; ``in_force`` marks the price
    charged at ``at`` (default now)."""
    require(who, "price.read", center_target("the price book"))
    moment = _utc(at) or utcnow()
    query = (
        select(orm.Price, orm.User.name)
        .outerjoin(orm.User, orm.User.id == orm.Price.created_by)
        .order_by(orm.Price.gpu_type, orm.Price.effective_from)
    )
    if gpu_type:
        query = query.where(orm.Price.gpu_type == gpu_type)
    with center.store.read() as session:
        rows = session.execute(query).all()
    in_force: dict[str, str] = {}
    for price, _ in rows:
        if price.effective_from <= moment:
            in_force[price.gpu_type] = price.id  # later rows overwrite earlier ones
    return [
        PriceOut(
            id=price.id,
            gpu_type=price.gpu_type,
            won_per_gpu_hour=price.won_per_gpu_hour,
            effective_from=price.effective_from,
            in_force=in_force.get(price.gpu_type) == price.id,
            created_by=creator,
            created_at=price.created_at,
        )
        for price, creator in rows
    ]


def set_price_tx(
    session: Session,
    who: Principal,
    gpu_type: str,
    won_per_gpu_hour: int,
    effective_from: datetime | None = None,
) -> PriceOut:
    """Add a price inside the caller's transaction (``set_price`` opens one)."""
    require(who, "price.write", center_target("the price book"))
    now = utcnow()
    start = _utc(effective_from) or now
    if start < now - PRICE_SKEW:
        raise InvalidInput(
            "effective_from",
            (
                "{start:%Y-%m-%d %H:%M} UTC is in the past: prices are not retroactive "
                "(booked charges were rated with the price then in force)"
            ),
            start=start,
        )
    if won_per_gpu_hour < 0:
        raise InvalidInput("won_per_gpu_hour", "must not be negative")
    gpu_type = _known_gpu_type(session, gpu_type)
    clash = session.scalars(
        select(orm.Price.id).where(
            orm.Price.gpu_type == gpu_type, orm.Price.effective_from == start
        )
    ).first()
    if clash is not None:
        raise Conflict(
            "{gpu_type} already has a price from {start:%Y-%m-%d %H:%M:%S} UTC",
            gpu_type=gpu_type,
            start=start,
        )
    row = orm.Price(
        id=new_id("prc"),
        gpu_type=gpu_type,
        won_per_gpu_hour=won_per_gpu_hour,
        effective_from=start,
        created_by=who.user_id,
        created_at=now,
    )
    session.add(row)
    session.flush()
    record(
        session,
        who,
        "price.set",
        "price",
        row.id,
        {"gpu_type": gpu_type, "won_per_gpu_hour": won_per_gpu_hour, "effective_from": start},
    )
    return PriceOut(
        id=row.id,
        gpu_type=gpu_type,
        won_per_gpu_hour=won_per_gpu_hour,
        effective_from=start,
        in_force=start <= now,
        created_by=who.name,
        created_at=now,
    )


def _known_gpu_type(session: Session, gpu_type: str) -> str:
    """``gpu_type`` as the center's nodes spell it (``h100`` is ``H100``). A type no node
    has is refused: jobs could never ask for it, and a price under another spelling
    would leave the real type unpriced. A center without nodes yet takes any type."""
    known = sorted(set(session.scalars(select(orm.Node.gpu_type))))
    if not known or gpu_type in known:
        return gpu_type
    for spelling in known:
        if spelling.casefold() == gpu_type.casefold():
            return spelling
    raise InvalidInput(
        "gpu_type",
        (
            "no node of this center has GPU type {gpu_type!r} (it has {known}): "
            "price the types the center runs"
        ),
        gpu_type=gpu_type,
        known=", ".join(known),
    )


def remove_price(center: Center, who: Principal, price_id: str) -> PriceOut:
    """Take a price out of the book before it takes effect (a typo, a wrong amount). A
    price in force or past rated charges: it stays, and a new price corrects it from now
    on (prices are never retroactive)."""
    require(who, "price.write", center_target("the price book"))
    with center.store.write() as session:
        row = session.get(orm.Price, price_id)
        if row is None:
            raise NotFound("no price {price_id!r}", price_id=price_id)
        now = utcnow()
        if row.effective_from <= now:
            raise Conflict(
                (
                    "price {price_id} ({gpu_type}, {won_per_gpu_hour} won per GPU-hour) has "
                    "been in force since {effective_from:%Y-%m-%d %H:%M} UTC and rated "
                    "charges: set a new price from now to change it"
                ),
                price_id=price_id,
                gpu_type=row.gpu_type,
                won_per_gpu_hour=row.won_per_gpu_hour,
                effective_from=row.effective_from,
            )
        out = PriceOut(
            id=row.id,
            gpu_type=row.gpu_type,
            won_per_gpu_hour=row.won_per_gpu_hour,
            effective_from=row.effective_from,
            in_force=False,
            created_by=None,
            created_at=row.created_at,
        )
        session.delete(row)
        record(
            session,
            who,
            "price.remove",
            "price",
            price_id,
            {"gpu_type": out.gpu_type, "won_per_gpu_hour": out.won_per_gpu_hour},
        )
    center.control.policy_changed()
    return out


def set_price(
    center: Center,
    who: Principal,
    gpu_type: str,
    won_per_gpu_hour: int,
    effective_from: datetime | None = None,
) -> PriceOut:
    """Add a price to the book, then let the scheduler re-rate what budgets can hold."""
    try:
        with center.store.write() as session:
            out = set_price_tx(session, who, gpu_type, won_per_gpu_hour, effective_from)
    except IntegrityError:
        raise Conflict(
            "{gpu_type} already has a price from that moment", gpu_type=gpu_type
        ) from None
    center.control.policy_changed()
    return out
