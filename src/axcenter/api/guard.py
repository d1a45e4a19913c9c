"""What the API does before any route runs: authenticate, then bound the body.

A hostile client must not make the service read, buffer or parse what it sends before
the service knows who sends it, nor send without end:

1. **Authentication first.** Every ``/api/`` request is authenticated from its
   ``Authorization`` header alone, before a byte of its body is read; no token, or a bad
   one, is a 401 at once. The principal is left in the request's state, so the routes'
   own authentication (``deps``) does not look it up again.
2. **Failed authentications are rate limited**, per client address and per token prefix
   (the first characters of what was sent as a token): past
   ``Settings.auth_failures_per_minute`` failures in a minute, every attempt from that
   address or with that prefix is a 429 until the minute has passed, good tokens
   included (else the limit would not slow a guesser down). The dashboard's sign-in form
   counts its failures here too.
3. **Bodies are limited by the bytes received**, not by what ``Content-Length`` claims:
   a chunked body is counted as it arrives, and the request ends with 413 once it
   passes ``MAX_BODY_BYTES`` (before the route could buffer more). A body that stops
   arriving for ``Settings.http_body_timeout_s`` ends the request with 408.

Idle connections and oversized headers are uvicorn's to refuse (``axc up``:
``timeout_keep_alive``, ``h11_max_incomplete_event_size``, ``limit_concurrency``);
headers sent slowly are not timed out by uvicorn: docs/security.md says what the
reverse proxy in front must add.
"""

from __future__ import annotations

import asyncio

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from axcenter.api.deps import authenticate_token
from axcenter.service.center import Center
from axcenter.service.throttle import token_prefix
from axcenter.store.db import RETRY_AFTER_S, unavailable

__all__ = ["MAX_BODY_BYTES", "Guard"]

#: the largest request body the API takes (a batch of 10,000 jobs fits)
MAX_BODY_BYTES = 16 * 1024 * 1024
_TOO_LARGE = f"request body above {MAX_BODY_BYTES} bytes"


def _refuse(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class Guard:
    """The ASGI middleware of steps 1-3 (see the module's docstring). It finds the
    center in the application's state, as the routes do."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        center: Center = scope["app"].state.center
        headers = dict(scope.get("headers") or ())
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await _refuse(413, _TOO_LARGE)(scope, receive, send)
            return
        if scope["path"].startswith("/api/"):
            try:
                refusal = await _authenticate(center, scope, headers.get(b"authorization", b""))
            except Exception as exc:  # out here, the application's handlers do not see it
                reason = unavailable(exc)
                if reason is None:
                    raise
                refusal = _refuse(
                    503, f"{reason}; try again shortly", {"Retry-After": str(RETRY_AFTER_S)}
                )
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        # a read's answer names the center's time zone: clients show times in it
        zone = _zone_header(center) if scope["method"] == "GET" else None
        await self._bounded(scope, receive, send, center.settings.http_body_timeout_s, zone)

    async def _bounded(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        body_timeout_s: float,
        zone: tuple[bytes, bytes] | None = None,
    ) -> None:
        """Pass the request on with its body counted as it arrives. A refused body is
        answered here at once, and the route is told the client went away (whatever it
        answers then is dropped): routes turn errors while reading into 400s."""
        received = 0
        started = done = refused = False

        async def refuse(status: int, detail: str) -> Message:
            nonlocal refused
            if not started:
                refused = True
                await _refuse(status, detail)(scope, receive, send)
            return {"type": "http.disconnect"}

        async def counted() -> Message:
            nonlocal received, done
            if done or refused:  # the body is in: what follows waits for a disconnect
                return await receive()
            try:
                async with asyncio.timeout(body_timeout_s):  # no task, unlike wait_for
                    message = await receive()
            except TimeoutError:
                return await refuse(408, "the request body stopped arriving")
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    return await refuse(413, _TOO_LARGE)
                done = not message.get("more_body", False)
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
                if zone is not None:
                    message = {**message, "headers": [*message.get("headers", ()), zone]}
            await send(message)

        await self.app(scope, counted, sending)


#: the response header that names the center's time zone (``Settings.time_zone``)
ZONE_HEADER = "x-axc-time-zone"


def _zone_header(center: Center) -> tuple[bytes, bytes]:
    return ZONE_HEADER.encode(), center.settings.time_zone.encode()


async def _authenticate(center: Center, scope: Scope, header: bytes) -> JSONResponse | None:
    """None when the request may go on (its principal put in its state)."""
    scheme, _, token = header.decode("latin-1").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return _refuse(
            401,
            "missing bearer token (Authorization: Bearer axc_…)",
            {"WWW-Authenticate": "Bearer"},
        )
    client = scope.get("client")
    address = f"addr:{client[0] if client else '?'}"
    prefix = f"token:{token_prefix(token)}"
    failures = center.auth_failures
    wait = failures.retry_after(address, prefix)
    if wait:
        return _refuse(
            429,
            "too many failed authentications from this address or with this token: "
            f"retry in {wait} s (auth_failures_per_minute: {failures.per_minute})",
            {"Retry-After": str(wait)},
        )
    who = await authenticate_token(center, token)
    if who is None:
        failures.failed(address, prefix)
        return _refuse(401, "invalid or revoked token", {"WWW-Authenticate": "Bearer"})
    scope.setdefault("state", {})["principal"] = who
    return None
