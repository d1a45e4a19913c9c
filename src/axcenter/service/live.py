"""Live pages: the server tells each open page when what it shows may have changed.

The control loop publishes a sequence number and the jobs (with their projects) each
changing cycle touched (``control/live.py``); the estimator publishes the jobs whose
estimated start moved. This hub takes each change over to the server's event loop with
one call, whatever the number of open pages, and wakes only the streams it concerns:

- a job's page (``job``): changes that touched that job;
- any other page: changes that touched a project its reader sees
  (``access.visible_projects``: all of them for operators and program managers);
- every stream: changes of nodes, policy or the whole cache (``everything``).

A stream carries a sequence number and nothing else, so it tells a subscriber no more
than reading the page again would: the page (its ``data-refresh`` regions) is then
fetched with the reader's own session, through the same service functions the API
uses. A job's stream is refused (404) to whoever may not read the job, so the moments
another company's job starts or ends are not theirs to learn either.

Cost: the loop's share is one ``call_soon_threadsafe`` per changing cycle; waking is a
lookup per touched job and project, then one ``asyncio.Event.set`` per concerned stream.
A stream sends at most one message per ``JOB_GAP_S`` (a job's page) or ``PAGE_GAP_S``
(a whole page, refetched whole), whatever the rate of cycles
(``benchmarks/live_push.py``).
A stream lasts at most ``MAX_STREAM_S`` (then the browser reconnects: visibility is
looked up again) and sends a comment every ``KEEPALIVE_S`` so proxies keep it open.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select

from axcenter.control.live import Change, LiveState
from axcenter.model.access import Principal
from axcenter.service.access import visible_projects
from axcenter.service.jobs import visible_job
from axcenter.store import orm

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = ["KEEPALIVE_S", "MAX_STREAM_S", "LiveHub", "Subscription", "events", "subscribe"]

#: a comment line this often keeps an idle stream open through proxies
KEEPALIVE_S = 15.0
#: a stream ends after this long; the browser reconnects (visibility looked up again)
MAX_STREAM_S = 300.0
#: at most one message per job's stream this often (a burst of cycles is one refresh)...
JOB_GAP_S = 0.25
#: ...and per stream of a whole page (queue, cluster, project, program), which its
#: reader refetches whole: a busy center's pages refresh at this pace, not each cycle's
PAGE_GAP_S = 2.0


@dataclass(eq=False)
class Subscription:
    """One open stream: woken (``event``) by the changes it concerns."""

    job_id: str | None
    #: the projects its reader sees; None: all
    projects: frozenset[str] | None
    event: asyncio.Event = field(default_factory=asyncio.Event)
    version: int = 0


class LiveHub:
    """The open streams of one server (one event loop), indexed by what wakes them."""

    def __init__(self, live: LiveState) -> None:
        self._live = live
        self._loop: asyncio.AbstractEventLoop | None = None
        self._by_job: dict[str, set[Subscription]] = {}
        self._by_project: dict[str, set[Subscription]] = {}
        self._all: set[Subscription] = set()  # sees every project
        self._count = 0

    @property
    def version(self) -> int:
        return self._live.version

    @property
    def subscribers(self) -> int:
        return self._count

    def _on_change(self, change: Change) -> None:
        """On the publishing thread: one hand-over to the event loop, nothing else."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile (a server stopping)
                loop.call_soon_threadsafe(self._dispatch, change)

    def _dispatch(self, change: Change) -> None:
        woken: set[Subscription] = set()
        if change.everything:
            woken.update(self._all)
            for subs in self._by_project.values():
                woken.update(subs)
            for subs in self._by_job.values():
                woken.update(subs)
        else:
            for job_id in change.jobs:
                woken.update(self._by_job.get(job_id, ()))
            if change.jobs:
                woken.update(self._all)
            for project_id in change.projects:
                woken.update(self._by_project.get(project_id, ()))
        for sub in woken:
            sub.version = change.version
            sub.event.set()

    @contextlib.contextmanager
    def _added(self, sub: Subscription) -> Iterator[None]:
        running = asyncio.get_running_loop()
        if self._loop is None:
            self._live.add_listener(self._on_change)
        self._loop = running  # a server's one loop (a new one after a restart in tests)
        if sub.job_id is not None:
            self._by_job.setdefault(sub.job_id, set()).add(sub)
        elif sub.projects is None:
            self._all.add(sub)
        else:
            for project_id in sub.projects:
                self._by_project.setdefault(project_id, set()).add(sub)
        self._count += 1
        try:
            yield
        finally:
            self._count -= 1
            if sub.job_id is not None:
                _discard(self._by_job, sub.job_id, sub)
            elif sub.projects is None:
                self._all.discard(sub)
            else:
                for project_id in sub.projects:
                    _discard(self._by_project, project_id, sub)

    async def stream(self, sub: Subscription, *, max_s: float = MAX_STREAM_S) -> AsyncIterator[str]:
        """The text/event-stream of ``sub``: its current version at once, then each
        version that concerns it, at most every ``JOB_GAP_S`` or ``PAGE_GAP_S``."""
        loop = asyncio.get_running_loop()
        with self._added(sub):
            sub.version = self.version
            yield "retry: 5000\n\n"
            yield f"data: {sub.version}\n\n"
            ends = loop.time() + max_s
            while (left := ends - loop.time()) > 0:
                try:
                    await asyncio.wait_for(sub.event.wait(), min(KEEPALIVE_S, left))
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                sub.event.clear()
                yield f"data: {sub.version}\n\n"
                await asyncio.sleep(JOB_GAP_S if sub.job_id is not None else PAGE_GAP_S)


def _discard(index: dict[str, set[Subscription]], key: str, sub: Subscription) -> None:
    subs = index.get(key)
    if subs is not None:
        subs.discard(sub)
        if not subs:
            del index[key]


def subscribe(center: Center, who: Principal, job_id: str | None = None) -> Subscription:
    """A subscription for ``who``: to one job it may read (``NotFound`` otherwise, as the
    job's page answers), or to the projects it sees."""
    with center.store.read() as session:
        if job_id is not None:
            visible_job(session, who, job_id)
            return Subscription(job_id=job_id, projects=None)
        everyone = session.scalar(select(orm.Project.id).where(~visible_projects(who)).limit(1))
        if everyone is None:
            return Subscription(job_id=None, projects=None)
        seen = session.scalars(select(orm.Project.id).where(visible_projects(who))).all()
        return Subscription(job_id=None, projects=frozenset(seen))


def events(center: Center, sub: Subscription) -> AsyncIterator[str]:
    return center.live_hub.stream(sub)
