"""Wake API requests that wait for jobs to end (``/jobs/{id}/wait``) without polling.

The loop thread calls ``notify`` after committing terminal states; waiters are asyncio
futures on the server's event loop, resolved thread-safely.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterable

__all__ = ["JobWatch"]


class JobWatch:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]] = {}
        #: told of every end, on the loop's thread: each must only note it (no I/O)
        self._listeners: list[Callable[[list[str]], None]] = []

    def add_listener(self, listener: Callable[[list[str]], None]) -> None:
        """Call ``listener(job_ids)`` on each ``notify`` (e.g. to wake a thread)."""
        self._listeners.append(listener)

    async def wait(
        self, job_id: str, timeout: float, is_done: Callable[[], Awaitable[bool]]
    ) -> None:
        """Return when ``notify`` names ``job_id``, ``is_done()`` is true, or after ``timeout``."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        entry = (loop, fut)
        with self._lock:
            self._waiters.setdefault(job_id, []).append(entry)
        try:
            if await is_done():  # checked after registering, so no notify is missed
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, timeout)
        finally:
            with self._lock:
                entries = self._waiters.get(job_id, [])
                if entry in entries:
                    entries.remove(entry)
                if not entries:
                    self._waiters.pop(job_id, None)

    def notify(self, job_ids: Iterable[str]) -> None:
        ended = list(job_ids)
        for listener in self._listeners:
            listener(ended)
        with self._lock:
            woken = [e for j in ended for e in self._waiters.pop(j, [])]
        for loop, fut in woken:
            loop.call_soon_threadsafe(_resolve, fut)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
