"""A job's log on the service's disk: how large it may grow, how it rotates, and reading
it by offset across its rotated files.

A job's log is one stream of bytes over every run of the job; an offset names a byte of
that stream. The live file is ``LOGS/<job>.log``. When it reaches ``rotate_bytes`` the
local supervisor renames it ``<job>.log.<START>``, ``START`` being the offset of its first
byte, and opens a new one; only the newest ``keep`` rotated files are kept (as Docker's
``max-size``/``max-file``), so a long service's log holds at most
``(keep + 1) x rotate_bytes`` on disk. Independently, ``max_bytes`` bounds what one run
may write at all: past it the run fails (``log limit``), as a job that floods its log is
more likely broken than busy. Readers that ask for bytes rotated away get the oldest
bytes still kept, and are told where they start (``LogChunk.start``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["LogChunk", "LogPolicy", "read"]

#: attempts to read a consistent view while the log rotates under the reader
_ATTEMPTS = 4


@dataclass(frozen=True, slots=True)
class LogPolicy:
    """``max_bytes``: one run's output limit (0: none); ``rotate_bytes``: the live file's
    size at which it rotates (0: never); ``keep``: rotated files kept (at least 1)."""

    max_bytes: int = 0
    rotate_bytes: int = 0
    keep: int = 4


@dataclass(frozen=True, slots=True)
class LogChunk:
    """Bytes of a job's log and the offset of the first of them: past the offset asked
    for when the bytes in between were rotated away."""

    start: int
    data: bytes


def read(path: Path, offset: int, limit: int) -> LogChunk | None:
    """Up to ``limit`` bytes of the log whose live file is ``path``, from ``offset``;
    None if the job has no log here."""
    for _ in range(_ATTEMPTS):
        before = _rotated(path)
        try:
            live = path.open("rb")
        except FileNotFoundError:
            live = None
        try:
            if _rotated(path) != before:
                continue  # it rotated between the two looks: look again
            return _read(before, path, live, offset, limit)
        finally:
            if live is not None:
                live.close()
    return _read(_rotated(path), path, None, offset, limit)


def _rotated(path: Path) -> list[int]:
    """The starts of the rotated files of the log at ``path``, oldest first."""
    prefix = path.name + "."
    starts = []
    try:
        names = [p.name for p in path.parent.iterdir()]
    except FileNotFoundError:
        return []
    for name in names:
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            starts.append(int(name[len(prefix) :]))
    return sorted(starts)


def _read(
    starts: list[int], path: Path, live: BinaryIO | None, offset: int, limit: int
) -> LogChunk | None:
    pieces: list[tuple[int, Path]] = [(s, path.with_name(f"{path.name}.{s}")) for s in starts]
    sizes = []
    for _, p in pieces:
        try:
            sizes.append(p.stat().st_size)
        except FileNotFoundError:
            sizes.append(0)  # removed by rotation meanwhile: nothing to read there
    live_start = pieces[-1][0] + sizes[-1] if pieces else 0
    if live is None and not pieces:
        return None
    out = bytearray()
    start = None
    for (s, p), size in zip(pieces, sizes, strict=True):
        if s + size <= offset or len(out) >= limit:
            continue
        at = max(offset, s)
        start = at if start is None else start
        try:
            with p.open("rb") as f:
                f.seek(at - s)
                out += f.read(limit - len(out))
        except FileNotFoundError:
            continue
    if live is not None and len(out) < limit:
        # opened before the second look at the rotated files: the file that starts there
        at = max(offset, live_start)
        start = at if start is None else start
        live.seek(at - live_start)
        out += live.read(limit - len(out))
    return LogChunk(offset if start is None else start, bytes(out))
