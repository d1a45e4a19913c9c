"""A small read cache that forgets everything when its tables change.

Hot read paths (token authentication, the project a job is submitted to) read the same
few rows for every request. ``VersionedCache`` keeps what they read, keyed by what they
asked, together with the store's change version of the tables read
(``Store.version``): any commit of this process that touches one of those tables makes
every entry stale at once, and ``ttl_s`` bounds how long a write made by another
process can go unseen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["VersionedCache"]

K = TypeVar("K")
V = TypeVar("V")

#: entries kept at most; beyond that the cache starts afresh (simple and bounded)
MAX_ENTRIES = 10_000


class VersionedCache(Generic[K, V]):
    def __init__(
        self,
        version: Callable[[], int],
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._version = version
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[K, tuple[V, int, float]] = {}

    def version(self) -> int:
        """Take this before reading the store; give it to ``put`` with what was read."""
        return self._version()

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, version, expires = entry
        if version != self._version() or self._clock() >= expires:
            self._entries.pop(key, None)
            return None
        return value

    def put(self, key: K, value: V, version: int) -> None:
        """Keep ``value``, read after ``version`` was taken; a stale version is not kept."""
        if version != self._version():
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries = {}
        self._entries[key] = (value, version, self._clock() + self._ttl_s)

    def clear(self) -> None:
        self._entries = {}
