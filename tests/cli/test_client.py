"""``axcenter.client``: requests sent, answers and errors surfaced, config resolution."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import stat
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from axcenter.client import ApiError, Client, Config, ConfigError, config_path, resolve
from axcenter.client import config as config_module
from axcenter.client.http import TERMINAL_STATES
from axcenter.model.jobs import TERMINAL

from . import TOKEN, URL, FakeServer, HttpxTransport


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


@pytest.fixture
def client(fake: FakeServer) -> Client:
    return Client(URL, TOKEN, transport=fake.transport)


def test_terminal_states_match_the_model() -> None:
    assert {s.value for s in TERMINAL} == TERMINAL_STATES


def test_whoami_sends_bearer_token(fake: FakeServer, client: Client) -> None:
    assert client.whoami()["name"] == "alice"
    request = fake.requests[-1]
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert str(request.url) == f"{URL}/api/v1/whoami"


def test_trailing_slash_in_url_is_ignored(fake: FakeServer) -> None:
    with Client(URL + "/", TOKEN, transport=fake.transport) as c:
        c.whoami()
    assert fake.requests[-1].url.path == "/api/v1/whoami"


def test_bad_token_is_api_error_401(fake: FakeServer) -> None:
    with (
        Client(URL, "wrong", transport=fake.transport) as c,
        pytest.raises(ApiError) as info,
    ):
        c.whoami()
    assert info.value.status_code == 401
    assert info.value.detail == "invalid or missing token"


def test_projects(client: Client) -> None:
    assert [p["name"] for p in client.projects()] == ["vision", "nlp"]


def test_submit_job_drops_none_and_returns_job(fake: FakeServer, client: Client) -> None:
    job = client.submit_job(
        command=("python", "train.py"),
        gpus_per_node=2,
        gpu_types=("H100",),
        time_limit_s=None,
        project="nlp",
    )
    assert job["id"] in fake.jobs
    assert job["project"] == "nlp"
    body = fake.bodies[-1]
    assert body.pop("idempotency_key").startswith("axc-")  # always sent (retries)
    assert body == {
        "command": ["python", "train.py"],
        "gpus_per_node": 2,
        "gpu_types": ["H100"],
        "project": "nlp",
    }


def test_idempotency_key_returns_the_same_job(client: Client) -> None:
    first = client.submit_job(command=["true"], idempotency_key="k1")
    again = client.submit_job(command=["true"], idempotency_key="k1")
    assert first["id"] == again["id"]


def test_submit_validation_error_surfaces_detail(client: Client) -> None:
    with pytest.raises(ApiError) as info:
        client.submit_job(command=["true"], gpus_per_node=-1)
    assert info.value.status_code == 422
    assert info.value.detail == "gpus_per_node: Input should be greater than or equal to 0"
    assert "gpus_per_node" in str(info.value)


def test_submit_jobs_uses_batch_endpoint(fake: FakeServer, client: Client) -> None:
    items = client.submit_jobs([{"command": ["a"]}, {"command": ["b"], "name": None}])
    assert [j["command"] for j in items] == [["a"], ["b"]]
    assert fake.paths()[-1] == "POST /api/v1/jobs:batch"
    jobs = fake.bodies[-1]["jobs"]
    assert len({job.pop("idempotency_key") for job in jobs}) == 2
    assert jobs == [{"command": ["a"]}, {"command": ["b"]}]


def test_list_jobs_query(fake: FakeServer, client: Client) -> None:
    fake.add_job(state="running")
    fake.add_job(state="succeeded")
    page = client.list_jobs(state=["pending", "running"], project="vision", limit=5, mine=True)
    assert [j["state"] for j in page["items"]] == ["running"]
    params = fake.requests[-1].url.params
    assert params.get_list("state") == ["pending", "running"]
    assert params["project"] == "vision"
    assert params["limit"] == "5"
    assert params["mine"] == "true"
    assert "cursor" not in params


def test_list_jobs_single_state_and_not_mine(fake: FakeServer, client: Client) -> None:
    client.list_jobs(state="pending")
    params = fake.requests[-1].url.params
    assert params.get_list("state") == ["pending"]
    assert "mine" not in params


def test_iter_jobs_follows_cursors(fake: FakeServer, client: Client) -> None:
    for _ in range(7):
        fake.add_job()
    ids = [j["id"] for j in client.iter_jobs(limit=3)]
    assert ids == sorted(fake.jobs, reverse=True)
    assert len([p for p in fake.paths() if p == "GET /api/v1/jobs"]) == 3


def test_get_and_cancel(fake: FakeServer, client: Client) -> None:
    job = fake.add_job()
    assert client.get_job(job["id"])["events"][0]["to_state"] == "pending"
    assert client.cancel_job(job["id"])["state"] == "cancelled"
    with pytest.raises(ApiError) as info:
        client.cancel_job(job["id"])
    assert info.value.status_code == 409
    assert "already cancelled" in info.value.detail


def test_unknown_job_is_404(client: Client) -> None:
    with pytest.raises(ApiError) as info:
        client.get_job("job_nope")
    assert (info.value.status_code, info.value.detail) == (404, "no job job_nope")


def test_job_id_is_quoted_in_path(fake: FakeServer, client: Client) -> None:
    with pytest.raises(ApiError):
        client.get_job("a/b")
    assert fake.requests[-1].url.raw_path == b"/api/v1/jobs/a%2Fb"


def test_read_log_by_offset(fake: FakeServer, client: Client) -> None:
    job = fake.add_job(state="running")
    fake.logs[job["id"]] = b"hello\nworld\n"
    assert client.read_log(job["id"]) == (b"hello\nworld\n", 12, "running")
    assert client.read_log(job["id"], 6) == (b"world\n", 12, "running")
    assert client.read_log(job["id"], 12) == (b"", 12, "running")


def test_wait_job_polls_until_terminal(fake: FakeServer, client: Client) -> None:
    job = fake.add_job(state="running")
    fake.finish_after_polls[job["id"]] = 1
    assert client.wait_job(job["id"], timeout=10)["state"] == "succeeded"
    assert fake.requests[-1].url.params["timeout"] == "10"


def test_wait_job_caps_each_poll(fake: FakeServer, client: Client) -> None:
    job = fake.add_job(state="succeeded")
    client.wait_job(job["id"])
    assert fake.requests[-1].url.params["timeout"] == "30"


def test_wait_job_timeout_returns_last_state(fake: FakeServer, client: Client) -> None:
    job = fake.add_job(state="running")
    started = time.monotonic()
    assert client.wait_job(job["id"], timeout=0.3)["state"] == "running"
    assert time.monotonic() - started < 2


def test_wait_job_zero_timeout_just_reads(fake: FakeServer, client: Client) -> None:
    job = fake.add_job(state="pending")
    assert client.wait_job(job["id"], timeout=0)["state"] == "pending"
    assert fake.paths()[-1] == f"GET /api/v1/jobs/{job['id']}"


def test_cluster(client: Client) -> None:
    assert client.cluster()["summary"]["gpus"] == 3


def _mock(handler: Callable[[httpx.Request], httpx.Response]) -> HttpxTransport:
    return HttpxTransport(httpx.MockTransport(handler))


def test_connection_failure_is_api_error_0() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with (
        Client(URL, TOKEN, transport=_mock(refuse), retry_s=0) as c,
        pytest.raises(ApiError) as info,
    ):
        c.whoami()
    assert info.value.status_code == 0
    assert info.value.detail.startswith(f"cannot reach axcenter at {URL}: ")


@pytest.mark.parametrize(
    ("response", "detail"),
    [
        (
            httpx.Response(422, json={"detail": [{"loc": ["body", "nodes"], "msg": "too big"}]}),
            "nodes: too big",
        ),
        (httpx.Response(500, text="boom"), "boom"),
        (httpx.Response(502), "HTTP 502 Bad Gateway"),
        (httpx.Response(400, json={"other": 1}), "HTTP 400 Bad Request"),
    ],
)
def test_error_shapes(response: httpx.Response, detail: str) -> None:
    transport = _mock(lambda _: response)
    with Client(URL, TOKEN, transport=transport, retry_s=0) as c, pytest.raises(ApiError) as info:
        c.whoami()
    assert (info.value.status_code, info.value.detail) == (response.status_code, detail)


def test_non_json_success_is_api_error() -> None:
    transport = _mock(lambda _: httpx.Response(200, text="<html>"))
    with Client(URL, TOKEN, transport=transport) as c, pytest.raises(ApiError, match="non-JSON"):
        c.whoami()


# -- config ---------------------------------------------------------------------------------


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("AXC_URL", raising=False)
    monkeypatch.delenv("AXC_TOKEN", raising=False)
    return tmp_path


def test_config_path_follows_xdg(xdg: Path) -> None:
    assert config_path() == xdg / "axcenter" / "config.json"
    assert config_path({"HOME": "/h"}).parts[-3:] == (".config", "axcenter", "config.json")


def test_save_is_private(xdg: Path) -> None:
    path = config_module.save(Config(url="http://x:1", token="secret"))
    assert path == xdg / "axcenter" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"url": "http://x:1", "token": "secret"}
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind


def test_resolve_order(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_module.save(Config(url="http://file:1", token="file-token"))
    assert resolve() == Config("http://file:1", "file-token")
    monkeypatch.setenv("AXC_URL", "http://env:2")
    assert resolve() == Config("http://env:2", "file-token")
    monkeypatch.setenv("AXC_TOKEN", "env-token")
    assert resolve() == Config("http://env:2", "env-token")
    assert resolve(url="http://arg:3/", token="arg-token") == Config("http://arg:3", "arg-token")


def test_resolve_missing_tells_what_to_do(xdg: Path) -> None:
    with pytest.raises(ConfigError, match=r"no server URL and no token.*axc login.*AXC_URL"):
        resolve()
    with pytest.raises(ConfigError, match=r"no token configured"):
        resolve(url="http://x")


def test_resolve_rejects_broken_file(xdg: Path) -> None:
    path = config_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        resolve()


def test_config_repr_hides_token() -> None:
    assert "secret" not in repr(Config("http://x", "secret"))


def test_normalize_url() -> None:
    assert config_module.normalize_url("localhost:8080/") == "http://localhost:8080"
    assert config_module.normalize_url("https://a.b") == "https://a.b"


# -- retries while the server is unavailable --------------------------------------------------


def _flaky(answers: list[httpx.Response | Exception]) -> tuple[HttpxTransport, list[Any]]:
    """A transport that gives ``answers`` in turn (an exception is raised), then 201."""
    bodies: list[Any] = []

    def handle(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content) if request.content else None)
        answer = answers.pop(0) if answers else httpx.Response(201, json={"id": "job_1"})
        if isinstance(answer, Exception):
            raise answer
        return answer

    return _mock(handle), bodies


def _unavailable() -> httpx.Response:
    return httpx.Response(
        503, json={"detail": "the database is unreachable"}, headers={"Retry-After": "0"}
    )


def test_submission_always_carries_a_key_and_is_retried_with_it() -> None:
    refused = httpx.ConnectError("refused")
    lost = httpx.ReadError("connection reset")  # sent, answer lost: only a keyed one is safe
    transport, bodies = _flaky([_unavailable(), refused, lost])
    said: list[str] = []
    with Client(URL, TOKEN, transport=transport, on_retry=said.append) as c:
        assert c.submit_job(project="vision", command=["true"])["id"] == "job_1"
    keys = {b["idempotency_key"] for b in bodies}
    assert len(bodies) == 4
    assert len(keys) == 1
    assert next(iter(keys)).startswith("axc-")
    assert len(said) == 3
    assert "the database is unreachable" in said[0]


def test_the_callers_key_is_kept() -> None:
    transport, bodies = _flaky([_unavailable()])
    with Client(URL, TOKEN, transport=transport) as c:
        c.submit_job(project="vision", command=["true"], idempotency_key="mine")
        c.submit_jobs([{"project": "vision", "command": ["true"]}] * 2)
    assert [b["idempotency_key"] for b in bodies[:2]] == ["mine", "mine"]
    batch = [job["idempotency_key"] for job in bodies[2]["jobs"]]
    assert len(set(batch)) == 2


def test_a_change_without_key_is_not_sent_twice_unless_it_never_left() -> None:
    transport, bodies = _flaky([_unavailable()])
    with Client(URL, TOKEN, transport=transport) as c, pytest.raises(ApiError) as info:
        c.cancel_job("job_1")
    assert info.value.status_code == 503
    assert len(bodies) == 1
    transport, bodies = _flaky([httpx.ConnectError("refused")])
    with Client(URL, TOKEN, transport=transport) as c:
        c.cancel_job("job_1")
    assert len(bodies) == 2


def test_retries_stop_after_retry_s() -> None:
    transport, bodies = _flaky([_unavailable() for _ in range(100)])
    began = time.monotonic()
    with Client(URL, TOKEN, transport=transport, retry_s=1.0) as c, pytest.raises(ApiError) as info:
        c.whoami()
    assert info.value.status_code == 503
    assert time.monotonic() - began < 1.5
    assert 2 <= len(bodies) <= 4


# -- the standard library's transport, over real sockets --------------------------------------


class _Server:
    """A real HTTP server in a thread: ``answer(handler)`` answers each request (the
    handler's ``seen`` list records method, target, headers and body)."""

    def __init__(
        self, answer: Callable[[BaseHTTPRequestHandler], None], tls: ssl.SSLContext | None = None
    ) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.connections = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                server.connections += 1
                super().setup()

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.seen.append((self.command, self.path, dict(self.headers), body))
                answer(self)

            do_GET = do_POST = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        if tls is not None:
            self.http.socket = tls.wrap_socket(self.http.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://localhost:{self.http.server_port}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def _reply(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: Any,
    headers: dict[str, str] | None = None,
) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[BaseHTTPRequestHandler], None]], _Server]]:
    servers: list[_Server] = []

    def start(
        answer: Callable[[BaseHTTPRequestHandler], None], tls: ssl.SSLContext | None = None
    ) -> _Server:
        servers.append(_Server(answer, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_real_socket_retry_after_key_headers_and_query(serve: Any) -> None:
    """A 503 with ``Retry-After`` is waited out and the submission sent again with the
    same key; the token, the query and the center's time zone travel as they should."""
    answers = [(503, {"detail": "restarting"}, {"Retry-After": "0.4"})]

    def answer(h: BaseHTTPRequestHandler) -> None:
        status, body, headers = answers.pop(0) if answers else (201, {"id": "job_1"}, {})
        _reply(h, status, body, {"X-AXC-Time-Zone": "Asia/Seoul", **headers})

    server = serve(answer)
    said: list[str] = []
    began = time.monotonic()
    with Client(server.url, TOKEN, on_retry=said.append) as c:
        assert c.submit_job(project="vision", command=["echo", "한글"])["id"] == "job_1"
        assert time.monotonic() - began >= 0.4  # the server asked for 0.4 s, more than 0.25
        assert c.time_zone == "Asia/Seoul"
        c.list_jobs(state=["pending", "running"], mine=True, users=["a b"])
    (m1, t1, h1, b1), (m2, t2, _, b2), (_, t3, _, _) = server.seen
    assert (m1, t1, m2, t2) == ("POST", "/api/v1/jobs", "POST", "/api/v1/jobs")
    assert b1 == b2
    assert json.loads(b1)["command"] == ["echo", "한글"]
    assert json.loads(b1)["idempotency_key"].startswith("axc-")
    assert h1["Authorization"] == f"Bearer {TOKEN}"
    assert h1["Content-Type"] == "application/json"
    assert t3 == "/api/v1/jobs?state=pending&state=running&user=a+b&limit=50&mine=true"
    assert len(said) == 1 and "restarting" in said[0] and "0.4 s" in said[0]
    assert server.connections == 1  # one kept-alive connection for all three


def test_an_address_that_is_not_http_is_refused_at_once() -> None:
    with pytest.raises(ApiError, match="'ftp://x' is not an http:// or https:// address"):
        Client("ftp://x", TOKEN)


def test_real_socket_reconnects_when_the_server_closed_an_idle_connection(serve: Any) -> None:
    def answer(h: BaseHTTPRequestHandler) -> None:
        _reply(h, 200, {"name": "alice"})
        h.close_connection = True  # closes without saying so in a header

    server = serve(answer)
    with Client(server.url, TOKEN, retry_s=0) as c:
        assert c.whoami() == {"name": "alice"}
        assert c.whoami() == {"name": "alice"}
    assert server.connections == 2


def test_real_socket_refused_slow_and_cut_off(serve: Any) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}", TOKEN, retry_s=0) as c:
        with pytest.raises(ApiError, match=r"cannot reach axcenter at .*refused") as info:
            c.whoami()
        assert info.value.status_code == 0
    release = threading.Event()
    slow = serve(lambda h: release.wait(5))
    with (
        Client(slow.url, TOKEN, timeout=0.3, retry_s=0) as c,
        pytest.raises(ApiError, match="did not answer in time"),
    ):
        c.whoami()
    release.set()

    def cut(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "100")
        h.end_headers()
        h.wfile.write(b'{"na')
        h.close_connection = True

    with (
        Client(serve(cut).url, TOKEN, retry_s=0) as c,
        pytest.raises(ApiError, match="cannot reach axcenter"),
    ):
        c.whoami()


def test_real_socket_streams_a_step_line_by_line(serve: Any) -> None:
    """``run_step`` hands each output line over as it comes, before the answer ends."""
    heard: list[str] = []
    go_on = threading.Event()

    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/x-ndjson")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for item in ({"output": "one"}, {"output": "two"}, None, {"step": {"exit_code": 0}}):
            if item is None:
                go_on.wait(5)  # the client must have shown "two" to get here
                continue
            line = json.dumps(item).encode() + b"\n"
            h.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            h.wfile.flush()
        h.wfile.write(b"0\r\n\r\n")

    def output(text: str) -> None:
        heard.append(text)
        if text == "two":
            go_on.set()

    server = serve(answer)
    with Client(server.url, TOKEN) as c:
        step = c.run_step("job_1", ["hostname"], output=output)
    assert step == {"exit_code": 0}
    assert heard == ["one", "two"]
    assert server.seen[0][:2] == ("POST", "/api/v1/jobs/job_1/steps")


def test_real_socket_through_the_environments_proxy(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = serve(lambda h: _reply(h, 200, {"name": "alice"}))
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with Client("http://axc.invalid:8080/prefix", TOKEN, retry_s=0) as c:
        assert c.whoami() == {"name": "alice"}
    _, target, headers, _ = proxy.seen[0]
    assert target == "http://axc.invalid:8080/prefix/api/v1/whoami"
    assert headers["Host"] == "axc.invalid:8080"


def test_real_socket_https_checks_the_certificate(
    serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """https:// checks the server's certificate against the system's store: a self-signed
    one is refused, until ``SSL_CERT_FILE`` names it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    server = serve(lambda h: _reply(h, 200, {"name": "alice"}), tls)
    with (
        Client(server.url, TOKEN, retry_s=0) as c,
        pytest.raises(ApiError, match=r"cannot reach axcenter at https://.*CERTIFICATE_VERIFY"),
    ):
        c.whoami()
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    with Client(server.url, TOKEN, retry_s=0) as c:
        assert c.whoami() == {"name": "alice"}
