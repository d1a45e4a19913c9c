"""Errors a use case raises; adapters map them to HTTP statuses and CLI exit codes.

ServiceError
├── InvalidInput   (422) the request names something wrong; ``field`` says which
├── NotFound       (404) absent, or not visible to the caller: the two look the same
├── Conflict       (409) valid, but not in the object's current state
├── Forbidden      (403) visible, but the caller's role may not do this
└── TooManyRequests (429) a limit on how much or how fast; the message names it
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "Refusal",
    "ServiceError",
    "TooManyRequests",
]


class ServiceError(Exception):
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServiceError):
    status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


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

    def __init__(self, message: str, refusal: Refusal | None = None) -> None:
        super().__init__(message)
        self.refusal = refusal


class TooManyRequests(ServiceError):
    status = 429
