"""Tests of the HTTP client and the ``axc`` CLI against an in-memory fake of the API.

``FakeServer`` implements ``/api/v1`` as the API spec describes it, behind an
``httpx.MockTransport``. It is a fixture for adapter tests only: it checks what the client
sends and how the CLI renders answers; the real server is covered by the end-to-end tests.

``HttpxTransport`` is the client's ``Transport`` over an httpx transport, so that a test
answers the client in process: a ``MockTransport``'s handler, or the application itself
(the ``_transport`` of FastAPI's ``TestClient``). Everything above the socket (queries,
bodies, retries, idempotency keys, error messages) runs as it does for users; the
standard library's socket layer under it is tested against a real server in
``test_client.py``.
"""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from typing import Any

import httpx

from axcenter.client.transport import Request, Response, TransportError

__all__ = ["TOKEN", "URL", "FakeServer", "HttpxTransport"]

URL = "http://axc.test:8080"
TOKEN = "tok-alice"

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}

_JOB_PATH = re.compile(
    r"^/api/v1/jobs/(?P<id>[^/]+)(?P<rest>/(?:cancel|checkpoint|log|wait|hold|release|requeue))?$"
)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class HttpxTransport:
    """The client's ``Transport`` over an httpx transport: httpx's failures become
    ``TransportError`` as the standard library's do (a refused connection: unsent)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def send(self, request: Request) -> Response:
        url = f"http://{request.headers['Host']}{request.target}"
        outgoing = httpx.Request(
            request.method, url, headers=dict(request.headers), content=request.body
        )
        try:
            answer = self.inner.handle_request(outgoing)
            content = answer.read()
        except httpx.TimeoutException as exc:
            unsent = isinstance(exc, httpx.ConnectTimeout)
            raise TransportError(str(exc), unsent=unsent, timeout=True) from exc
        except httpx.TransportError as exc:
            raise TransportError(str(exc), unsent=isinstance(exc, httpx.ConnectError)) from exc
        headers = dict(answer.headers)
        return Response(answer.status_code, answer.reason_phrase, headers, io.BytesIO(content))

    def close(self) -> None:
        self.inner.close()


class FakeServer:
    """A tiny in-memory axcenter: users, projects, jobs, logs, one cluster."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, bytes] = {}
        #: Chunks appended to a job's log, one per log read; ``b""`` is a read with nothing
        #: new. When the script runs out the job succeeds.
        self.log_script: dict[str, list[bytes]] = {}
        #: Number of ``/wait`` polls after which a job succeeds (exit code 0).
        self.finish_after_polls: dict[str, int] = {}
        self.requests: list[httpx.Request] = []
        self.bodies: list[Any] = []
        self.tokens = {TOKEN: "alice", "tok-bob": "bob"}
        self.projects = [
            {"id": "prj_1", "name": "vision", "organization": "uni", "sector": "academia"},
            {"id": "prj_2", "name": "nlp", "organization": "uni", "sector": "academia"},
        ]
        #: the answer of ``/accounting/jobs``
        self.accounting: dict[str, Any] = {"items": [], "truncated": False}
        self._idem: dict[str, str] = {}
        self._seq = 0

    @property
    def transport(self) -> HttpxTransport:
        return HttpxTransport(httpx.MockTransport(self.handle))

    # -- helpers for tests ---------------------------------------------------------------

    def add_job(self, **fields: Any) -> dict[str, Any]:
        self._seq += 1
        job: dict[str, Any] = {
            "id": f"job_{self._seq:018d}",
            "name": "",
            "project": "vision",
            "project_id": "prj_1",
            "user": "alice",
            "state": "pending",
            "reason": None,
            "command": ["true"],
            "workdir": "/tmp",
            "env": {},
            "gpus_per_node": 1,
            "nodes": 1,
            "cpus_per_node": 1,
            "memory_mb_per_node": 1024,
            "time_limit_s": 3600,
            "priority": 0,
            "gpu_types": [],
            "gpu_type": None,
            "placement": [],
            "submitted_at": _now(),
            "started_at": None,
            "ended_at": None,
            "exit_code": None,
            "attempts": 0,
            "idempotency_key": None,
            "events": [
                {"at": _now(), "from_state": None, "to_state": "pending", "reason": "submitted"}
            ],
        }
        job.update(fields)
        self.jobs[job["id"]] = job
        return job

    def set_state(self, job_id: str, state: str, **fields: Any) -> None:
        job = self.jobs[job_id]
        job["events"].append(
            {"at": _now(), "from_state": job["state"], "to_state": state, "reason": None}
        )
        job["state"] = state
        if state in TERMINAL:
            job["ended_at"] = _now()
        job.update(fields)

    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests]

    # -- the API -------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = json.loads(request.content) if request.content else None
        self.bodies.append(body)
        user = self.tokens.get(request.headers.get("Authorization", "").removeprefix("Bearer "))
        if user is None:
            return _error(401, "invalid or missing token")
        path, method = request.url.path, request.method
        query = request.url.params

        if path == "/api/v1/whoami" and method == "GET":
            return httpx.Response(
                200,
                json={
                    "id": f"usr_{user}",
                    "name": user,
                    "organization_id": "org_1",
                    "organization": "uni",
                    "role": "member",
                },
            )
        if path == "/api/v1/projects" and method == "GET":
            return httpx.Response(200, json={"items": self.projects})
        if path == "/api/v1/jobs" and method == "POST":
            return self._submit(user, body)
        if path == "/api/v1/jobs:batch" and method == "POST":
            items = []
            for spec in body["jobs"]:
                response = self._submit(user, spec)
                if response.is_error:
                    return response
                items.append(response.json())
            return httpx.Response(201, json={"items": items})
        if path == "/api/v1/arrays" and method == "POST":
            indices = body.pop("indices")
            response = self._submit(user, body)
            if response.is_error:
                return response
            task = response.json()
            array = {"array_id": "arr_1", "tasks": 1, "first_index": 0, "last_index": 0}
            task["array_id"], task["indices"] = "arr_1", indices
            return httpx.Response(201, json={**array, "states": {"pending": 1}})
        if path == "/api/v1/jobs" and method == "GET":
            return self._list(user, query)
        if path == "/api/v1/cluster" and method == "GET":
            return httpx.Response(200, json=self._cluster())
        if path == "/api/v1/queue" and method == "GET":
            pending = [j for j in self.jobs.values() if j["state"] == "pending"]
            items = [
                {**j, "position": n, "estimated_start": None, "reason": "resources"}
                for n, j in enumerate(pending, start=1)
            ]
            start, limit = int(query.get("offset", "0")), int(query.get("limit", "50"))
            return httpx.Response(
                200, json={"items": items[start : start + limit], "total": len(items)}
            )
        if path == "/api/v1/accounting/jobs" and method == "GET":
            return httpx.Response(200, json=self.accounting)
        if path.startswith("/api/v1/reports/burndown/") and query.get("format") == "csv":
            return httpx.Response(200, text="day,charged_won\n2026-12-01,10\n2026-12-02,5\n")
        if path == "/api/v1/reports/usage" and method == "GET":
            report = {"group_by": query.get_list("group_by") or ["program"], "rows": []}
            return httpx.Response(
                200, json={**report, "since": query.get("since"), "until": query.get("until")}
            )
        if path.startswith("/api/v1/arrays/") and method == "GET":
            array_id = path.rsplit("/", 1)[1]
            tasks = sorted(
                (j for j in self.jobs.values() if j.get("array_id") == array_id),
                key=lambda j: j["array_index"],
            )
            if not tasks:
                return _error(404, f"no array {array_id!r}")
            states: dict[str, int] = {}
            for t in tasks:
                states[t["state"]] = states.get(t["state"], 0) + 1
            return httpx.Response(
                200,
                json={
                    "array_id": array_id,
                    "tasks": len(tasks),
                    "first_index": tasks[0]["array_index"],
                    "last_index": tasks[-1]["array_index"],
                    "states": states,
                    "job_ids": [t["id"] for t in tasks],
                },
            )

        match = _JOB_PATH.match(path)
        if match:
            job = self.jobs.get(match["id"])
            if job is None:
                return _error(404, f"no job {match['id']}")
            rest = match["rest"]
            if rest is None and method == "GET":
                return httpx.Response(200, json=job)
            if rest in ("/hold", "/release") and method == "POST":
                if job["state"] != "pending":
                    return _error(409, f"job {job['id']} is no longer pending")
                job["held"] = rest == "/hold"
                job["reason"] = "held" if job["held"] else None
                return httpx.Response(200, json=job)
            if rest == "/requeue" and method == "POST":
                if job["state"] == "pending":
                    return _error(409, f"job {job['id']} is pending already")
                held = query.get("hold") == "true"
                self.set_state(job["id"], "pending", reason="held" if held else None)
                job["held"] = held
                return httpx.Response(200, json=job)
            if rest is None and method == "PATCH":
                job.update(body)
                return httpx.Response(200, json=job)
            if rest == "/cancel" and method == "POST":
                if job["state"] in TERMINAL:
                    return _error(409, f"job {job['id']} is already {job['state']}")
                self.set_state(job["id"], "cancelled", reason="cancelled by user")
                return httpx.Response(200, json=job)
            if rest == "/checkpoint" and method == "POST":
                if job["state"] != "running":
                    return _error(
                        409, f"job {job['id']} is {job['state']}: only a running job checkpoints"
                    )
                job["last_checkpoint_at"] = _now()
                return httpx.Response(200, json=job)
            if rest == "/log" and method == "GET":
                return self._log(job, int(query.get("offset", "0")))
            if rest == "/wait" and method == "GET":
                polls = self.finish_after_polls.get(job["id"])
                if polls is not None:
                    self.finish_after_polls[job["id"]] = polls - 1
                    if polls <= 1:
                        self.set_state(job["id"], "succeeded", exit_code=0)
                return httpx.Response(200, json=job)
        return _error(404, f"no route {method} {path}")

    def _submit(self, user: str, spec: dict[str, Any]) -> httpx.Response:
        key = spec.get("idempotency_key")
        if key and key in self._idem:
            return httpx.Response(200, json=self.jobs[self._idem[key]])
        if spec.get("gpus_per_node", 1) < 0:
            return _error(422, "gpus_per_node: Input should be greater than or equal to 0")
        if not spec.get("command"):
            return _error(422, "command: List should have at least 1 item")
        project = spec.get("project", "vision")
        known = {p["name"]: p for p in self.projects} | {p["id"]: p for p in self.projects}
        if project not in known:
            return _error(422, f"project: unknown project {project!r}")
        fields = {k: v for k, v in spec.items() if k not in {"project"} and v is not None}
        job = self.add_job(
            user=user, project=known[project]["name"], project_id=known[project]["id"], **fields
        )
        if key:
            self._idem[key] = job["id"]
        return httpx.Response(201, json=job)

    def _list(self, user: str, query: httpx.QueryParams) -> httpx.Response:
        states = query.get_list("state")
        jobs = sorted(self.jobs.values(), key=lambda j: j["id"], reverse=True)
        jobs = [
            j
            for j in jobs
            if (not states or j["state"] in states)
            and (not query.get("project") or j["project"] == query["project"])
            and (query.get("mine") != "true" or j["user"] == user)
            and (not query.get_list("user") or j["user"] in query.get_list("user"))
            and (not query.get_list("name") or j["name"] in query.get_list("name"))
            and (not query.get("array") or j.get("array_id") == query["array"])
        ]
        start = int(query.get("cursor", "0"))
        limit = int(query.get("limit", "50"))
        page = jobs[start : start + limit]
        more = start + limit < len(jobs)
        return httpx.Response(
            200, json={"items": page, "next_cursor": str(start + limit) if more else None}
        )

    def _log(self, job: dict[str, Any], offset: int) -> httpx.Response:
        script = self.log_script.get(job["id"])
        if script:
            self.logs[job["id"]] = self.logs.get(job["id"], b"") + script.pop(0)
            if not script:
                self.set_state(job["id"], "succeeded", exit_code=0)
        data = self.logs.get(job["id"], b"")[offset:]
        return httpx.Response(
            200,
            content=data,
            headers={
                "Content-Type": "text/plain; charset=utf-8",
                "X-Log-Offset": str(offset + len(data)),
                "X-Job-State": job["state"],
            },
        )

    def _cluster(self) -> dict[str, Any]:
        return {
            "nodes": [
                {
                    "id": "nod_1",
                    "name": "gpu-a",
                    "gpu_type": "H100",
                    "gpu_count": 2,
                    "logical": True,
                    "state": "up",
                    "cpus": 32,
                    "memory_mb": 262144,
                    "devices": [
                        {
                            "index": 0,
                            "job_id": "job_000000000000000042",
                            "user": "alice",
                            "project": "vision",
                        },
                        {"index": 1, "job_id": None, "user": None, "project": None},
                    ],
                },
                {
                    "id": "nod_2",
                    "name": "gpu-b",
                    "gpu_type": "A100",
                    "gpu_count": 1,
                    "logical": False,
                    "state": "drain",
                    "cpus": 16,
                    "memory_mb": 131072,
                    "devices": [
                        {
                            "index": 0,
                            "busy": True,
                            "job_id": None,
                            "user": "(other tenant)",
                            "project": "(other tenant)",
                        }
                    ],
                },
            ],
            "summary": {"gpus": 3, "gpus_used": 2, "pending_jobs": 4, "running_jobs": 1},
        }


def _error(status: int, detail: str) -> httpx.Response:
    return httpx.Response(status, json={"detail": detail})
