"""The price book: won per GPU-hour by GPU type (everyone reads; operators set)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status

from axcenter.api.deps import CenterDep, PrincipalDep
from axcenter.service import programs as service
from axcenter.service.schemas import PriceIn, PriceListOut, PriceOut

router = APIRouter(tags=["prices"])


@router.get("/prices")
def list_prices(
    center: CenterDep, who: PrincipalDep, gpu_type: str | None = None, at: datetime | None = None
) -> PriceListOut:
    """Every price, oldest first per type; ``in_force`` marks those charged at ``at``
    (default now)."""
    return PriceListOut(items=service.list_prices(center, who, gpu_type, at))


@router.post("/prices", status_code=status.HTTP_201_CREATED)
def set_price(body: PriceIn, center: CenterDep, who: PrincipalDep) -> PriceOut:
    """Add a price from ``effective_from`` (default now; never in the past)."""
    return service.set_price(center, who, body.gpu_type, body.won_per_gpu_hour, body.effective_from)


@router.delete("/prices/{price_id}")
def remove_price(price_id: str, center: CenterDep, who: PrincipalDep) -> PriceOut:
    """Remove a price that has not taken effect yet (409 for one in force or past: set a
    new price instead)."""
    return service.remove_price(center, who, price_id)
