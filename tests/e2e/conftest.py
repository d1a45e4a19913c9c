"""Start a real ``axc up`` process and drive it with the real ``axc`` CLI."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from axcenter.settings import Settings
from tests.conftest import service_env

AXC = str(Path(sys.executable).with_name("axc"))
STARTUP_TIMEOUT_S = 60.0
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(predicate: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll ``predicate`` until it returns something other than None; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value is not None:
            return value
        time.sleep(0.02)
    pytest.fail(f"condition not met within {timeout} s")


@dataclass
class Service:
    """One ``axc up`` process; ``start`` and ``stop`` may be called again (restarts)."""

    data_dir: Path
    env: dict[str, str]
    gpus: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[str] | None = None
    token: str = ""
    output: list[str] = field(default_factory=list)
    #: more ``axc up`` options (``--standby``)
    options: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.data_dir.parent / "axc-up.log").open("a")
        self.proc = subprocess.Popen(
            [
                AXC,
                "up",
                "--demo",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
                "--gpus",
                self.gpus,
                "--log-level",
                "warning",
                *self.options,
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self._log()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)  # the process is still binding its port
        else:
            pytest.fail(f"axc up did not answer within {STARTUP_TIMEOUT_S} s:\n{self._log()}")
        if not self.token:
            tokens = self.data_dir / "first-start-tokens"
            assert tokens.stat().st_mode & 0o777 == 0o600
            found = re.search(r"AXC_TOKEN=(axc_\S+)", tokens.read_text())
            assert found, self._log()
            assert found.group(1) not in self._log()  # never in the log
            self.token = found.group(1)

    def _log(self) -> str:
        return (self.data_dir.parent / "axc-up.log").read_text()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=60)
        self.proc = None
        return code

    def axc(
        self, *args: str, check: bool = False, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "AXC_URL": self.url, "AXC_TOKEN": self.token}
        done = subprocess.run(
            [AXC, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check:
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/api/v1",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=70,
            transport=_GetsResentOnClosedConnections(),
        )


class _GetsResentOnClosedConnections(httpx.HTTPTransport):
    """A GET whose kept-alive connection the server closed as it was sent (uvicorn ends
    idle connections after 5 s) is sent once more on a new one, as browsers and the
    project's own client (``client/transport.py``) do: a GET changes nothing."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handle_request(request)
        except httpx.RemoteProtocolError:
            if request.method != "GET":
                raise
            return super().handle_request(request)


@pytest.fixture
def service(db: tuple[str, str | None], tmp_path: Path) -> Iterator[Service]:
    url, schema = db
    env = service_env()
    env.update(
        {"AXC_DATABASE_URL": url, "AXC_KILL_GRACE_S": "2", "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    )
    if schema:
        env["AXC_DATABASE_SCHEMA"] = schema
    svc = Service(data_dir=tmp_path / "data", env=env, gpus="A100:2,H100:2")
    svc.start()
    yield svc
    if svc.proc is not None:
        svc.stop()
    stop_supervisors(svc.data_dir)


def supervisors(data_dir: Path) -> list[int]:
    """The pids of the job supervisors of the center in ``data_dir`` (by their argv)."""
    runs = str(Settings(data_dir=data_dir).engine_dir).encode()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if len(argv) > 1 and argv[1].startswith(runs):
                found.append(int(name))
    return found


def stop_supervisors(data_dir: Path) -> None:
    """Jobs outlive their service: a test stops those it left (SIGTERM to a supervisor
    stops its job as a shutdown would) and waits until they are gone."""
    for pid in supervisors(data_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not supervisors(data_dir) or None, timeout=30)
