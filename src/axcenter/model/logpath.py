"""Where a job's stdout and stderr go: Slurm's ``--output``/``--error`` filename patterns.

A job may carry an output pattern and an error pattern (``JobIn.output_path``,
``error_path``); they are stored as written and expanded when the job starts, by whoever
launches it, with ``expand_log_pattern``. A relative path is relative to the job's working
directory. Replacement symbols, as Slurm's ``sbatch`` documents them::

    %%   a literal %
    %j   the job id (job_…; an array task's own id)
    %A   the array id (arr_…) of an array task; the job id otherwise
    %a   the array index of an array task; empty otherwise
    %x   the job name (job id when the job has none)
    %u   the user name
    %N   the first node's name

A number between ``%`` and the letter pads with zeros (``%4a``: 0007), as in Slurm.
Patterns are checked at submission (``check_log_pattern``), so a typo such as ``%q`` is
refused with the list above instead of being written literally at launch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["LOG_SYMBOLS", "LogNames", "check_log_pattern", "expand_log_pattern"]

#: the letters a pattern may use, for help and error messages
LOG_SYMBOLS = "%j %A %a %x %u %N %%"
_SYMBOL = re.compile(r"%(?P<pad>\d{0,2})(?P<letter>.?)", re.DOTALL)
_LETTERS = frozenset("jAaxuN%")
MAX_PATTERN = 1024


@dataclass(frozen=True, slots=True)
class LogNames:
    """What a pattern's symbols stand for, for one job."""

    job_id: str
    name: str
    user: str
    array_id: str | None = None
    array_index: int | None = None
    node: str = ""


def check_log_pattern(pattern: str) -> None:
    """``ValueError`` naming the fault if ``pattern`` cannot name a file."""
    if not pattern.strip():
        raise ValueError("the file name pattern is empty")
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"the file name pattern is longer than {MAX_PATTERN} characters")
    if "\x00" in pattern:
        raise ValueError("the file name pattern contains a NUL byte")
    for match in _SYMBOL.finditer(pattern):
        if match["letter"] not in _LETTERS:
            raise ValueError(
                f"{match[0]!r} in {pattern!r} is not a replacement symbol; use {LOG_SYMBOLS}"
            )


def expand_log_pattern(pattern: str, names: LogNames) -> str:
    """``pattern`` with its symbols replaced for the job ``names`` describes."""

    def value(match: re.Match[str]) -> str:
        letter = match["letter"]
        if letter == "%":
            return "%"
        text = {
            "j": names.job_id,
            "A": names.array_id or names.job_id,
            "a": "" if names.array_index is None else str(names.array_index),
            "x": names.name or names.job_id,
            "u": names.user,
            "N": names.node,
        }[letter]
        return text.zfill(int(match["pad"])) if match["pad"] else text

    check_log_pattern(pattern)
    return _SYMBOL.sub(value, pattern)
