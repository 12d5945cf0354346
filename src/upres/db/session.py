"""Engines for SQLite (WAL, busy timeout, foreign keys) and PostgreSQL (psycopg 3).

Dialect differences of the connection live here. SQLite gets explicit
transaction control: a connection carrying the ``upres_write`` execution
option opens its transaction with ``BEGIN IMMEDIATE``, so writers queue on the
database lock up front (waiting up to the busy timeout) instead of failing
half-way when a read lock cannot be upgraded.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry

from upres.errors import ConfigError

WRITE_OPTION = "upres_write"
# A connection carrying this option reads one statement and begins no transaction
# on SQLite: a single SELECT sees one consistent snapshot by itself.
SINGLE_READ_OPTION = "upres_single_read"


def normalize_url(url: str) -> str:
    """Pick psycopg 3 for bare ``postgresql://`` / ``postgres://`` URLs."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url[len(bare) :]
    return url


def create_db_engine(url: str, *, busy_timeout_ms: int = 15_000) -> Engine:
    """An engine for ``url`` with upres's connection settings applied; it connects later.

    Raises ConfigError when ``url`` is not a URL or names a database whose
    driver is not installed (the message never repeats the URL: it may hold
    a password).
    """
    url = normalize_url(url)
    try:
        if is_sqlite_url(url):
            return _sqlite_engine(url, busy_timeout_ms)
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(f"UPRES_DATABASE_URL is not a database upres can use: {exc}") from exc


def is_sqlite_url(url: str) -> bool:
    """Whether ``url`` names a SQLite database (a file on this machine)."""
    return make_url(url).get_backend_name() == "sqlite"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_engine(url: str, busy_timeout_ms: int) -> Engine:
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        # Kept open rather than opened per checkout: opening runs the pragmas and
        # the WAL check, which cost more than the indexed lookups of a read.
        # As many as the API's request threads (anyio's 40) may check out at once.
        pool_size=40,
        max_overflow=24,
        pool_timeout=60,
        pool_use_lifo=True,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        # Autocommit at the driver level: SQLAlchemy's "begin" hook below
        # decides how each transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (f"busy_timeout={busy_timeout_ms}", "foreign_keys=ON", "synchronous=NORMAL"):
            cursor.execute(f"PRAGMA {pragma}")
        _switch_to_wal(cursor, deadline=time.monotonic() + busy_timeout_ms / 1000)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options: dict[str, Any] = dict(conn.get_execution_options())
        if options.get(SINGLE_READ_OPTION):
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE_OPTION) else "BEGIN")

    return engine


def _switch_to_wal(cursor: sqlite3.Cursor, *, deadline: float) -> None:
    """Put the database file in WAL mode, waiting for other connections as long as ``deadline``.

    Switching a new file to WAL needs an exclusive lock, and SQLite answers
    ``database is locked`` at once instead of calling the busy handler when a
    second process opens the same new file at that moment. So the switch is
    retried with a short sleep until the deadline (the busy timeout). The mode
    is stored in the file: once a process has switched it, the others read
    ``wal`` back and skip the write.

    Raises sqlite3.OperationalError when the deadline passes first.
    """
    delay_s = 0.005
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not _is_lock_error(exc) or time.monotonic() + delay_s > deadline:
                raise
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.2)


def _is_lock_error(exc: sqlite3.OperationalError) -> bool:
    message = str(exc)
    return "locked" in message or "busy" in message
