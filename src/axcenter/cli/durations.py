"""Human quantities on the command line: durations and memory sizes, as Slurm reads them.

Durations (``parse_duration``), all giving whole seconds. Slurm's forms, read as
``sbatch --time`` reads them (no field is range-checked, so ``90:00`` is 90 minutes):

* ``MM`` (a plain number is **minutes**: ``-t 90`` is an hour and a half), ``MM:SS``,
  ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS`` (and ``D-``, whole days);

and axcenter's explicit units, largest first, each at most once: ``90s``, ``30m``,
``2h``, ``1d``, ``1h30m``, ``1d12h``, ``2h 15m`` (units ``d h m s``, any case).
Slurm's ``0``, ``-1``, ``UNLIMITED`` and ``INFINITE`` (no limit) have no meaning here:
every job has a limit, at most the center's maximum; ``parse_time_limit`` says so.
Slurm rounds a limit up to whole minutes; axcenter keeps the seconds.

Memory sizes (``parse_memory``), giving mebibytes, as ``sbatch --mem``: a plain number is
MB; suffixes ``K M G T`` are binary (1G = 1024M); axcenter also takes ``16GB``, ``16GiB``
and decimals (``1.5G``).

GPU requests (``parse_gpus``), as ``--gres=gpu[:TYPE][:N]`` and ``--gpus-per-node=[TYPE:]N``
write them: ``gpu:H100:2``, ``gpu:2``, ``gpu`` (one), ``H100:2``, ``2``.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "DURATION_FORMS",
    "MAX_MEMORY_MB",
    "format_duration",
    "parse_duration",
    "parse_gpus",
    "parse_memory",
    "parse_time_limit",
]

_UNITS_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_UNIT_FORM = re.compile(
    r"(?:(?P<d>\d+)\s*d)?\s*(?:(?P<h>\d+)\s*h)?\s*(?:(?P<m>\d+)\s*m)?\s*(?:(?P<s>\d+)\s*s)?",
    re.IGNORECASE,
)
#: Slurm's forms: [D-]... with the fields that each form has
_SLURM_FORMS = [
    (re.compile(r"(\d+)"), ("m",)),
    (re.compile(r"(\d+):(\d+)"), ("m", "s")),
    (re.compile(r"(\d+):(\d+):(\d+)"), ("h", "m", "s")),
    (re.compile(r"(\d+)-"), ("d",)),
    (re.compile(r"(\d+)-(\d+)"), ("d", "h")),
    (re.compile(r"(\d+)-(\d+):(\d+)"), ("d", "h", "m")),
    (re.compile(r"(\d+)-(\d+):(\d+):(\d+)"), ("d", "h", "m", "s")),
]
_UNLIMITED = {"-1", "0", "unlimited", "infinite"}
_MEMORY = re.compile(r"(?P<n>\d+(?:\.\d+)?)\s*(?:(?P<unit>[kmgt])(?:i?b)?)?", re.IGNORECASE)
_MEMORY_MB = {"k": 1 / 1024, "": 1, "m": 1, "g": 1024, "t": 1024 * 1024}
#: the most memory per node a job may ask for (the API's own bound)
MAX_MEMORY_MB = 64 * 1024 * 1024

#: the accepted forms, for help and error messages
DURATION_FORMS = (
    "minutes (90), MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, or units: 90s, 30m, 2h, 1d, 1h30m"
)


def parse_duration(text: str) -> int:
    """Seconds in ``text``; ``ValueError`` with the valid forms otherwise."""
    value = text.strip()
    if not value:
        raise ValueError(f"empty duration: use {DURATION_FORMS}")
    for pattern, fields in _SLURM_FORMS:
        match = pattern.fullmatch(value)
        if match:
            return sum(int(n) * _UNITS_S[f] for n, f in zip(match.groups(), fields, strict=True))
    units = _UNIT_FORM.fullmatch(value)
    if units and any(units.groupdict().values()):
        return sum(int(units[u]) * _UNITS_S[u] for u in _UNITS_S if units[u] is not None)
    raise ValueError(f"invalid duration {text!r}: use {DURATION_FORMS}")


def parse_time_limit(text: str) -> int:
    """A job's time limit in seconds: a duration above zero (Slurm's "no limit" values
    are refused with a sentence saying why)."""
    if text.strip().lower() in _UNLIMITED:
        raise ValueError(
            f"{text.strip()!r} means no time limit in Slurm; every axcenter job has one "
            "(the center's maximum at most): give a duration, e.g. 2h or 1-00:00:00"
        )
    return parse_duration(text)


def format_duration(seconds: float) -> str:
    """A compact duration for tables, two units at most: ``45s``, ``12m03s``, ``3h05m``,
    ``2d04h``; whole units drop the zero remainder (``10m``, ``1h``, ``7d``)."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"


def parse_memory(text: str) -> int:
    """Mebibytes in ``text`` (rounded up); ``ValueError`` for anything else."""
    match = _MEMORY.fullmatch(text.strip())
    if not match:
        raise ValueError(f"invalid memory size {text!r}: use e.g. 512M, 16G, 1T or plain MB")
    mb = math.ceil(float(match["n"]) * _MEMORY_MB[(match["unit"] or "").lower()])
    if mb <= 0:
        raise ValueError(
            f"invalid memory size {text!r}: must be more than zero (Slurm's --mem=0, "
            "all of a node's memory, has no meaning here)"
        )
    if mb > MAX_MEMORY_MB:
        raise ValueError(f"{text.strip()} is more memory than a node may have: at most 64T")
    return mb


_GPUS = re.compile(r"(?:(?P<type>[A-Za-z0-9][A-Za-z0-9._-]{0,31}):)?(?P<n>\d+)")


def parse_gpus(text: str, *, gres: bool = False) -> tuple[str | None, int]:
    """``(GPU type or None, GPUs per node)`` in ``text``: ``[TYPE:]N``, or with ``gres``
    Slurm's ``gpu[:TYPE][:N]`` (``ValueError`` naming what is wrong otherwise)."""
    value = text.strip()
    if gres:
        names = [part.split(":", 1)[0] for part in value.split(",")]
        if len(names) > 1 or names[0] != "gpu":
            others = ", ".join(repr(n) for n in names if n != "gpu") or repr(value)
            raise ValueError(
                f"{value!r}: axcenter schedules GPUs only (gpu[:TYPE][:N]), not {others}"
            )
        value = value.removeprefix("gpu").removeprefix(":") or "1"
        if ":" not in value and not value.isdigit():  # gpu:H100 means one H100
            value += ":1"
    match = _GPUS.fullmatch(value)
    if match is None:
        form = "gpu[:TYPE][:N], e.g. gpu:H100:2" if gres else "[TYPE:]N, e.g. 2 or H100:2"
        raise ValueError(f"invalid GPU request {text.strip()!r}: use {form}")
    return match["type"], int(match["n"])
