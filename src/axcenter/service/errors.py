"""Errors a use case raises; adapters map them to HTTP statuses and CLI exit codes.

ServiceError
├── InvalidInput   (422) the request names something wrong; ``field`` says which
├── NotFound       (404) absent, or not visible to the caller: the two look the same
├── Conflict       (409) valid, but not in the object's current state
├── Forbidden      (403) visible, but the caller's role may not do this
└── TooManyRequests (429) a limit on how much or how fast; the message names it

Each error is raised with its message's English *template* and the template's parameters,
gettext-style: the template is the message id (``NotFound("no job {job_id!r}",
job_id=7)``). ``message`` is the English sentence the API, the CLI and the logs show;
the dashboard says ``template`` in the reader's language with the same ``params``
(``web/messages.py``; ``tests/web/test_i18n.py`` fails on a template it lacks).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Conflict",
    "Count",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "Refusal",
    "ServiceError",
    "Span",
    "TooManyRequests",
]


@dataclass(frozen=True, slots=True)
class Count:
    """A number of things as a parameter: English says it with its noun (``1 node``,
    ``2 nodes``); another language takes ``n`` and its own word."""

    n: int
    noun: str

    def __str__(self) -> str:
        return f"{self.n} {self.noun}" if self.n == 1 else f"{self.n} {self.noun}s"


@dataclass(frozen=True, slots=True)
class Span:
    """A duration as a parameter: ``7 days``, ``1 day 2 h``, ``90 min``, ``45 s`` in
    English; another language says ``seconds`` its own way."""

    seconds: int

    def __str__(self) -> str:
        days, rest = divmod(self.seconds, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, secs = divmod(rest, 60)
        parts = [str(Count(days, "day"))] if days else []
        parts += [f"{n} {unit}" for n, unit in ((hours, "h"), (minutes, "min"), (secs, "s")) if n]
        return " ".join(parts) or "0 s"


class ServiceError(Exception):
    status = 400

    def __init__(self, template: str, /, **params: object) -> None:
        self.template = template
        self.params = params
        self.message = template.format(**params)
        super().__init__(self.message)


class InvalidInput(ServiceError):
    """``field`` names the input (as the API spells it); ``message`` is ``field: sentence``."""

    status = 422

    def __init__(self, field: str, template: str, /, **params: object) -> None:
        super().__init__(template, **params)
        self.field = field
        self.sentence = self.message
        self.message = f"{field}: {self.sentence}"
        self.args = (self.message,)


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


@dataclass(frozen=True, slots=True)
class Refusal:
    """What an access rule refused, for adapters that say it in another language."""

    role: str
    action: str  # an access rule's name, e.g. request.read
    name: str  # the object's name, or "" for a collection


class Forbidden(ServiceError):
    status = 403

    def __init__(self, template: str, refusal: Refusal | None = None, /, **params: object) -> None:
        super().__init__(template, **params)
        self.refusal = refusal


class TooManyRequests(ServiceError):
    status = 429
