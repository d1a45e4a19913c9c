"""The price book: won per GPU-hour by GPU type, with effective dates."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from axcenter.store import orm

__all__ = ["price_at", "prices_at"]


def prices_at(session: Session, at: datetime) -> dict[str, int]:
    """The price of every GPU type in force at ``at`` (the latest effective before it)."""
    out: dict[str, int] = {}
    rows = session.execute(
        select(orm.Price.gpu_type, orm.Price.won_per_gpu_hour)
        .where(orm.Price.effective_from <= at)
        .order_by(orm.Price.gpu_type, orm.Price.effective_from)
    )
    for gpu_type, won in rows:
        out[gpu_type] = won  # later rows (newer prices) overwrite older ones
    return out


def price_at(session: Session, gpu_type: str, at: datetime) -> int | None:
    return session.scalar(
        select(orm.Price.won_per_gpu_hour)
        .where(orm.Price.gpu_type == gpu_type, orm.Price.effective_from <= at)
        .order_by(orm.Price.effective_from.desc())
        .limit(1)
    )
