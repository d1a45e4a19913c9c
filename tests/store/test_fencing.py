"""One active controller per store, fenced: a controller that lost its lock while it
lived (PostgreSQL's session ended; on SQLite, a lock let go) cannot write once another
took the store and its epoch; a standby waits for the lock and gets it when it is free."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from sqlalchemy import text

from axcenter.store.db import Fenced, Store, unavailable
from tests.conftest import PG_URL, _pg_dsn


def _lose_lock(store: Store) -> None:
    """End the lock's hold as the world would: PostgreSQL terminates the lock's session
    (a restart, a network cut do the same); for SQLite, the file lock is let go."""
    if store.is_sqlite:
        store._control.close()  # the flock goes with the file
        return
    pid = store._control.execute(text("SELECT pg_backend_pid()")).scalar()
    store._control.rollback()
    with psycopg.connect(_pg_dsn(PG_URL), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_controller_that_lost_the_store_cannot_write(db: tuple[str, str | None]) -> None:
    url, schema = db
    old, new = Store(url, schema), Store(url, schema)
    fenced = threading.Event()
    old.on_fenced(fenced.set)
    try:
        old.claim_control()
        old.migrate()
        first = old.take_epoch()
        with old.write() as session:  # the controller writes
            session.execute(text("SELECT 1"))

        stop = threading.Event()
        got: list[bool] = []
        waiter = threading.Thread(target=lambda: got.append(new.claim_control(wait=stop)))
        waiter.start()
        time.sleep(0.3)
        assert not got  # a standby waits while the lock is held
        _lose_lock(old)
        waiter.join(timeout=10)
        assert got == [True]
        assert new.take_epoch() == first + 1

        with pytest.raises(Fenced), old.write():
            pass
        with pytest.raises(Fenced), old.write_connection():
            pass
        assert fenced.wait(10)  # told at once (and on PostgreSQL its keeper sees it too)
        assert unavailable(Fenced("x")) is not None  # the API answers 503, not 500
        with new.write() as session:  # the new controller writes
            session.execute(text("SELECT 1"))
    finally:
        old.dispose()
        new.dispose()


def test_a_standby_gives_up_waiting_when_told(db: tuple[str, str | None]) -> None:
    url, schema = db
    active, standby = Store(url, schema), Store(url, schema)
    try:
        active.claim_control()
        stop = threading.Event()
        stop.set()
        assert standby.claim_control(wait=stop) is False
    finally:
        active.dispose()
        standby.dispose()


def test_postgres_restart_of_the_lock_session_keeps_control_if_nobody_took_it(
    db: tuple[str, str | None],
) -> None:
    url, schema = db
    if schema is None:
        pytest.skip("PostgreSQL's lock lives in a session; SQLite's flock cannot be lost")
    store = Store(url, schema)
    try:
        store.claim_control()
        store.migrate()
        store.take_epoch()
        lost = store._control
        _lose_lock(store)
        deadline = time.monotonic() + 10
        while store._control is None or store._control is lost:  # the keeper takes it again
            assert time.monotonic() < deadline, "the lock was not taken again"
            time.sleep(0.05)
        assert not store.fenced.is_set()
        with store.write() as session:
            session.execute(text("SELECT 1"))
        other = Store(url, schema)
        try:
            with pytest.raises(Exception, match="another axcenter"):
                other.claim_control()
        finally:
            other.dispose()
    finally:
        store.dispose()
