"""What a refused field says (422), in the user's terms: the field, what was wrong with
the value given, and what would be accepted, in the units the user writes (``memory per
node: at most 64 TiB (asked for 100 TiB)``), never pydantic's phrasing (``Input should be
less than or equal to 67108864``) or a regular expression.

``describe`` turns one pydantic error into such a line; ``api/app.py`` answers every
validation error with them, and the CLI prefixes the option the user typed
(``cli/submit.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["describe", "field_of"]

#: fields whose values have a unit: how to write a value, by the field's name
_MEBIBYTES = ("memory_mb_per_node", "memory_mb")
_SECONDS_SUFFIX = "_s"
_WON_SUFFIX = "_won"

#: a field's name in words, where its API name is not plain enough
_WORDS: Mapping[str, str] = {
    "memory_mb_per_node": "memory per node",
    "memory_mb": "memory",
    "time_limit_s": "time limit",
    "gpus_per_node": "GPUs per node",
    "cpus_per_node": "CPUs per node",
    "gpu_types": "GPU type",
    "gpu_type": "GPU type",
    "env": "environment",
    "workdir": "working directory",
    "output_path": "output file pattern",
    "error_path": "error file pattern",
    "indices": "array indices",
    "won_per_gpu_hour": "price (won per GPU-hour)",
    "budget_won": "budget (won)",
    "starts_at": "start",
    "ends_at": "end",
}

#: what each pattern of the API's schemas accepts, in words
_PATTERNS: Mapping[str, str] = {
    r"^[^\x00]*$": "text without NUL bytes",
    r"^[A-Za-z_][A-Za-z0-9_]{0,127}$": (
        "a variable name: letters, digits and _, not starting with a digit, at most 128"
    ),
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$": (
        "a name of letters, digits, '.', '_' and '-' that starts with a letter or digit, at "
        "most 32 characters (e.g. H100)"
    ),
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$": (
        "a name of letters, digits, '.', '_' and '-' that starts with a letter or digit, at "
        "most 100 characters"
    ),
    r"^(max_running_jobs|max_gpus)$": "max_running_jobs or max_gpus",
    r"^[^/\x00-\x1f]{1,200}$": "1 to 200 characters, without '/' or control characters",
    r"^[a-z_][a-z0-9_.-]{0,31}$": (
        "a unix account name: lower-case letters, digits, '_', '.' and '-', starting with a "
        "letter or '_', at most 32 characters"
    ),
}

_ISO_EXAMPLE = "e.g. 2026-12-07T09:00+09:00"
_UNITS = (("TiB", 1 << 20), ("GiB", 1 << 10), ("MiB", 1))
#: parts of a location that name where the field was, not the field
_WRAPPERS = frozenset({"body", "query", "path", "[key]"})
_FIELD = re.compile(r"[a-z][a-z0-9_]*")
#: fields that map names to values: a name after one is a key, not a field
_MAPPINGS = frozenset({"env", "items", "answers", "fields"})


def _mebibytes(mb: Any) -> str:
    if not isinstance(mb, int | float) or isinstance(mb, bool):
        return repr(mb)
    for unit, size in _UNITS:
        if abs(mb) >= size or unit == "MiB":
            value = mb / size
            return f"{value:,.0f} {unit}" if value == int(value) else f"{value:,.1f} {unit}"
    raise AssertionError("MiB is the last unit")  # pragma: no cover


def _seconds(s: Any) -> str:
    if not isinstance(s, int | float) or isinstance(s, bool):
        return repr(s)
    s = int(s)
    if s < 0:
        return f"{s} seconds"
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return "".join(parts) or "0s"


def _won(w: Any) -> str:
    return f"{w:,} won" if isinstance(w, int) and not isinstance(w, bool) else repr(w)


def _plain(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else repr(v)


def _format_for(field: str) -> Callable[[Any], str]:
    if field in _MEBIBYTES:
        return _mebibytes
    if field.endswith(_SECONDS_SUFFIX):
        return _seconds
    if field.endswith(_WON_SUFFIX):
        return _won
    return _plain


def field_of(loc: Sequence[Any]) -> str:
    """The field's path as the request spells it (``jobs.0.gpus_per_node``)."""
    return ".".join(str(p) for p in loc if p not in _WRAPPERS) or "body"


def _name(loc: Sequence[Any]) -> str:
    """The field a problem is about: the last field name in ``loc``, not a list index
    nor the key of a mapping (``env.PATH`` is about ``env``)."""
    parts = [p for p in loc if p not in _WRAPPERS]
    for i in range(len(parts) - 1, -1, -1):
        part = parts[i]
        if (
            isinstance(part, str)
            and _FIELD.fullmatch(part)
            and (i == 0 or parts[i - 1] not in _MAPPINGS)
        ):
            return part
    return "body"


def describe(err: Mapping[str, Any]) -> str:
    """One pydantic error as ``FIELD: what is wrong; what is accepted``."""
    loc = err.get("loc", ())
    field = field_of(loc)
    return f"{field}: {_problem(err, _name(loc))}"


def _problem(err: Mapping[str, Any], name: str) -> str:
    kind = str(err.get("type", ""))
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    given = err.get("input")
    words = _WORDS.get(name, name.replace("_", " "))
    fmt = _format_for(name)
    if kind in ("less_than_equal", "less_than"):
        bound = ctx.get("le", ctx.get("lt"))
        word = "at most" if kind == "less_than_equal" else "less than"
        return f"{words} is {word} {fmt(bound)} (asked for {fmt(given)})"
    if kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        word = "at least" if kind == "greater_than_equal" else "more than"
        return f"{words} is {word} {fmt(bound)} (asked for {fmt(given)})"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind == "missing":
        return f"{words} is required"
    if kind == "extra_forbidden":
        return "is not a field of this request (check its spelling)"
    if kind == "string_pattern_mismatch":
        accepted = _PATTERNS.get(str(ctx.get("pattern")), "a value of another form")
        return f"{given!r} is not accepted as {words}: use {accepted}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{words} is a whole number, not {given!r}"
    if kind in ("float_parsing", "float_type", "decimal_parsing", "decimal_type"):
        return f"{words} is a number, not {given!r}"
    if kind in ("bool_parsing", "bool_type"):
        return f"{words} is true or false, not {given!r}"
    if kind in ("string_type",):
        return f"{words} is text, not {given!r}"
    if kind == "string_too_long":
        return f"{words} is at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        least = ctx.get("min_length", 1)
        return f"{words} may not be empty" if least == 1 else f"{words} is {least}+ characters"
    if kind == "too_long":
        return f"{words}: at most {ctx.get('max_length')} (given {ctx.get('actual_length')})"
    if kind == "too_short":
        least = ctx.get("min_length")
        return f"{words} may not be empty" if least == 1 else f"{words}: at least {least}"
    if kind in ("enum", "literal_error"):
        return f"{given!r} is not accepted as {words}: use {ctx.get('expected')}"
    if kind in ("list_type", "tuple_type", "set_type"):
        return f"{words} is a list, not {given!r}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{words} is an object of names and values, not {given!r}"
    if kind.startswith(("datetime", "date", "time")):
        return (
            f"{words}: {given!r} is not a date and time; use ISO 8601, e.g. 2026-12-07T09:00+09:00"
        )
    if kind == "json_invalid":
        return "the body is not valid JSON"
    if kind.startswith("uuid"):
        return f"{words}: {given!r} is not an id of the expected form"
    return f"{given!r} is not accepted as {words}"
