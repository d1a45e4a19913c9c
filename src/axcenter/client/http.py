"""A small synchronous client for the axcenter JSON API (``/api/v1``).

Methods return the server's JSON as plain dicts so that the CLI, scripts and notebooks can
use them without another layer of models. Every failure, HTTP or network, becomes one
exception type, ``ApiError``, carrying the server's human-readable ``detail``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from axcenter import __version__

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


class ApiError(Exception):
    """A request failed. ``status_code`` is the HTTP status, or 0 when there was no answer."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"{status_code}: {detail}" if status_code else detail)
        self.status_code = status_code
        self.detail = detail


def _detail(response: httpx.Response) -> str:
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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=f"{self.url}/api/v1",
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": f"axcenter-client/{__version__}",
            },
            timeout=timeout,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"

    # -- plumbing ---------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        try:
            response = self._http.request(
                method,
                path,
                params=params,
                json=json,
                timeout=self.timeout if timeout is None else timeout,
            )
        except httpx.TimeoutException as exc:
            raise ApiError(0, f"axcenter at {self.url} did not answer in time: {exc}") from exc
        except httpx.TransportError as exc:
            raise ApiError(0, f"cannot reach axcenter at {self.url}: {exc}") from exc
        if response.is_error:
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

        With an ``idempotency_key`` the server returns the existing job for a repeated key,
        so a retried submission never creates a duplicate.
        """
        return self._json("POST", "/jobs", json=_body(fields))

    def submit_array(self, indices: str, **fields: Any) -> JSON:
        """Submit a job array (one task per index in ``FIRST-LAST[:STEP]``)."""
        return self._json("POST", "/arrays", json={**_body(fields), "indices": indices})

    def get_array(self, array_id: str, ids: bool = False) -> JSON:
        """An array's tasks per state (and their job ids with ``ids``)."""
        return self._json("GET", f"/arrays/{array_id}", params={"ids": ids})

    def cancel_array(self, array_id: str) -> JSON:
        """Cancel every task of an array that has not ended."""
        return self._json("POST", f"/arrays/{array_id}/cancel", timeout=self.timeout + 60)

    def submit_jobs(self, jobs: Iterable[Mapping[str, Any]]) -> list[JSON]:
        """Submit several jobs in one request (all or nothing, as the server defines it)."""
        body = {"jobs": [_body(job) for job in jobs]}
        return list(self._json("POST", "/jobs:batch", json=body).get("items", []))

    def list_jobs(
        self,
        state: str | Iterable[str] | None = None,
        project: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        mine: bool = False,
    ) -> JSON:
        """One page of jobs, newest first: ``{"items": [...], "next_cursor": str | None}``."""
        params: list[tuple[str, Any]] = []
        states = [state] if isinstance(state, str) else list(state or ())
        params.extend(("state", s) for s in states)
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
    ) -> Iterator[JSON]:
        """Every matching job, newest first, fetching pages of ``limit`` as needed."""
        states = [state] if isinstance(state, str) else list(state or ())
        cursor: str | None = None
        while True:
            page = self.list_jobs(states, project, limit, cursor, mine)
            yield from page.get("items", [])
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def get_job(self, job_id: str) -> JSON:
        """One job, including its state-change ``events``."""
        return self._json("GET", self._job_path(job_id))

    def cancel_job(self, job_id: str) -> JSON:
        """Cancel a job; the server answers 409 if it has already finished.

        For a running job the server answers once its processes are gone, which can take
        its kill grace period, hence the longer timeout.
        """
        return self._json(
            "POST", self._job_path(job_id, "/cancel"), timeout=self.timeout + _CANCEL_EXTRA_S
        )

    def read_log(self, job_id: str, offset: int = 0) -> tuple[bytes, int, str]:
        """Log bytes from ``offset``: ``(data, next_offset, job_state)``."""
        response = self._send("GET", self._job_path(job_id, "/log"), params={"offset": offset})
        data = response.content
        try:
            next_offset = int(response.headers["X-Log-Offset"])
        except (KeyError, ValueError):
            next_offset = offset + len(data)
        return data, next_offset, response.headers.get("X-Job-State", "")

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

    # -- cluster ------------------------------------------------------------------------------

    def cluster(self) -> JSON:
        """Nodes, their devices and who holds them, plus a summary."""
        return self._json("GET", "/cluster")

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
        try:
            with self._http.stream("GET", "/export/history", params=params) as response:
                if response.is_error:
                    response.read()
                    raise ApiError(response.status_code, _detail(response))
                yield from response.iter_bytes(chunk_size)
        except httpx.TimeoutException as exc:
            raise ApiError(0, f"axcenter at {self.url} did not answer in time: {exc}") from exc
        except httpx.TransportError as exc:
            raise ApiError(0, f"cannot reach axcenter at {self.url}: {exc}") from exc

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _body(fields: Mapping[str, Any]) -> JSON:
    """A job body without ``None`` values, so the server applies its own defaults."""
    body = {k: v for k, v in fields.items() if v is not None}
    if "command" in body:
        body["command"] = list(body["command"])
    if "gpu_types" in body:
        body["gpu_types"] = list(body["gpu_types"])
    return body
