"""Job dependencies, as Slurm's ``--dependency`` writes them.

::

    afterok:JOB[:JOB...]      start once each JOB has succeeded
    afternotok:JOB[:JOB...]   start once each JOB has ended otherwise (failed, timed out,
                              cancelled)
    afterany:JOB[:JOB...]     start once each JOB has ended, however
    singleton                 start once no other job of the same user and name runs
                              (nor waits ahead of it for the same reason)

Several are joined with ``,`` and must all hold (Slurm's ``?``, "any of", is refused).
A dependency that can no longer hold (``afterok`` on a job that failed) never will: the
job waiting on it is cancelled, saying why. ``judge`` is the pure rule; the service keeps
the jobs' states and acts on its answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["DEPENDENCY_FORMS", "Dependency", "Verdict", "judge", "parse_dependency"]

DEPENDENCY_FORMS = "afterok:JOB[:JOB...], afterany:JOB, afternotok:JOB, singleton, joined by ,"
_KINDS = ("afterok", "afternotok", "afterany")
_JOB = re.compile(r"(?:job|arr)_[0-9a-z]+(?:_\d{1,7})?")
#: states after which a job never runs again (mirrors ``model.jobs.TERMINAL``)
_ENDED = frozenset({"succeeded", "failed", "cancelled", "timed_out"})


@dataclass(frozen=True, slots=True)
class Dependency:
    """What a job waits for: ``after`` kinds per job, and whether it is a singleton."""

    after: tuple[tuple[str, str], ...] = ()  # (kind, job id or ARRAY_INDEX)
    singleton: bool = False


class Verdict(StrEnum):
    WAIT = "wait"  # not yet
    MET = "met"  # it may start
    NEVER = "never"  # it never can: a job it waits on ended the other way


def parse_dependency(text: str) -> Dependency:
    """The dependency ``text`` writes; ``ValueError`` naming the part at fault."""
    spec = text.strip()
    if not spec:
        raise ValueError(f"empty dependency: write {DEPENDENCY_FORMS}")
    if "?" in spec:
        raise ValueError(
            f"dependency {text!r}: '?' (any of) is not supported; join with ',' (all of)"
        )
    after: list[tuple[str, str]] = []
    singleton = False
    for part in spec.split(","):
        kind, _, jobs = part.strip().partition(":")
        if kind == "singleton" and not jobs:
            singleton = True
            continue
        if kind not in _KINDS:
            raise ValueError(f"dependency {text!r}: cannot read {part!r}; write {DEPENDENCY_FORMS}")
        for job in jobs.split(":"):
            if not _JOB.fullmatch(job):
                raise ValueError(
                    f"dependency {text!r}: {job!r} is not a job id (job_…, arr_… or arr_…_N)"
                )
            after.append((kind, job))
    return Dependency(tuple(after), singleton)


def judge(dependency: Dependency, states: Mapping[str, str], singleton_clear: bool) -> Verdict:
    """Whether a job with ``dependency`` may start, given the states of the jobs it names
    (``states``: id -> state; an array names all its tasks' ends) and, for a singleton,
    whether no job of its user and name runs or waits ahead of it."""
    waiting = False
    for kind, job in dependency.after:
        state = states.get(job)
        if state is None or state not in _ENDED:
            waiting = True
            continue
        if kind == "afterok" and state != "succeeded":
            return Verdict.NEVER
        if kind == "afternotok" and state == "succeeded":
            return Verdict.NEVER
    if waiting or (dependency.singleton and not singleton_clear):
        return Verdict.WAIT
    return Verdict.MET
