"""Batch scripts: the ``#SBATCH`` and ``#AXC`` directives of ``axc submit script.sh``.

A Slurm batch script carries its options in comment lines before its first command::

    #!/bin/bash
    #SBATCH --job-name=train --time=1-00:00:00
    #SBATCH --gres=gpu:H100:2 --array=0-9
    #AXC --gpu-type H100,A100
    python train.py

``read_directives`` finds them, as ``sbatch`` does (only before the first line that is
neither blank nor a comment). ``#AXC`` lines hold ``axc submit`` options, as written on
its command line. ``#SBATCH`` lines hold Slurm's options: ``translate`` turns each into
the ``axc submit`` option that means the same (``SLURM_OPTIONS``), or says in a sentence
why it is ignored (it changes nothing that matters here, e.g. ``--mail-type``) or refused
(it asks for something axcenter does not do, e.g. ``--constraint``): a script runs
unchanged where it asks for nothing axcenter lacks, and is refused with the reason
where it does. Options given on the command line win over the script's.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from enum import Enum

__all__ = ["SLURM_OPTIONS", "Directive", "Translation", "read_directives", "translate"]

PREFIXES = ("#SBATCH", "#AXC")


@dataclass(frozen=True, slots=True)
class Directive:
    """One directive line: its number in the script, its prefix and its option words."""

    line: int
    prefix: str
    words: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"line {self.line} ({self.prefix} {' '.join(self.words)})"


class _Act(Enum):
    MAP = "map"  # the axc option of the same meaning
    IGNORE = "ignore"  # harmless here: a warning says so
    REFUSE = "refuse"  # asks for what axcenter lacks: the submission is refused


@dataclass(frozen=True, slots=True)
class _Rule:
    act: _Act
    takes_value: bool
    target: str = ""  # MAP: the axc option; otherwise the reason, in a sentence


def _map(target: str, takes_value: bool = True) -> _Rule:
    return _Rule(_Act.MAP, takes_value, target)


def _ignore(reason: str, takes_value: bool = True) -> _Rule:
    return _Rule(_Act.IGNORE, takes_value, reason)


def _refuse(reason: str, takes_value: bool = True) -> _Rule:
    return _Rule(_Act.REFUSE, takes_value, reason)


_NOT_YET = "axcenter does not support it yet"
_PLACES = "axcenter places jobs itself; choose GPU types with --gres=gpu:TYPE:N"

#: Slurm's long option -> what it becomes; ``_SHORT`` gives the one-letter spellings
SLURM_OPTIONS: dict[str, _Rule] = {
    "job-name": _map("--name"),
    "time": _map("--time"),
    "nodes": _map("--nodes"),
    "cpus-per-task": _map("--cpus"),
    "mem": _map("--mem"),
    "gres": _map("--gres"),
    "gpus-per-node": _map("--gpus"),
    "gpus": _map("--gpus-total"),
    "account": _map("--project"),
    "array": _map("--array"),
    "output": _map("--output"),
    "error": _map("--error"),
    "chdir": _map("--workdir"),
    "priority": _map("--priority"),
    "wait": _map("--wait", takes_value=False),
    "export": _map("--export"),
    "partition": _ignore(f"axcenter has no partitions; {_PLACES}"),
    "qos": _ignore("axcenter has no QOS; a project's grant sets what its jobs may use"),
    "mail-type": _ignore("axcenter sends no mail"),
    "mail-user": _ignore("axcenter sends no mail"),
    "comment": _ignore("axcenter keeps no comment"),
    "ntasks": _ignore("the script runs once; start its tasks with AXC_NODELIST"),
    "ntasks-per-node": _ignore("the script runs once; start its tasks with AXC_NODELIST"),
    "tasks-per-node": _ignore("the script runs once; start its tasks with AXC_NODELIST"),
    "requeue": _ignore("axcenter requeues preempted jobs", takes_value=False),
    "no-requeue": _ignore("axcenter requeues preempted jobs", takes_value=False),
    "open-mode": _ignore("each run of the job keeps its own log"),
    "signal": _ignore("axcenter sends SIGTERM at the time limit, then SIGKILL"),
    "time-min": _ignore("axcenter uses the time limit alone"),
    "nice": _ignore("use --priority"),
    "parsable": _ignore("axc submit prints only the id", takes_value=False),
    "get-user-env": _ignore("the job gets the environment --export/--env names"),
    "cpu-bind": _ignore("axcenter does not bind CPUs"),
    "gpu-bind": _ignore("CUDA_VISIBLE_DEVICES names the job's GPUs"),
    "verbose": _ignore("nothing to say", takes_value=False),
    "quiet": _ignore("nothing to say", takes_value=False),
    "exclusive": _map("--exclusive", takes_value=False),
    "dependency": _map("--dependency"),
    "hold": _map("--hold", takes_value=False),
    "begin": _refuse(_NOT_YET),
    "deadline": _refuse(_NOT_YET),
    "constraint": _refuse(f"axcenter has no node features; {_PLACES}"),
    "nodelist": _refuse(_PLACES),
    "exclude": _refuse(_PLACES),
    "reservation": _refuse("an operator's reservation applies to its project's jobs by itself"),
    "licenses": _refuse("axcenter has no licenses"),
    "mem-per-cpu": _refuse("axcenter takes memory per node: use --mem"),
    "mem-per-gpu": _refuse("axcenter takes memory per node: use --mem"),
    "cpus-per-gpu": _refuse("axcenter takes CPUs per node: use --cpus-per-task"),
    "test-only": _refuse("axcenter has no test-only submission", takes_value=False),
    "wrap": _refuse("a script is the command; --wrap belongs on the command line"),
    "uid": _refuse("jobs run as their submitter"),
    "gid": _refuse("jobs run as their submitter"),
}
_SHORT = {
    "J": "job-name",
    "t": "time",
    "N": "nodes",
    "c": "cpus-per-task",
    "G": "gpus",
    "A": "account",
    "a": "array",
    "o": "output",
    "e": "error",
    "D": "chdir",
    "W": "wait",
    "p": "partition",
    "q": "qos",
    "n": "ntasks",
    "C": "constraint",
    "d": "dependency",
    "H": "hold",
    "b": "begin",
    "w": "nodelist",
    "x": "exclude",
    "L": "licenses",
    "v": "verbose",
    "Q": "quiet",
}


@dataclass
class Translation:
    """What a script's ``#SBATCH`` lines become: per directive, its ``axc submit`` words;
    and the sentences saying what was ignored or refused."""

    args: list[tuple[Directive, list[str]]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def read_directives(text: str) -> list[Directive]:
    """The directive lines of a script, in order, up to its first command."""
    found: list[Directive] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if number == 1 and line.startswith("#!"):
            continue
        if not line:
            continue
        if not line.startswith("#"):
            break  # the first command: sbatch reads no directive after it
        prefix = next((p for p in PREFIXES if line.startswith(p + " ") or line == p), None)
        if prefix is None:
            continue
        rest = line[len(prefix) :]
        try:
            words = shlex.split(rest, comments=True)
        except ValueError as exc:  # an unclosed quote
            raise ValueError(f"line {number} ({line}): {exc}") from None
        if words:
            found.append(Directive(number, prefix, tuple(words)))
    return found


def translate(directives: list[Directive]) -> Translation:
    """Each ``#SBATCH`` directive's options as ``axc submit`` options (``#AXC`` ones as
    they are); what cannot be translated goes to ``ignored`` or ``refused``."""
    out = Translation()
    for directive in directives:
        if directive.prefix == "#AXC":
            out.args.append((directive, list(directive.words)))
            continue
        words: list[str] = []
        pending = list(directive.words)
        while pending:
            word = pending.pop(0)
            name, value = _split_option(word)
            if name is None:
                out.refused.append(
                    f"{directive.where}: {word!r} is not an option (sbatch options start "
                    "with - or --)"
                )
                continue
            rule = SLURM_OPTIONS.get(name)
            spelled = f"--{name}" if len(word) > 2 or word.startswith("--") else word
            if rule is None:
                out.refused.append(f"{directive.where}: {spelled} is not an sbatch option")
                continue
            if rule.takes_value and value is None:
                if not pending:
                    out.refused.append(f"{directive.where}: {spelled} needs a value")
                    continue
                value = pending.pop(0)
            if rule.act is _Act.IGNORE:
                out.ignored.append(f"{directive.where}: {spelled} ignored: {rule.target}")
            elif rule.act is _Act.REFUSE:
                out.refused.append(f"{directive.where}: {spelled} refused: {rule.target}")
            else:
                words.append(rule.target if value is None else f"{rule.target}={value}")
        if words:
            out.args.append((directive, words))
    return out


def _split_option(word: str) -> tuple[str | None, str | None]:
    """(long option name, value if attached) of ``--name[=value]``, ``-X[value]``."""
    if word.startswith("--") and len(word) > 2:
        name, eq, value = word[2:].partition("=")
        return name, value if eq else None
    if word.startswith("-") and len(word) > 1:
        name = _SHORT.get(word[1], f"-{word[1]}")
        rest = word[2:].removeprefix("=")
        return name, rest or None
    return None, None
