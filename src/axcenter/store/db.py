"""Engine, sessions and migrations. Every difference between SQLite and PostgreSQL lives here.

SQLite allows one writer at a time. Rather than let two threads race to upgrade a read
transaction into a write one (which SQLite answers with "database is locked" at once,
without waiting), ``Store.write`` serialises write transactions in this process with a
lock. ``axc up`` is the only process that writes, so this is the whole story on SQLite.
PostgreSQL needs no such lock: conflicting writes are caught by constraints and guarded
updates in ``store.jobs``.

The store also counts, per table, the commits of this process that changed it
(``version``), so that hot read paths can cache what they read (``cache``) and drop it as
soon as one of its tables changes, with a short time-to-live for writes made elsewhere.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text, update
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    StatementError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from axcenter.store.cache import VersionedCache
from axcenter.store.orm import Controller
from axcenter.store.types import utcnow

__all__ = [
    "RETRY_AFTER_S",
    "AnotherController",
    "Fenced",
    "Store",
    "WriteBusy",
    "driver_error",
    "make_engine",
    "note_changed",
    "unavailable",
]

MIGRATIONS = Path(__file__).parent / "migrations"

log = logging.getLogger(__name__)

#: how often a PostgreSQL controller checks that its lock's session lives (seconds)
KEEP_CONTROL_S = 1.0


def make_engine(url: str, schema: str | None = None) -> Engine:
    """An engine for ``url``; for SQLite the file's directory is created and WAL is set."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # FULL: each commit's WAL frames are synced before the commit returns, so an
            # acknowledged submission or settlement survives power loss and OS crashes,
            # not only a killed process (NORMAL's promise). A system of record needs it;
            # its cost is measured by benchmarks/sqlite_durability.py (docs/reliability.md)
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    connect_args: dict[str, Any] = {}
    if schema:
        connect_args["options"] = f"-csearch_path={schema}"
    return create_engine(url, connect_args=connect_args, pool_size=10, max_overflow=10)


def driver_error(dialect: Dialect, exc: Exception, statement: str | None = None) -> StatementError:
    """A driver's error as SQLAlchemy raises it from ``execute`` (``IntegrityError`` for
    a duplicate key), for statements whose errors reach us from the driver directly."""
    return DBAPIError.instance(statement, None, exc, dialect.loaded_dbapi.Error, dialect=dialect)


#: what a 503 for an ``unavailable`` store asks clients to wait before trying again
#: (seconds): the control loop's first retries come sooner, its backoff tops out at 5 s
RETRY_AFTER_S = 2

#: errors of the disk under the data directory, not of the request
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


def unavailable(exc: BaseException) -> str | None:
    """Why the store cannot serve now, if ``exc`` says so (a sentence for the caller),
    else None (the error is the request's or ours, not the store's).

    Transient by nature, so worth a retry: the database unreachable, restarting, or out of
    connections (SQLAlchemy's ``OperationalError``, ``InterfaceError`` and pool timeout,
    for both drivers), busy past the lock timeout (SQLite), and a full or failing disk
    (SQLite's ``database or disk is full``, PostgreSQL's ``DiskFull``, ``OSError``)."""
    if isinstance(exc, Fenced):
        return "this center is no longer the active controller (another took over)"
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        return f"the center's data disk cannot be written ({os.strerror(exc.errno or 0)})"
    if not isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout):
        return None
    text_ = str(getattr(exc, "orig", None) or exc).lower()
    if "disk is full" in text_ or "no space left" in text_ or "disk full" in text_:
        return "the center's data disk is full"
    if "locked" in text_ or "busy" in text_:
        return "the database is busy"
    return "the database is unreachable"


def _lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class WriteBusy(Exception):
    """``Store.write(wait=False)`` found another write transaction running."""


class AnotherController(RuntimeError):
    """Another axcenter controls this store; the message says which and what to do."""


class Fenced(RuntimeError):
    """This process was the store's controller, and another took over: it may not write."""


