"""Real faults for tests: a TCP proxy to PostgreSQL that can be cut, a small tmpfs that
fills up, a PostgreSQL server of the test's own that can be restarted and stopped. Each
acts on the real network, the real kernel or the real server, not on our code."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PrivatePostgres", "TcpProxy", "fill", "private_postgres", "tmpfs"]


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream``. ``cut()`` drops every connection and
    refuses new ones (as a database that went away); ``restore()`` lets them through."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = False
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, url: str) -> str:
        """``url`` (a PostgreSQL URL on the upstream's port) through this proxy."""
        return url.replace(f":{self.upstream[1]}/", f":{self.port}/")

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            sockets, self._open = self._open, set()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._cut:
                    client.close()
                    continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``8m``) mounted at ``path`` while the block runs (needs root)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> Path:
    """Fill the file system of directory ``path`` to the last byte; returns the filler
    (delete it to give the space back)."""
    filler = path / "filler"
    chunk = b"\0" * (1024 * 1024)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (len(chunk), 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, chunk[:size])
    finally:
        os.close(fd)
    return filler


class PrivatePostgres:
    """A PostgreSQL server of the test's own (Debian's binaries, a fresh cluster in a
    temporary directory, trust auth on 127.0.0.1:``port``), so a test may restart or
    stop it as an operator or a crash would without touching the shared server."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.data = root / "data"
        self._bin = _postgres_bin()

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/test"

    def url(self) -> str:
        """The SQLAlchemy URL of its ``test`` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/test"

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.root, "postgres", "postgres")
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        self._pg("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "test")

    def start(self) -> None:
        self._pg("pg_ctl", *self._server_options(), "-w", "start")

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every session ended, the server back at once."""
        self._pg("pg_ctl", *self._server_options(), "-m", "fast", "-w", "restart")

    def _server_options(self) -> list[str]:
        """Its data, port and socket directory, and its log (so that no output of the
        server is left on a pipe of ours)."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        return ["-D", str(self.data), "-o", options, "-l", str(self.root / "server.log")]

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def _pg(self, program: str, *args: str) -> None:
        """Run a server program as the ``postgres`` account (they refuse root)."""
        command = [str(self._bin / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120, cwd=self.root)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private server in a directory of its own (under the temporary
    directory, where the ``postgres`` account can reach it), removed afterwards."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    server = PrivatePostgres(Path(tempfile.mkdtemp(prefix="axc-test-pg-")), port)
    try:
        server.init()
        yield server
    finally:
        server.close()


def _postgres_bin() -> Path:
    """Debian's server binaries (``/usr/lib/postgresql/VERSION/bin``), newest first."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    if not versions:
        raise RuntimeError("PostgreSQL's server binaries are not installed")
    return versions[0].parent
