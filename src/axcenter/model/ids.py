"""Short prefixed identifiers (``job_…``, ``prj_…``) that sort by creation time."""

from __future__ import annotations

import secrets
import time

__all__ = ["PREFIXES", "new_id"]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case

PREFIXES = frozenset(
    {
        "job",
        "prj",
        "org",
        "usr",
        "tok",
        "nod",
        "prg",
        "evt",
        "coh",
        "rsv",
        "req",
        "alc",
        "prc",
        "arr",
        "ses",
        "sif",  # a sign-in under way
        "rul",  # a program's rules
        "rpt",  # a progress report
        "srv",  # an outcome-survey form
        "att",  # a file attached to a request
        "tpl",  # a job template
    }
)


def _b32(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A new identifier: prefix, 48 bits of milliseconds, 40 random bits.

    Time first so that ids of one kind sort roughly in creation order, which keeps
    B-tree inserts local and makes listings readable.
    """
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{_b32(millis, 10)}{_b32(secrets.randbits(40), 8)}"