class Store:
    """The database: an engine, a session factory, and the write discipline."""

    def __init__(self, url: str, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema
        self.engine = make_engine(url, schema)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._write_lock = threading.RLock()
        self._versions: dict[str, int] = {}
        self._caches: dict[str, VersionedCache[Any, Any]] = {}
        self._caches_lock = threading.Lock()
        #: what makes this process the store's controller (``claim_control``)
        self._control: Any = None
        #: this controller's fencing token (``take_epoch``); None: not a controller
        self.epoch: int | None = None
        #: set once another controller took the store from this one (then writes raise)
        self.fenced = threading.Event()
        self._fenced_listeners: list[Callable[[], None]] = []
        self._keeper: threading.Thread | None = None
        self._keeper_stop = threading.Event()
        event.listen(self._sessions, "before_flush", _note_flushed)
        event.listen(self._sessions, "do_orm_execute", _note_statement)
        event.listen(self._sessions, "after_commit", self._committed)
        event.listen(self._sessions, "after_rollback", _forget_changes)

    def trusts_other_roles(self) -> bool:
        """PostgreSQL over TCP: whether the server lets a role log in without a password
        (``trust`` in pg_hba.conf), tried with a role that does not exist: a server that
        asks for a password says "password authentication failed" whatever the role,
        one that trusts says the role does not exist. Then any local process, a job
        included, can connect as the service's role (docs/security.md)."""
        url = make_url(self.url)
        if self.is_sqlite or not url.host or url.host.startswith("/"):
            return False
        import psycopg  # noqa: PLC0415 (PostgreSQL centers only)

        probe = f"axc_probe_{os.getpid()}"
        try:
            psycopg.connect(
                host=url.host, port=url.port or 5432, dbname=url.database, user=probe,
                connect_timeout=3,
            ).close()  # fmt: skip
        except psycopg.OperationalError as exc:
            return "does not exist" in str(exc)
        return True

    def protect_files(self) -> None:
        """SQLite: the database and the files beside it readable by the service alone
        (0600), whatever the umask made them (docs/security.md)."""
        database = make_url(self.url).database if self.is_sqlite else None
        if not database or database == ":memory:":
            return
        for suffix in ("", "-wal", "-shm", ".controller"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{database}{suffix}", 0o600)

    def claim_control(self, wait: threading.Event | None = None, poll_s: float = 0.5) -> bool:
        """Become the one controller of this store, for this object's life, or raise
        ``AnotherController``: two control loops on one store would each settle the other's
        runs and adopt each other's jobs. SQLite: an exclusive ``flock`` on a file beside
        the database; PostgreSQL: a session advisory lock, named by the schema, held on a
        connection of its own. Both go with the process, however it ends.

        With ``wait`` (a standby), try every ``poll_s`` until the lock is ours (True) or
        ``wait`` is set (False)."""
        while True:
            try:
                self._claim()
                return True
            except AnotherController:
                if wait is None:
                    raise
            except Exception:  # the database is away: a standby keeps waiting
                if wait is None:
                    raise
                log.warning("standby: cannot reach the store; trying again", exc_info=True)
            if wait.wait(poll_s):
                return False

    def _claim(self) -> None:
        if self._control is not None:
            return
        me = f"pid {os.getpid()} on {socket.gethostname()}"
        if self.is_sqlite:
            database = make_url(self.url).database
            path = Path(f"{database}.controller") if database else None
            if path is None or database == ":memory:":
                self._control = "memory"
                return
            handle = path.open("a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                raise AnotherController(
                    f"another axcenter ({holder}) controls the database {database}: stop it "
                    "first, or give this one its own data directory"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(me)
            handle.flush()
            self._control = handle
            return
        conn = self.engine.connect()
        key = _lock_key(f"axcenter-controller:{self.schema or 'public'}")
        if not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
            backend = conn.execute(
                text(
                    "SELECT a.client_addr, a.pid FROM pg_locks l JOIN pg_stat_activity a"
                    " ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.objid = :o"
                ),
                {"o": key & 0xFFFFFFFF},
            ).first()
            conn.close()
            who = f"PostgreSQL backend {backend.pid}" if backend else "another process"
            raise AnotherController(
                f"another axcenter ({who}) controls schema {self.schema or 'public'} of "
                f"{make_url(self.url).render_as_string(hide_password=True)}: stop it first, "
                "or give this one its own schema (AXC_DATABASE_SCHEMA)"
            )
        conn.commit()
        conn.detach()  # never back to the pool: closing it ends the session and the lock
        self._control = conn

    def take_epoch(self) -> int:
        """After ``claim_control`` and ``migrate``: take the next fencing epoch. From now
        on each write transaction first checks it (``fence``), and on PostgreSQL a thread
        watches the lock's session: lost and taken by another, this store is fenced."""
        with self.engine.begin() as conn:
            epoch = conn.execute(
                update(Controller)
                .where(Controller.id == 1)
                .values(
                    epoch=Controller.epoch + 1,
                    holder=f"pid {os.getpid()} on {socket.gethostname()}",
                    claimed_at=utcnow(),
                )
                .returning(Controller.epoch)
            ).scalar_one()
        self.epoch = int(epoch)
        if not self.is_sqlite and self._keeper is None:  # a flock cannot be lost
            self._keeper = threading.Thread(
                target=self._keep_control, name="axc-control-lock", daemon=True
            )
            self._keeper.start()
        return self.epoch

    def on_fenced(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (once, from some thread) when another controller took over."""
        self._fenced_listeners.append(listener)

    def fence(self, target: Session | Connection) -> None:
        """Raise ``Fenced`` unless the store's epoch is still this controller's. In a
        write transaction, before its writes: on PostgreSQL the row is read ``FOR SHARE``,
        so a takeover's update waits for this transaction, and a transaction that began
        after it sees the new epoch; on SQLite one writer at a time orders the two."""
        if self.epoch is None:
            return
        if self.fenced.is_set():
            raise Fenced("another controller took over this store")
        found = target.execute(_EPOCH if self.is_sqlite else _EPOCH_FOR_SHARE).scalar()
        if found != self.epoch:
            self._fence_off(f"the store's epoch is {found}, this controller's {self.epoch}")
            raise Fenced("another controller took over this store")

    def _fence_off(self, why: str) -> None:
        if self.fenced.is_set():
            return
        log.critical("fenced: %s; this process stops controlling the store", why)
        self.fenced.set()
        for listener in self._fenced_listeners:
            try:
                listener()
            except Exception:
                log.exception("fenced listener failed")

    def _keep_control(self) -> None:
        """PostgreSQL: check the lock's session every ``KEEP_CONTROL_S``. Lost (the server
        restarted, the connection broke), take the lock again if nobody else did and the
        epoch is still ours; if another holds it, this controller is fenced."""
        while not self._keeper_stop.wait(KEEP_CONTROL_S):
            conn = self._control
            try:
                if conn is None:
                    raise ConnectionError("no lock session")
                conn.execute(text("SELECT 1"))
                conn.rollback()
                continue
            except Exception:
                log.warning("the controller lock's session is lost; taking the lock again")
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.invalidate()
                    conn.close()
            self._control = None
            try:
                self._claim()
                with self.engine.connect() as check:
                    found = check.execute(_EPOCH).scalar()
            except AnotherController:
                self._fence_off("another process holds the controller lock")
                return
            except Exception:
                log.warning("cannot take the controller lock again yet", exc_info=True)
                continue
            if found != self.epoch:
                self._fence_off(f"the store's epoch is {found}, this controller's {self.epoch}")
                return

    def release_control(self) -> None:
        self._keeper_stop.set()
        if self._keeper is not None and self._keeper is not threading.current_thread():
            self._keeper.join()
        self._keeper = None
        control, self._control = self._control, None
        if isinstance(control, Connection):
            # let go of it before the session ends: a closed socket's backend may take a
            # moment to exit, holding the lock meanwhile against whoever claims next
            with contextlib.suppress(DBAPIError, StatementError):
                control.execute(text("SELECT pg_advisory_unlock_all()"))
        if control is not None and not isinstance(control, str):
            control.close()  # the lock's file or connection: the lock goes with it

    def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent; run at every start)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            if self.schema:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    @contextmanager
    def write(self, *, wait: bool = True) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error.

        ``wait=False``: raise ``WriteBusy`` at once, rather than wait, if another thread
        of this process is writing (SQLite only; PostgreSQL writers never wait here).
        """
        with self._writer(wait), self._sessions() as session, session.begin():
            self.fence(session)
            yield session

    @contextmanager
    def write_connection(self, *, wait: bool = True) -> Iterator[Connection]:
        """``write`` without the ORM: a Core connection whose transaction commits on
        success. For the submission path (``store.group_commit``), where a session's own
        bookkeeping cost as much as the inserts. Mark what it writes with ``note_changed``.
        """
        with self._writer(wait):
            changed: set[str] | None = None
            with self.engine.begin() as conn:
                self.fence(conn)
                try:
                    yield conn
                finally:  # the info belongs to the pooled DBAPI connection: never leave it
                    changed = conn.info.pop(_CHANGED, None)
            if changed:
                self.count_changes(changed)

    @contextmanager
    def _writer(self, wait: bool) -> Iterator[None]:
        """The one write transaction of this process at a time (SQLite's discipline)."""
        if self.is_sqlite and not self._write_lock.acquire(blocking=wait):
            raise WriteBusy("another write transaction is running")
        try:
            yield
        finally:
            if self.is_sqlite:
                self._write_lock.release()

    def dispose(self) -> None:
        self.release_control()
        self.engine.dispose()

    async def connect_async(self) -> Any:
        """A driver connection for the event loop, in autocommit mode, set up as the
        engine's (PostgreSQL only: psycopg's ``AsyncConnection``; ``store.async_inserts``)."""
        if self.is_sqlite:
            raise ValueError("asynchronous connections are for PostgreSQL")
        import psycopg  # noqa: PLC0415 (PostgreSQL only)

        args, params = self.engine.dialect.create_connect_args(self.engine.url)
        if self.schema:
            params["options"] = f"-csearch_path={self.schema}"
        return await psycopg.AsyncConnection.connect(*args, autocommit=True, **params)

    # -- change versions and caches ---------------------------------------------------

    def version(self, tables: Iterable[str]) -> int:
        """Grows whenever a commit of this process changes one of ``tables``."""
        versions = self._versions
        return sum(versions.get(t, 0) for t in tables)

    def cache(self, name: str, tables: tuple[str, ...], ttl_s: float) -> VersionedCache[Any, Any]:
        """The cache called ``name`` (made on first use) of what is read from ``tables``."""
        found = self._caches.get(name)
        if found is None:
            with self._caches_lock:
                found = self._caches.setdefault(
                    name, VersionedCache(lambda: self.version(tables), ttl_s)
                )
        return found

    def _committed(self, session: Session) -> None:
        changed: set[str] | None = session.info.pop(_CHANGED, None)
        if changed:
            self.count_changes(changed)

    def count_changes(self, tables: Iterable[str]) -> None:
        """Count a commit that changed ``tables`` (for writes made outside ``write``)."""
        with self._caches_lock:
            for table in tables:
                self._versions[table] = self._versions.get(table, 0) + 1


_CHANGED = "axc_changed_tables"
_EPOCH = text("SELECT epoch FROM controller WHERE id = 1")
_EPOCH_FOR_SHARE = text("SELECT epoch FROM controller WHERE id = 1 FOR SHARE")


def note_changed(target: Session | Connection, *tables: str) -> None:
    """Count ``tables`` as changed when ``target``'s transaction commits: for writes that
    bypass the ORM (a session notes its own flushes and statements)."""
    target.info.setdefault(_CHANGED, set()).update(tables)


def _note_flushed(session: Session, _context: Any, _instances: Any) -> None:
    """Note the tables of the objects this flush writes (unit of work)."""
    if session.new or session.dirty or session.deleted:
        changed = session.info.setdefault(_CHANGED, set())
        for obj in (*session.new, *session.dirty, *session.deleted):
            changed.add(obj.__table__.name)


def _note_statement(state: ORMExecuteState) -> None:
    """Note the table of an INSERT, UPDATE or DELETE run through the session."""
    if state.is_insert or state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        name = getattr(table, "name", None)
        if name:
            state.session.info.setdefault(_CHANGED, set()).add(name)


def _forget_changes(session: Session) -> None:
    session.info.pop(_CHANGED, None)
