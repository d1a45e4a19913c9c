"""Job array index specifications, as Slurm's ``--array`` writes them.

One grammar for the CLI (to refuse a bad ``--array`` before any request) and the server
(which expands it into tasks)::

    7               one task, index 7
    0-15            a range, both ends included
    0-15:4          every 4th index of the range: 0, 4, 8, 12
    1,3,5-9:2       a comma-separated list of the above
    0-99%8          ... with at most 8 tasks running at once (the throttle)

Indices are whole numbers from 0; duplicates are kept once, in ascending order (Slurm
does the same). Errors are ``ValueError`` whose text names the part at fault and what
would be accepted, ready to show a user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ARRAY_FORMS", "MAX_INDEX", "ArrayError", "ArraySpec", "parse_array"]

#: the largest index (Slurm's default MaxArraySize is 1001, so indices up to 1000)
MAX_INDEX = 999_999
#: what to write, for error messages
ARRAY_FORMS = "N, FIRST-LAST, FIRST-LAST:STEP, comma-separated lists of these, then %MAX"

_PART = re.compile(r"(?P<first>\d+)(?:-(?P<last>\d+)(?::(?P<step>\d+))?)?")


@dataclass(frozen=True, slots=True)
class ArraySpec:
    """The indices of an array's tasks, ascending, and its throttle (None: no limit)."""

    indices: tuple[int, ...]
    throttle: int | None = None


class ArrayError(ValueError):
    """Indices ``parse_array`` cannot read, raised with its English template and
    parameters, as ``service.errors`` are (the dashboard says them in Korean)."""

    def __init__(self, template: str, /, **params: object) -> None:
        super().__init__(template.format(**params))
        self.template, self.params = template, params


def parse_array(text: str, max_tasks: int | None = None) -> ArraySpec:
    """The tasks that ``text`` asks for; ``ValueError`` naming the bad part otherwise."""
    spec = text.strip()
    body, percent, throttle_text = spec.partition("%")
    throttle = None
    if percent:
        if not throttle_text.isdigit() or int(throttle_text) < 1:
            raise ArrayError(
                "array {text!r}: the throttle after % must be a whole number of tasks, "
                "1 or more (e.g. 0-99%8)",
                text=text,
            )
        throttle = int(throttle_text)
    if not body:
        raise ArrayError("array {text!r} is empty: write {forms}", text=text, forms=ARRAY_FORMS)
    indices: set[int] = set()
    for part in body.split(","):
        match = _PART.fullmatch(part.strip())
        if match is None:
            raise ArrayError(
                "array {text!r}: cannot read {part!r}; write {forms}",
                text=text,
                part=part,
                forms=ARRAY_FORMS,
            )
        first = int(match["first"])
        last = int(match["last"]) if match["last"] is not None else first
        step = int(match["step"]) if match["step"] is not None else 1
        if last < first:
            raise ArrayError("array {text!r}: {part!r} ends before it starts", text=text, part=part)
        if step < 1:
            raise ArrayError(
                "array {text!r}: the step in {part!r} must be 1 or more", text=text, part=part
            )
        if last > MAX_INDEX:
            raise ArrayError("array {text!r}: indices go up to {most}", text=text, most=MAX_INDEX)
        indices.update(range(first, last + 1, step))
        if max_tasks is not None and len(indices) > max_tasks:
            raise ArrayError("array {text!r}: more than {most} tasks", text=text, most=max_tasks)
    return ArraySpec(tuple(sorted(indices)), throttle)
