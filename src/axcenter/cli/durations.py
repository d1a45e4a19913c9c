"""Human quantities on the command line: durations and memory sizes.

Durations (``parse_duration``), all giving whole seconds:

* unit form, largest unit first, each unit at most once: ``90s``, ``30m``, ``2h``, ``1d``,
  ``1h30m``, ``1d12h``, ``2h 15m`` (units ``d h m s``, case-insensitive);
* clock form: ``HH:MM:SS`` or ``MM:SS`` (hours may exceed 24; minutes and seconds below 60);
* a plain integer is **seconds** (``90`` = 90 s). Unlike Slurm's ``-t 90`` (minutes), this
  keeps one unit for every number axc prints or takes.

Memory sizes (``parse_memory``), giving mebibytes: ``512M``, ``16G``, ``1T``, ``64GB``,
``64GiB``, ``2048K``; suffixes are binary (1G = 1024M); a plain integer is MB.
"""

from __future__ import annotations

import math
import re

__all__ = ["format_duration", "parse_duration", "parse_memory"]

_UNITS_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_UNIT_FORM = re.compile(
    r"(?:(?P<d>\d+)\s*d)?\s*(?:(?P<h>\d+)\s*h)?\s*(?:(?P<m>\d+)\s*m)?\s*(?:(?P<s>\d+)\s*s)?",
    re.IGNORECASE,
)
_CLOCK_FORM = re.compile(r"(?:(?P<h>\d+):)?(?P<m>\d{1,2}):(?P<s>\d{1,2})")
_MEMORY = re.compile(r"(?P<n>\d+(?:\.\d+)?)\s*(?:(?P<unit>[kmgt])(?:i?b)?)?", re.IGNORECASE)
_MEMORY_MB = {"k": 1 / 1024, "": 1, "m": 1, "g": 1024, "t": 1024 * 1024}

_DURATION_HELP = "use e.g. 90s, 30m, 2h, 1d, 1h30m, HH:MM:SS, MM:SS or plain seconds"


def parse_duration(text: str) -> int:
    """Seconds in ``text``; ``ValueError`` with an example of valid forms otherwise."""
    value = text.strip()
    if not value:
        raise ValueError(f"empty duration: {_DURATION_HELP}")
    if value.isdigit():
        return int(value)
    clock = _CLOCK_FORM.fullmatch(value)
    if clock:
        hours = int(clock["h"] or 0)
        minutes, seconds = int(clock["m"]), int(clock["s"])
        if minutes >= 60 or seconds >= 60:
            raise ValueError(f"invalid duration {text!r}: minutes and seconds must be below 60")
        return hours * 3600 + minutes * 60 + seconds
    units = _UNIT_FORM.fullmatch(value)
    if units and any(units.groupdict().values()):
        return sum(int(units[u]) * _UNITS_S[u] for u in _UNITS_S if units[u] is not None)
    raise ValueError(f"invalid duration {text!r}: {_DURATION_HELP}")


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
        raise ValueError(f"invalid memory size {text!r}: must be more than zero")
    return mb
