"""The HTTP transport under ``Client``: the standard library's ``http.client``.

``Client`` builds a ``Request`` and hands it to a ``Transport``; everything above the
socket (paths, queries, JSON, retries, idempotency keys, error messages) is the client's.
``HTTPTransport`` speaks HTTP/1.1 over one kept-alive connection: http:// or https://
(certificates checked against the system's store, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``),
through the proxy of ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` unless ``NO_PROXY``
names the host. The standard library's client starts in a third of the time of httpx
and its connection pool (issue 20: every ``axc`` command within 0.15 s).

A transport that fails raises ``TransportError``, telling whether the request surely never
left (so it may be sent again whatever it does) and whether the server was too slow.
Tests give ``Client`` another ``Transport`` (the same two methods) to answer in process.
"""

from __future__ import annotations

import http.client
import json
import os
import select
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from io import BufferedIOBase
from typing import Any, Protocol
from urllib.parse import urlsplit

__all__ = ["HTTPTransport", "Request", "Response", "Transport", "TransportError"]


class TransportError(Exception):
    """No answer came. ``unsent``: the request surely never reached the server;
    ``timeout``: the server did not answer (or the connection not open) in time."""

    def __init__(self, message: str, *, unsent: bool = False, timeout: bool = False) -> None:
        super().__init__(message)
        self.unsent = unsent
        self.timeout = timeout


@dataclass(frozen=True)
class Request:
    """One request: ``target`` is the path and query (``/api/v1/jobs?limit=50``);
    ``timeout`` applies to connecting and to each read (``None``: wait forever);
    ``stream``: the body is read as the caller iterates, not before ``send`` returns."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes | None = None
    timeout: float | None = None
    stream: bool = False


class Response:
    """An answer: status, headers (keys lower-case) and a body read from ``raw``."""

    def __init__(
        self,
        status_code: int,
        reason_phrase: str,
        headers: Mapping[str, str],
        raw: BufferedIOBase,
        on_close: Any = None,
    ) -> None:
        self.status_code = status_code
        self.reason_phrase = reason_phrase
        self.headers = {k.lower(): v for k, v in headers.items()}
        self._raw = raw
        self._on_close = on_close
        self._content: bytes | None = None

    @property
    def is_error(self) -> bool:
        return self.status_code >= 400

    def read(self) -> bytes:
        """The whole body (read once, then kept)."""
        if self._content is None:
            self._content = self._guard(self._raw.read)
        return self._content

    @property
    def content(self) -> bytes:
        return self.read()

    @property
    def text(self) -> str:
        return self.read().decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` when it is not."""
        return json.loads(self.read())

    def iter_bytes(self, chunk_size: int) -> Iterator[bytes]:
        while chunk := self._guard(lambda: self._raw.read(chunk_size)):
            yield chunk

    def iter_lines(self) -> Iterator[str]:
        while line := self._guard(self._raw.readline):
            yield line.decode("utf-8", errors="replace").rstrip("\r\n")

    def close(self) -> None:
        self._raw.close()
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _guard(read: Any) -> bytes:
        try:
            data: bytes = read()
        except TimeoutError as exc:
            raise TransportError(f"timed out reading the answer ({exc})", timeout=True) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError(f"the answer was cut off ({exc!r})") from exc
        return data


class Transport(Protocol):
    """What ``Client`` needs of HTTP: send one request, close what is open."""

    def send(self, request: Request) -> Response: ...

    def close(self) -> None: ...


class HTTPTransport:
    """HTTP/1.1 to the server of ``url`` over one connection, kept alive between
    requests and opened again when the server closed it."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// address")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._proxy = _proxy(parts.scheme, self._host)
        self._conn: http.client.HTTPConnection | None = None

    def send(self, request: Request) -> Response:
        try:
            return self._send(request)
        except _Stale as stale:
            # the server closed the kept-alive connection as the request went out: a
            # request that changes nothing goes again at once on a new connection
            if request.method not in _SAFE_METHODS:
                raise TransportError(repr(stale.__cause__)) from stale.__cause__
            return self._send(request)

    def _send(self, request: Request) -> Response:
        conn = self._connection(request.timeout)
        reused = conn.sock is not None
        target = request.target
        if self._proxy is not None and not self._https:  # a plain proxy takes whole URLs
            target = f"http://{self._host}:{self._port}{target}"
        try:
            if conn.sock is None:
                conn.connect()
        except TimeoutError as exc:
            self.close()
            raise TransportError(
                f"connecting timed out ({exc})", unsent=True, timeout=True
            ) from exc
        except OSError as exc:
            self.close()
            raise TransportError(str(exc), unsent=True) from exc
        try:
            conn.request(request.method, target, body=request.body, headers=dict(request.headers))
            raw = conn.getresponse()
        except TimeoutError as exc:
            self.close()
            raise TransportError(f"timed out ({exc})", timeout=True) from exc
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            self.close()
            if reused:
                raise _Stale from exc
            raise TransportError(repr(exc)) from exc
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise TransportError(repr(exc)) from exc
        # a streamed body may be left half read: its connection is not used again
        response = Response(
            raw.status,
            raw.reason,
            dict(raw.getheaders()),
            raw,
            on_close=self.close if request.stream else None,
        )
        if not request.stream:
            try:
                response.read()
            except TransportError:
                self.close()
                raise
            if raw.will_close:
                self.close()
        return response

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        conn = self._conn
        if conn is not None and conn.sock is not None and _readable(conn.sock):
            self.close()  # the server closed a kept-alive connection (or sent unasked)
            conn = None
        if conn is None:
            host, port = self._proxy or (self._host, self._port)
            if self._https:
                import ssl  # noqa: PLC0415  (only https loads the certificates)

                context = ssl.create_default_context()
                conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
                if self._proxy is not None:
                    conn.set_tunnel(self._host, self._port)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            self._conn = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


#: Methods that change nothing: sent again when a kept-alive connection proved closed.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class _Stale(Exception):
    """A kept-alive connection was closed by the server before its answer began."""


def _readable(sock: Any) -> bool:
    """Whether an idle connection has something to read: the server's end of it."""
    try:
        ready, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(ready)


def _proxy(scheme: str, host: str) -> tuple[str, int] | None:
    """The proxy that the environment names for ``scheme`` and ``host``, if any."""
    if not any(key.lower().endswith("_proxy") for key in os.environ):
        return None  # the common case, without loading urllib.request
    import urllib.request  # noqa: PLC0415

    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme) or proxies.get("all")
    if not url or urllib.request.proxy_bypass(host):
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if not parts.hostname:
        return None
    return parts.hostname, parts.port or 80
