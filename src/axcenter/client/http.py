"""A small synchronous client for the axcenter JSON API (``/api/v1``).

Methods return the server's JSON as plain dicts so that the CLI, scripts and notebooks can
use them without another layer of models. Every failure, HTTP or network, becomes one
exception type, ``ApiError``, carrying the server's human-readable ``detail``.

A server that cannot serve for a moment (503: its database restarting, its disk full; a
proxy's 502/504; no connection) is asked again with backoff for up to ``retry_s``:
requests that change nothing always, submissions too (each carries an idempotency key,
made here when the caller gave none, so a submission the server took before its answer
was lost is not taken twice), other changes only when the request never left.

The HTTP itself is the standard library's ``http.client`` behind a ``Transport``
(``axcenter.client.transport``), loaded when the first ``Client`` is made, not with this
module: ``axc`` commands that never reach the server (help, bad input) start without it.
"""

from __future__ import annotations

import json as jsonlib
import math
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote, urlencode, urlsplit

from axcenter import __version__

if TYPE_CHECKING:
    from axcenter.client.transport import Request, Response, Transport

__all__ = ["TERMINAL_STATES", "ApiError", "Client"]

JSON = dict[str, Any]

#: Job states after which nothing more happens (mirrors ``axcenter.model.jobs.TERMINAL``).
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "timed_out"})

#: Longest single long poll; the server caps ``/wait`` at about this too.
MAX_POLL_S = 30.0
#: A non-terminal answer that came back sooner than this is not trusted as a long poll:
#: the client pauses before asking again so that it never spins against the server.
_MIN_POLL_INTERVAL_S = 0.5
#: Added to the request timeout of a cancel, which waits for the job's processes to exit.
_CANCEL_EXTRA_S = 60.0
#: How long a request is retried while the server is unavailable (seconds), by default.
RETRY_S = 60.0
#: First pause before a retry, doubled up to ``_RETRY_MAX_PAUSE_S``; a server's
#: ``Retry-After`` wins when it asks for longer (capped as well).
_RETRY_FIRST_PAUSE_S = 0.25
_RETRY_MAX_PAUSE_S = 5.0
#: Statuses that say "not now": the request may be sent again as it was.
_UNAVAILABLE = frozenset({502, 503, 504})
#: Methods that change nothing, so any failure may be retried.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ApiError(Exception):
    """A request failed. ``status_code`` is the HTTP status, or 0 when there was no answer."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"{status_code}: {detail}" if status_code else detail)
        self.status_code = status_code
        self.detail = detail


def _detail(response: Response) -> str:
    """The human message of an error response, whatever shape the server gave it."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:500] if text else f"HTTP {response.status_code} {response.reason_phrase}"
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str) and detail:
        return detail
    if isinstance(detail, list):  # FastAPI's default validation shape, just in case
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return f"HTTP {response.status_code} {response.reason_phrase}"


