"""What is wrong with a form, said in the reader's language and naming the field as the
form labels it (``jobs.gpus_per_node`` -> "노드당 GPU"), not as the API spells it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from axcenter.web.i18n import translate

__all__ = ["FormProblem", "number", "say", "whole"]

#: form field -> catalog key of its label
LABELS: Mapping[str, str] = {
    "project": "jobs.project",
    "name": "jobs.name",
    "command": "jobs.command",
    "gpus_per_node": "jobs.gpus_per_node",
    "nodes": "jobs.nodes",
    "gpu_types": "jobs.gpu_types",
    "time_limit_s": "jobs.time_limit",
    "time_limit_min": "jobs.time_limit",
    "priority": "jobs.priority",
    "output": "jobs.output",
    "template": "jobs.template_name",
    "kind": "requests.kind",
    "program": "projects.program",
    "allocation": "requests.allocation",
    "items": "requests.items",
    "starts_on": "requests.starts_on",
    "ends_on": "requests.ends_on",
    "starts_at": "requests.starts_on",
    "ends_at": "requests.ends_on",
    "justification": "requests.justification",
    # fields the service names in its refusals (InvalidInput.field, web/messages.py)
    "comment": "requests.comment",
    "approval": "requests.approve",
    "resubmission": "requests.resubmit",
    "file": "requests.attach",
    "score": "requests.score_label",
    "workdir": "jobs.workdir",
}

#: pydantic error type -> catalog key (its ``ctx`` fills the sentence)
KINDS: Mapping[str, str] = {
    "missing": "form.missing",
    "string_too_short": "form.missing",
    "int_parsing": "form.whole",
    "int_from_float": "form.whole",
    "float_parsing": "form.number",
    "greater_than_equal": "form.at_least",
    "greater_than": "form.more_than",
    "less_than_equal": "form.at_most",
    "string_too_long": "form.too_long",
    "too_long": "form.too_many",
    "literal_error": "form.one_of",
    "enum": "form.one_of",
}


class FormProblem(ValueError):
    """A field the form could not even read (``whole``, ``number``, a shell line)."""

    def __init__(self, field: str, kind: str, value: str) -> None:
        super().__init__(f"{field}: {kind} {value!r}")
        self.field, self.kind, self.value = field, kind, value


def whole(value: str, field: str, default: int) -> int:
    text = value.strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise FormProblem(field, "form.whole", text) from None


def number(value: str, field: str) -> float | None:
    text = value.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise FormProblem(field, "form.number", text) from None


def _field(name: str, lang: str) -> str:
    key = LABELS.get(name)
    return translate(key, lang) if key else name


def say(exc: Exception, lang: str) -> str:
    """The problems of ``exc`` as sentences of the reader's language."""
    if isinstance(exc, FormProblem):
        return f"{_field(exc.field, lang)}: " + translate(exc.kind, lang).format(value=exc.value)
    if isinstance(exc, ValidationError):
        return "; ".join(_one(e, lang) for e in exc.errors())
    return str(exc) or translate("form.invalid", lang)


def _one(error: Any, lang: str) -> str:
    loc = [str(p) for p in error.get("loc", ())]
    where = _field(loc[0], lang) if loc else translate("form.form", lang)
    if len(loc) > 1:
        where += " (" + ".".join(loc[1:]) + ")"
    key = KINDS.get(error.get("type", ""))
    if key is None:
        return f"{where}: {error.get('msg', '')}"
    ctx = {k: v for k, v in (error.get("ctx") or {}).items()}
    ctx.setdefault("value", error.get("input"))
    try:
        return f"{where}: " + translate(key, lang).format(**ctx)
    except (KeyError, IndexError):
        return f"{where}: {error.get('msg', '')}"
