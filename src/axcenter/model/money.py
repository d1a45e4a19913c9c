"""Money rules: integer won, rounding written down once (docs/accounting.md).

- Usage is measured in whole GPU-seconds: GPUs x run time, the run time rounded half up
  to a second.
- Rating: GPU-seconds x won per GPU-hour / 3600, rounded half up to a won.
- Co-funding: the program pays ``floor(amount x public_share_bp / 10000)``; the company
  pays the rest, so the two parts always add up to the amount.
"""

from __future__ import annotations

__all__ = ["BP", "gpu_seconds", "rate", "split"]

BP = 10_000  # basis points in 100%


def gpu_seconds(gpus: int, seconds: float) -> int:
    """Whole GPU-seconds of ``gpus`` devices held for ``seconds`` (rounded half up)."""
    if gpus < 0 or seconds < 0:
        raise ValueError("negative usage")
    return gpus * int(seconds + 0.5)


def rate(gpu_secs: int, won_per_gpu_hour: int) -> int:
    """Won for ``gpu_secs`` at ``won_per_gpu_hour``, rounded half up (integers only)."""
    if gpu_secs < 0 or won_per_gpu_hour < 0:
        raise ValueError("negative usage or price")
    return (2 * gpu_secs * won_per_gpu_hour + 3600) // 7200


def split(amount_won: int, public_share_bp: int) -> tuple[int, int]:
    """(public, co-pay) parts of ``amount_won``; they always sum to it."""
    if not 0 <= public_share_bp <= BP:
        raise ValueError("public share must be within 0..10000 basis points")
    public = amount_won * public_share_bp // BP
    return public, amount_won - public