class Client:
    """One user's connection to one axcenter server (keeps the HTTP connection open)."""

    def __init__(
        self,
        url: str,
        token: str,
        timeout: float = 30.0,
        transport: Transport | None = None,
        retry_s: float = RETRY_S,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        """``retry_s``: how long to retry while the server is unavailable (0: never);
        ``on_retry`` is told each retry in a sentence (the CLI prints it); ``transport``:
        how requests travel (by default ``HTTPTransport``, the standard library's)."""
        from axcenter.client.transport import HTTPTransport  # noqa: PLC0415  (module doc)

        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retry_s = retry_s
        self.on_retry = on_retry
        #: the center's time zone, as its latest answer to a read named it (None: not yet)
        self.time_zone: str | None = None
        self._prefix = f"{urlsplit(self.url).path}/api/v1"
        self._headers = {
            "Host": urlsplit(self.url).netloc.rpartition("@")[2],
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": f"axcenter-client/{__version__}",
        }
        try:
            self._transport = transport if transport is not None else HTTPTransport(self.url)
        except ValueError as exc:
            raise ApiError(0, f"cannot reach axcenter: {exc}") from None

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"

    # -- plumbing ---------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        json: Any = None,
        files: Mapping[str, tuple[str, bytes]] | None = None,
        timeout: float | None = None,
        stream: bool = False,
    ) -> Request:
        """The request for ``path`` under ``/api/v1``: ``params`` as its query (a list
        value repeats its name; ``True`` is ``true``), ``json`` or ``files`` (multipart)
        as its body."""
        from axcenter.client.transport import Request  # noqa: PLC0415

        target = self._prefix + path
        query = _query(params)
        if query:
            target += f"?{query}"
        headers = dict(self._headers)
        body = None
        if files is not None:
            body, headers["Content-Type"] = _multipart(files)
        elif json is not None:
            body = jsonlib.dumps(
                json, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode()
            headers["Content-Type"] = "application/json"
        if body is not None or method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body or b""))
        return Request(method, target, headers, body, timeout, stream)

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        json: Any = None,
        files: Mapping[str, tuple[str, bytes]] | None = None,
        timeout: float | None = None,
        idempotent: bool = False,
    ) -> Response:
        """One request, retried while the server is unavailable (module docstring).
        ``idempotent``: sending it twice does what sending it once does (a submission
        with its idempotency key); requests that change nothing are so anyway."""
        from axcenter.client.transport import TransportError  # noqa: PLC0415

        idempotent = idempotent or method in _SAFE_METHODS
        request = self._request(
            method,
            path,
            params=params,
            json=json,
            files=files,
            timeout=self.timeout if timeout is None else timeout,
        )
        deadline = time.monotonic() + self.retry_s
        pause = _RETRY_FIRST_PAUSE_S
        while True:
            try:
                response = self._transport.send(request)
            except TransportError as exc:
                if exc.timeout:
                    error = ApiError(0, f"axcenter at {self.url} did not answer in time: {exc}")
                else:
                    error = ApiError(0, f"cannot reach axcenter at {self.url}: {exc}")
                # a request that never left may always be sent again
                wait = pause if idempotent or exc.unsent else None
            else:
                if not response.is_error:
                    self.time_zone = response.headers.get("x-axc-time-zone", self.time_zone)
                    return response
                error = ApiError(response.status_code, _detail(response))
                wait = (
                    max(pause, _retry_after(response))
                    if response.status_code in _UNAVAILABLE and idempotent
                    else None
                )
            if wait is None or time.monotonic() + wait > deadline:
                raise error
            if self.on_retry is not None:
                self.on_retry(f"not served now ({error}); retrying in {wait:.1f} s")
            time.sleep(wait)
            pause = min(pause * 2, _RETRY_MAX_PAUSE_S)

    def _stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        timeout: float | None,
    ) -> Response:
        """A request sent once whose body the caller reads as it comes (close it)."""
        request = self._request(
            method, path, params=params, json=json, timeout=timeout, stream=True
        )
        response = self._transport.send(request)
        if response.is_error:
            with response:
                response.read()
                raise ApiError(response.status_code, _detail(response))
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> JSON:
        response = self._send(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiError(
                response.status_code, f"unexpected non-JSON answer from {self.url}{path}"
            ) from exc
        if not isinstance(body, dict):
            raise ApiError(response.status_code, f"unexpected answer from {self.url}{path}")
        return body

    @staticmethod
    def _job_path(job_id: str, suffix: str = "") -> str:
        return f"/jobs/{quote(job_id, safe='')}{suffix}"

    # -- identity and projects --------------------------------------------------------------

    def whoami(self) -> JSON:
        """The authenticated user: id, name, organization and role."""
        return self._json("GET", "/whoami")

    def projects(self) -> list[JSON]:
        """The projects the user may submit to."""
        return list(self._json("GET", "/projects").get("items", []))

    # -- jobs ---------------------------------------------------------------------------------

    def submit_job(self, **fields: Any) -> JSON:
        """Submit one job; ``fields`` are the API's job fields (``None`` means server default).

        The server returns the existing job for a repeated ``idempotency_key``, so a
        retried submission never creates a duplicate; one is made when none is given.
        """
        return self._json("POST", "/jobs", json=_keyed(_body(fields)), idempotent=True)

    def submit_array(self, indices: str, **fields: Any) -> JSON:
        """Submit a job array (one task per index in ``FIRST-LAST[:STEP]``); idempotent
        as ``submit_job``."""
        body = {**_keyed(_body(fields)), "indices": indices}
        return self._json("POST", "/arrays", json=body, idempotent=True)

    def get_array(self, array_id: str, ids: bool = False) -> JSON:
        """An array's tasks per state (and their job ids with ``ids``)."""
        return self._json("GET", f"/arrays/{array_id}", params={"ids": ids})

    def cancel_array(self, array_id: str) -> JSON:
        """Cancel every task of an array that has not ended."""
        return self._json("POST", f"/arrays/{array_id}/cancel", timeout=self.timeout + 60)

    def submit_jobs(self, jobs: Iterable[Mapping[str, Any]]) -> list[JSON]:
        """Submit several jobs in one request (all or nothing, as the server defines it)."""
        body = {"jobs": [_keyed(_body(job)) for job in jobs]}
        return list(self._json("POST", "/jobs:batch", json=body, idempotent=True).get("items", []))

    def list_jobs(
        self,
        state: str | Iterable[str] | None = None,
        project: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        mine: bool = False,
        users: Iterable[str] = (),
        names: Iterable[str] = (),
        array: str | None = None,
    ) -> JSON:
        """One page of jobs, newest first: ``{"items": [...], "next_cursor": str | None}``;
        ``users`` and ``names`` keep the jobs of those users, of those names."""
        params: list[tuple[str, Any]] = []
        states = [state] if isinstance(state, str) else list(state or ())
        params.extend(("state", s) for s in states)
        params.extend(("user", u) for u in users)
        params.extend(("name", n) for n in names)
        if array:
            params.append(("array", array))
        if project:
            params.append(("project", project))
        params.append(("limit", limit))
        if cursor:
            params.append(("cursor", cursor))
        if mine:
            params.append(("mine", "true"))
        return self._json("GET", "/jobs", params=params)

    def iter_jobs(
        self,
        state: str | Iterable[str] | None = None,
        project: str | None = None,
        limit: int = 50,
        mine: bool = False,
        users: Iterable[str] = (),
        names: Iterable[str] = (),
        array: str | None = None,
    ) -> Iterator[JSON]:
        """Every matching job, newest first, fetching pages of ``limit`` as needed."""
        states = [state] if isinstance(state, str) else list(state or ())
        users, names = list(users), list(names)
        cursor: str | None = None
        while True:
            page = self.list_jobs(states, project, limit, cursor, mine, users, names, array)
            yield from page.get("items", [])
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def get_job(self, job_id: str) -> JSON:
        """One job, including its state-change ``events``."""
        return self._json("GET", self._job_path(job_id))

    def checkpoint_job(self, job_id: str) -> JSON:
        """Report that a running job saved its work (409 if it is not running)."""
        return self._json("POST", self._job_path(job_id, "/checkpoint"))

    def cancel_job(self, job_id: str) -> JSON:
        """Cancel a job; the server answers 409 if it has already finished.

        For a running job the server answers once its processes are gone, which can take
        its kill grace period, hence the longer timeout.
        """
        return self._json(
            "POST", self._job_path(job_id, "/cancel"), timeout=self.timeout + _CANCEL_EXTRA_S
        )

    def hold_job(self, job_id: str) -> JSON:
        """Keep a pending job from starting (409 once it has started)."""
        return self._json("POST", self._job_path(job_id, "/hold"))

    def release_job(self, job_id: str) -> JSON:
        """Let a held job start."""
        return self._json("POST", self._job_path(job_id, "/release"))

    def requeue_job(self, job_id: str, *, hold: bool = False) -> JSON:
        """Put a job that ran or ended back in the queue, with its id (409 if pending)."""
        params = {"hold": "true"} if hold else None
        return self._json("POST", self._job_path(job_id, "/requeue"), params=params)

    def update_job(self, job_id: str, **changes: Any) -> JSON:
        """Change ``name``, or a pending job's ``time_limit_s`` or ``priority``."""
        body = {k: v for k, v in changes.items() if v is not None}
        return self._json("PATCH", self._job_path(job_id), json=body)

    def read_log(self, job_id: str, offset: int = 0) -> tuple[bytes, int, str]:
        """Log bytes from ``offset``: ``(data, next_offset, job_state)``."""
        response = self._send("GET", self._job_path(job_id, "/log"), params={"offset": offset})
        data = response.content
        try:
            next_offset = int(response.headers["x-log-offset"])
        except (KeyError, ValueError):
            next_offset = offset + len(data)
        return data, next_offset, response.headers.get("x-job-state", "")

    def run_step(
        self,
        job_id: str,
        command: list[str],
        env: Mapping[str, str] | None = None,
        *,
        output: Callable[[str], None],
    ) -> JSON:
        """Run ``command`` as a step inside the running job's allocation (srun): its
        output goes to ``output`` as it comes; returns the step as it ended. Sent once
        (a step is not idempotent); closing the client, or an interrupt, cancels it."""
        from axcenter.client.transport import TransportError  # noqa: PLC0415

        body = {"command": command, "env": dict(env or {})}
        path = self._job_path(job_id, "/steps")
        try:
            with self._stream("POST", path, json=body, timeout=None) as response:
                for line in response.iter_lines():
                    if not line:
                        continue
                    item = self._decode_line(line)
                    if "output" in item:
                        output(str(item["output"]))
                    elif isinstance(item.get("step"), dict):
                        step: JSON = item["step"]
                        return step
                    elif "error" in item:
                        raise ApiError(500, str(item["error"]))
        except TransportError as exc:
            raise ApiError(0, f"lost axcenter at {self.url} during the step: {exc}") from exc
        raise ApiError(0, f"axcenter at {self.url} ended the step's answer early")

    @staticmethod
    def _decode_line(line: str) -> JSON:
        import json  # noqa: PLC0415  (only steps read JSON lines)

        try:
            item = json.loads(line)
        except ValueError:
            return {}
        return item if isinstance(item, dict) else {}

    def wait_job(self, job_id: str, timeout: float | None = None) -> JSON:
        """Wait until the job is terminal or ``timeout`` seconds pass (``None``: forever).

        Returns the last job seen; check its ``state`` to tell a finish from a timeout.
        Uses long polls of at most ``MAX_POLL_S`` so proxies never see an idle connection
        for long.
        """
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return self.get_job(job_id)
            poll = MAX_POLL_S if remaining is None else min(MAX_POLL_S, remaining)
            # Whole seconds: the server's parameter may be an integer.
            poll_s = max(1, math.ceil(poll))
            started = time.monotonic()
            job = self._json(
                "GET",
                self._job_path(job_id, "/wait"),
                params={"timeout": poll_s},
                timeout=poll_s + self.timeout,
            )
            if job.get("state") in TERMINAL_STATES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                return job
            elapsed = time.monotonic() - started
            if elapsed < _MIN_POLL_INTERVAL_S:
                pause = _MIN_POLL_INTERVAL_S - elapsed
                if deadline is not None:
                    pause = min(pause, max(deadline - time.monotonic(), 0.0))
                time.sleep(pause)

    def accounting(
        self,
        since: str | None = None,
        until: str | None = None,
        users: Iterable[str] = (),
        project: str | None = None,
        limit: int = 10_000,
    ) -> JSON:
        """The jobs that ran during a period (ISO-8601 bounds; default: the last 7 days),
        each with its elapsed time, GPU-seconds and won charged (``items``)."""
        params: list[tuple[str, Any]] = [("user", u) for u in users]
        params += [(k, v) for k, v in (("since", since), ("until", until)) if v is not None]
        if project:
            params.append(("project", project))
        params.append(("limit", limit))
        return self._json("GET", "/accounting/jobs", params=params)

    # -- cluster ------------------------------------------------------------------------------

    def cluster(self) -> JSON:
        """Nodes, their devices and who holds them, plus a summary."""
        return self._json("GET", "/cluster")

    def queue(self, offset: int = 0, limit: int = 500) -> JSON:
        """Pending jobs in scheduling order (``items`` with ``position``, ``reason`` and
        ``estimated_start``; ``total``)."""
        return self._json("GET", "/queue", params={"offset": offset, "limit": limit})

    # -- scheduling policy ----------------------------------------------------------------------

    @staticmethod
    def _segment(value: str) -> str:
        return quote(value, safe="")

    def list_quotas(self, project: str | None = None) -> list[JSON]:
        """Quotas of the visible projects, each with ``in_use`` GPUs and ``borrowing``."""
        params = {"project": project} if project else None
        return list(self._json("GET", "/quotas", params=params).get("items", []))

    def get_quota(self, project: str, gpu_type: str) -> JSON:
        return self._json("GET", f"/quotas/{self._segment(project)}/{self._segment(gpu_type)}")

    def set_quota(
        self,
        project: str,
        gpu_type: str,
        nominal: int,
        borrowing_limit: int | None = None,
        lending_limit: int | None = None,
    ) -> JSON:
        """Create or replace a quota (operators); ``None`` limits mean no limit."""
        body = {
            "nominal": nominal,
            "borrowing_limit": borrowing_limit,
            "lending_limit": lending_limit,
        }
        return self._json(
            "PUT", f"/quotas/{self._segment(project)}/{self._segment(gpu_type)}", json=body
        )

    def delete_quota(self, project: str, gpu_type: str) -> None:
        self._send("DELETE", f"/quotas/{self._segment(project)}/{self._segment(gpu_type)}")

    def list_cohorts(self) -> list[JSON]:
        return list(self._json("GET", "/cohorts").get("items", []))

    def create_cohort(self, name: str, parent: str | None = None) -> JSON:
        return self._json("POST", "/cohorts", json={"name": name, "parent": parent})

    def move_cohort(self, name: str, parent: str | None) -> JSON:
        """Put a cohort under ``parent`` (``None``: under the center's root)."""
        return self._json("PUT", f"/cohorts/{self._segment(name)}/parent", json={"parent": parent})

    def delete_cohort(self, name: str) -> None:
        self._send("DELETE", f"/cohorts/{self._segment(name)}")

    def set_project_cohort(self, project: str, cohort: str | None) -> JSON:
        """Put a project in a cohort (``None``: out of any cohort)."""
        return self._json(
            "PUT", f"/projects/{self._segment(project)}/cohort", json={"cohort": cohort}
        )

    def get_project_limits(self, project: str) -> JSON:
        return self._json("GET", f"/projects/{self._segment(project)}/limits")

    def set_project_limits(
        self,
        project: str,
        fair_share_weight: float | None = None,
        max_running_jobs: int | None = None,
        max_gpus: int | None = None,
        clear: Iterable[str] = (),
    ) -> JSON:
        """Change what is given; ``clear`` names the caps to remove."""
        body: JSON = {
            k: v
            for k, v in (
                ("fair_share_weight", fair_share_weight),
                ("max_running_jobs", max_running_jobs),
                ("max_gpus", max_gpus),
            )
            if v is not None
        }
        body["clear"] = list(clear)
        return self._json("PUT", f"/projects/{self._segment(project)}/limits", json=body)

    def list_reservations(self, include_ended: bool = False) -> list[JSON]:
        params = {"include_ended": "true"} if include_ended else None
        return list(self._json("GET", "/reservations", params=params).get("items", []))

    def create_reservation(
        self,
        name: str,
        project: str,
        nodes: Iterable[Mapping[str, Any]],
        ends_at: str,
        starts_at: str | None = None,
    ) -> JSON:
        """Reserve ``nodes`` (``{"node": name, "devices": [...] | None}``) for a project;
        times are ISO-8601 strings, ``starts_at`` ``None`` meaning now."""
        body: JSON = {
            "name": name,
            "project": project,
            "ends_at": ends_at,
            "nodes": [{k: v for k, v in n.items() if v is not None} for n in nodes],
        }
        if starts_at is not None:
            body["starts_at"] = starts_at
        return self._json("POST", "/reservations", json=body)

    def delete_reservation(self, name: str) -> None:
        self._send("DELETE", f"/reservations/{self._segment(name)}")

    # -- export -------------------------------------------------------------------------------

    def export_history(
        self, since: str | None = None, until: str | None = None, chunk_size: int = 65536
    ) -> Iterator[bytes]:
        """The visible finished jobs as native-trace CSV bytes, streamed as they come.

        ``since``/``until`` are ISO-8601 times bounding the submission time. The export
        can be long, so the read timeout applies per chunk, not to the whole answer.
        """
        params = {k: v for k, v in (("since", since), ("until", until)) if v is not None}
        from axcenter.client.transport import TransportError  # noqa: PLC0415

        try:
            with self._stream(
                "GET", "/export/history", params=params, timeout=self.timeout
            ) as response:
                yield from response.iter_bytes(chunk_size)
        except TransportError as exc:
            if exc.timeout:
                raise ApiError(0, f"axcenter at {self.url} did not answer in time: {exc}") from exc
            raise ApiError(0, f"cannot reach axcenter at {self.url}: {exc}") from exc

    # -- reports ------------------------------------------------------------------------------

    @staticmethod
    def _usage_params(
        group_by: Iterable[str], since: str | None, until: str | None, fmt: str
    ) -> list[tuple[str, Any]]:
        params: list[tuple[str, Any]] = [("group_by", g) for g in group_by]
        params += [(k, v) for k, v in (("since", since), ("until", until)) if v is not None]
        params.append(("format", fmt))
        return params

    def usage_report(
        self, group_by: Iterable[str] = (), since: str | None = None, until: str | None = None
    ) -> JSON:
        """GPU-hours granted and used, won charged and waits per group (``rows``) and their
        ``total``; GPU-hours and ratios are decimal strings. No ``group_by``: by program."""
        return self._json(
            "GET", "/reports/usage", params=self._usage_params(group_by, since, until, "json")
        )

    def usage_report_csv(
        self, group_by: Iterable[str] = (), since: str | None = None, until: str | None = None
    ) -> str:
        """The same report as CSV text, ending with its ``TOTAL`` row."""
        params = self._usage_params(group_by, since, until, "csv")
        return self._send("GET", "/reports/usage", params=params).text

    def burndown(self, program: str) -> JSON:
        """A program's budget, charges per day and the day its budget runs out."""
        return self._json("GET", f"/reports/burndown/{self._segment(program)}")

    def burndown_csv(self, program: str) -> str:
        path = f"/reports/burndown/{self._segment(program)}"
        return self._send("GET", path, params={"format": "csv"}).text

    # -- programs, organizations, users, projects ---------------------------------------------

    @staticmethod
    def _query(**params: Any) -> dict[str, Any]:
        return {k: v for k, v in params.items() if v is not None}

    def list_programs(self) -> list[JSON]:
        return list(self._json("GET", "/programs").get("items", []))

    def get_program(self, program: str) -> JSON:
        return self._json("GET", f"/programs/{self._segment(program)}")

    def create_program(self, **fields: Any) -> JSON:
        """``name``, ``budget_won``, and optionally ``starts_at``/``ends_at`` (ISO-8601),
        ``public_share_bp`` (basis points) and ``description``."""
        return self._json("POST", "/programs", json=self._query(**fields))

    def update_program(self, program: str, **fields: Any) -> JSON:
        return self._json(
            "PATCH", f"/programs/{self._segment(program)}", json=self._query(**fields)
        )

    def list_organizations(self) -> list[JSON]:
        return list(self._json("GET", "/organizations").get("items", []))

    def get_organization(self, organization: str) -> JSON:
        return self._json("GET", f"/organizations/{self._segment(organization)}")

    def create_organization(self, **fields: Any) -> JSON:
        return self._json("POST", "/organizations", json=self._query(**fields))

    def list_users(self, organization: str | None = None) -> list[JSON]:
        params = self._query(organization=organization)
        return list(self._json("GET", "/users", params=params).get("items", []))

    def get_user(self, user: str) -> JSON:
        return self._json("GET", f"/users/{self._segment(user)}")

    def create_user(self, **fields: Any) -> JSON:
        """Create a user; the answer's ``token`` is its first token, shown only here."""
        return self._json("POST", "/users", json=self._query(**fields))

    def update_user(self, user: str, **fields: Any) -> JSON:
        return self._json("PATCH", f"/users/{self._segment(user)}", json=self._query(**fields))

    def map_unix_account(self, user: str, account: str) -> JSON:
        """Run ``user``'s jobs as the existing unix ``account`` (operators)."""
        return self._json(
            "PUT", f"/users/{self._segment(user)}/unix-account", json={"account": account}
        )

    def issue_token(self, user: str, name: str = "", *, expires_in_days: int | None = None) -> JSON:
        """A new token for ``user``; the answer's ``token`` is the only copy."""
        body: dict[str, Any] = {"name": name}
        if expires_in_days is not None:
            body["expires_in_days"] = expires_in_days
        return self._json("POST", f"/users/{self._segment(user)}/tokens", json=body)

    def reset_password(self, user: str) -> JSON:
        """Drop ``user``'s password and second factor; the answer's ``link`` sets new ones."""
        return self._json("POST", f"/users/{self._segment(user)}/password-reset")

    def rotate_token(self, token_id: str, *, expires_in_days: int | None = None) -> JSON:
        """A new token in place of ``token_id`` (revoked at once); the only copy."""
        body = {} if expires_in_days is None else {"expires_in_days": expires_in_days}
        return self._json("POST", f"/tokens/{self._segment(token_id)}/rotate", json=body)

    def revoke_token(self, token_id: str) -> None:
        self._send("DELETE", f"/tokens/{self._segment(token_id)}")

    def get_project(self, project: str) -> JSON:
        return self._json("GET", f"/projects/{self._segment(project)}")

    def create_project(self, **fields: Any) -> JSON:
        return self._json("POST", "/projects", json=self._query(**fields))

    def add_member(self, project: str, user: str) -> JSON:
        return self._json(
            "POST", f"/projects/{self._segment(project)}/members", json={"user": user}
        )

    def remove_member(self, project: str, user: str) -> None:
        self._send("DELETE", f"/projects/{self._segment(project)}/members/{self._segment(user)}")

    # -- job templates ------------------------------------------------------------------------

    def _template_path(self, project: str, name: str = "", suffix: str = "") -> str:
        path = f"/projects/{self._segment(project)}/templates"
        return path + (f"/{self._segment(name)}" if name else "") + suffix

    def list_templates(self, project: str) -> list[JSON]:
        return list(self._json("GET", self._template_path(project)).get("items", []))

    def create_template(
        self, project: str, name: str, job: Mapping[str, Any], description: str = ""
    ) -> JSON:
        body = {"name": name, "description": description, "job": dict(job)}
        return self._json("POST", self._template_path(project), json=body)

    def get_template(self, project: str, name: str) -> JSON:
        return self._json("GET", self._template_path(project, name))

    def delete_template(self, project: str, name: str) -> None:
        self._send("DELETE", self._template_path(project, name))

    def use_template(
        self, project: str, name: str, job_name: str | None = None, **changes: Any
    ) -> JSON:
        """Submit the template's job; ``changes``: priority, time_limit_s, held."""
        path = self._template_path(project, name, "/jobs")
        return self._json("POST", path, json=self._query(name=job_name, **changes))

    # -- allocations, prices, audit -----------------------------------------------------------

    def _request_path(self, request_id: str, action: str = "") -> str:
        return f"/allocation-requests/{self._segment(request_id)}" + (
            f"/{action}" if action else ""
        )

    def list_requests(
        self, project: str | None = None, program: str | None = None, status: str | None = None
    ) -> list[JSON]:
        params = self._query(project=project, program=program, status=status)
        return list(self._json("GET", "/allocation-requests", params=params).get("items", []))

    def get_request(self, request_id: str) -> JSON:
        return self._json("GET", self._request_path(request_id))

    def create_request(self, **fields: Any) -> JSON:
        """``project``, ``justification``, ``items`` ({GPU type: GPU-hours}), ``kind``
        (new, topup, extension, termination), ``allocation``, ``starts_at``, ``ends_at``."""
        return self._json("POST", "/allocation-requests", json=self._query(**fields))

    def assign_reviewers(self, request_id: str, reviewers: Iterable[str]) -> JSON:
        return self._json(
            "POST", self._request_path(request_id, "assign"), json={"reviewers": list(reviewers)}
        )

    def review_request(
        self,
        request_id: str,
        score: int | None,
        comment: str = "",
        scores: dict[str, int] | None = None,
    ) -> JSON:
        """One ``score`` (1..5), or ``scores`` per criterion of the program's rubric."""
        body: dict[str, Any] = {"comment": comment}
        if score is not None:
            body["score"] = score
        if scores:
            body["scores"] = scores
        return self._json("POST", self._request_path(request_id, "review"), json=body)

    def attach_file(self, request_id: str, name: str, content: bytes) -> JSON:
        """Attach ``content`` as the file ``name`` to a request."""
        path = self._request_path(request_id, "attachments")
        return self._json("POST", path, files={"file": (name, content)})

    def attachment(self, request_id: str, attachment_id: str) -> bytes:
        path = self._request_path(request_id, f"attachments/{quote(attachment_id, safe='')}")
        return self._send("GET", path).content

    def detach_file(self, request_id: str, attachment_id: str) -> None:
        path = self._request_path(request_id, f"attachments/{quote(attachment_id, safe='')}")
        self._send("DELETE", path)

    def approve_request(self, request_id: str, **fields: Any) -> JSON:
        """Optionally ``items`` (less than asked), ``starts_at``, ``ends_at``,
        ``on_exhaustion`` (stop or preemptible) and ``comment``."""
        return self._json(
            "POST", self._request_path(request_id, "approve"), json=self._query(**fields)
        )

    def reject_request(self, request_id: str, comment: str) -> JSON:
        return self._json(
            "POST", self._request_path(request_id, "reject"), json={"comment": comment}
        )

    def return_request(self, request_id: str, comment: str) -> JSON:
        return self._json(
            "POST", self._request_path(request_id, "return"), json={"comment": comment}
        )

    def resubmit_request(self, request_id: str, **fields: Any) -> JSON:
        return self._json(
            "POST", self._request_path(request_id, "resubmit"), json=self._query(**fields)
        )

    def withdraw_request(self, request_id: str, comment: str = "") -> JSON:
        return self._json(
            "POST", self._request_path(request_id, "withdraw"), json={"comment": comment}
        )

    def list_allocations(
        self, project: str | None = None, status: str | None = None, warning: str | None = None
    ) -> list[JSON]:
        params = self._query(project=project, status=status, warning=warning)
        return list(self._json("GET", "/allocations", params=params).get("items", []))

    def get_allocation(self, allocation_id: str) -> JSON:
        return self._json("GET", f"/allocations/{self._segment(allocation_id)}")

    def list_prices(self, gpu_type: str | None = None) -> list[JSON]:
        params = self._query(gpu_type=gpu_type)
        return list(self._json("GET", "/prices", params=params).get("items", []))

    def set_price(
        self, gpu_type: str, won_per_gpu_hour: int, effective_from: str | None = None
    ) -> JSON:
        body = self._query(
            gpu_type=gpu_type, won_per_gpu_hour=won_per_gpu_hour, effective_from=effective_from
        )
        return self._json("POST", "/prices", json=body)

    def remove_price(self, price_id: str) -> JSON:
        """Remove a price not yet in force (the server answers 409 for one in force)."""
        return self._json("DELETE", f"/prices/{self._segment(price_id)}")

    # -- running programs: rules, tranches and reports, surveys, obligations --------------------

    def list_program_rules(self, program: str) -> list[JSON]:
        path = f"/programs/{self._segment(program)}/rules"
        return list(self._json("GET", path).get("items", []))

    def set_program_rules(self, program: str, **rules: Any) -> JSON:
        """``self_paid_bp``, ``modifiers``, ``caps``, ``tranches_bp``, ``accrual_period``,
        ``rubric``, ``preferences``, ``effective_from``."""
        path = f"/programs/{self._segment(program)}/rules"
        return self._json("POST", path, json=self._query(**rules))

    def remove_program_rules(self, program: str, rules_id: str) -> JSON:
        """Withdraw rules not yet in force (the server answers 409 for rules in force)."""
        path = f"/programs/{self._segment(program)}/rules/{self._segment(rules_id)}"
        return self._json("DELETE", path)

    def obligations(self, program: str) -> JSON:
        return self._json("GET", f"/programs/{self._segment(program)}/obligations")

    def send_reminders(self, program: str) -> list[JSON]:
        path = f"/programs/{self._segment(program)}/reminders"
        return list(self._json("POST", path).get("items", []))

    def list_survey_forms(self, program: str) -> list[JSON]:
        path = f"/programs/{self._segment(program)}/surveys"
        return list(self._json("GET", path).get("items", []))

    def create_survey_form(self, program: str, form: Mapping[str, Any]) -> JSON:
        path = f"/programs/{self._segment(program)}/surveys"
        return self._json("POST", path, json=dict(form))

    def answer_survey(
        self, form_id: str, project: str, round: str, answers: Mapping[str, Any]
    ) -> JSON:
        body = {"project": project, "round": round, "answers": dict(answers)}
        return self._json("POST", f"/surveys/{self._segment(form_id)}/answers", json=body)

    def survey_answers(self, form_id: str, project: str) -> list[JSON]:
        path = f"/surveys/{self._segment(form_id)}/answers/{self._segment(project)}"
        return list(self._json("GET", path).get("items", []))

    def grant_tranches(self, allocation_id: str) -> JSON:
        return self._json("GET", f"/allocations/{self._segment(allocation_id)}/tranches")

    def grant_notices(self, allocation_id: str) -> list[JSON]:
        path = f"/allocations/{self._segment(allocation_id)}/notices"
        return list(self._json("GET", path).get("items", []))

    def submit_progress_report(self, allocation_id: str, summary: str) -> JSON:
        path = f"/allocations/{self._segment(allocation_id)}/reports"
        return self._json("POST", path, json={"summary": summary})

    def decide_progress_report(self, report_id: str, action: str, comment: str = "") -> JSON:
        """``action``: accept or return."""
        path = f"/progress-reports/{self._segment(report_id)}/{action}"
        return self._json("POST", path, json={"comment": comment})

    def settlement(
        self, program: str, since: str | None = None, until: str | None = None, fmt: str = "json"
    ) -> JSON | bytes:
        """A program's settlement per organization: JSON, or the CSV/XLSX file's bytes."""
        params = self._query(since=since, until=until, format=fmt)
        path = f"/programs/{self._segment(program)}/settlement"
        if fmt == "json":
            return self._json("GET", path, params=params)
        return self._send("GET", path, params=params).content

    def statement(self, organization: str, month: str, fmt: str = "json") -> JSON | bytes:
        """An organization's statement of a month (``YYYY-MM``, the center's zone)."""
        path = f"/organizations/{self._segment(organization)}/statements/{self._segment(month)}"
        if fmt == "json":
            return self._json("GET", path, params={"format": fmt})
        return self._send("GET", path, params={"format": fmt}).content

    def grant_use(self, program: str, all_grants: bool = False) -> JSON:
        """The program's grants with their use; flagged ones only unless ``all_grants``."""
        path = f"/programs/{self._segment(program)}/use"
        return self._json("GET", path, params={"all": "true"} if all_grants else None)

    def act_on_grant(self, allocation_id: str, action: str, **body: Any) -> JSON:
        """``action``: warn, suspend, resume (``reason``) or reclaim (``reason``,
        ``gpu_hours``, ``withdraw_pending``)."""
        path = f"/allocations/{self._segment(allocation_id)}/{action}"
        return self._json("POST", path, json=self._query(**body))

    def evidence(self, program: str, since: str | None = None, until: str | None = None) -> JSON:
        """What the evidence report of a program says, and the history to replay."""
        path = f"/programs/{self._segment(program)}/evidence"
        return self._json("GET", path, params=self._query(since=since, until=until), timeout=300)

    def list_audit(self, **filters: Any) -> JSON:
        """One page of the audit log (operators): ``items`` and ``next_cursor``."""
        return self._json("GET", "/audit", params=self._query(**filters))

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection."""
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _keyed(body: JSON) -> JSON:
    """``body`` with an idempotency key: the caller's, or a new random one."""
    if not body.get("idempotency_key"):
        body["idempotency_key"] = f"axc-{uuid.uuid4().hex}"
    return body


def _retry_after(response: Response) -> float:
    """The server's ``Retry-After`` in seconds (0 if absent or a date), capped."""
    try:
        return min(float(response.headers.get("retry-after", "0")), _RETRY_MAX_PAUSE_S)
    except ValueError:
        return 0.0


def _body(fields: Mapping[str, Any]) -> JSON:
    """A job body without ``None`` values, so the server applies its own defaults."""
    body = {k: v for k, v in fields.items() if v is not None}
    if "command" in body:
        body["command"] = list(body["command"])
    if "gpu_types" in body:
        body["gpu_types"] = list(body["gpu_types"])
    return body


def _text(value: Any) -> str:
    """A query value as text: ``True`` is ``true``, ``None`` empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _query(params: Mapping[str, Any] | list[tuple[str, Any]] | None) -> str:
    """``params`` URL-encoded; a list or tuple value repeats its name."""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items() if isinstance(params, Mapping) else params or ():
        values = value if isinstance(value, list | tuple) else [value]
        pairs.extend((name, _text(v)) for v in values)
    return urlencode(pairs)


def _multipart(files: Mapping[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """``files`` (field: (file name, content)) as a multipart/form-data body and its
    content type."""
    boundary = uuid.uuid4().hex
    parts = []
    for field, (name, content) in files.items():
        quoted = name.replace("\\", "\\\\").replace('"', "%22").replace("\r", "").replace("\n", "")
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{quoted}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts.append(head.encode() + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"
