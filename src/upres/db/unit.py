"""Transactions: one per store method, database errors wrapped where they enter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from upres.db.session import SINGLE_READ_OPTION, WRITE_OPTION, create_db_engine
from upres.errors import DatabaseUnavailable


class Database:
    """An engine and its two kinds of transaction.

    ``write()`` takes the database write lock up front on SQLite (``BEGIN
    IMMEDIATE``); on PostgreSQL both are plain READ COMMITTED transactions and
    row locks (``FOR UPDATE``, conditional updates) do the rest.
    """

    def __init__(self, engine: Engine | str) -> None:
        self.engine = create_db_engine(engine) if isinstance(engine, str) else engine
        self._writer = self.engine.execution_options(**{WRITE_OPTION: True})
        self._single_reader = self.engine.execution_options(**{SINGLE_READ_OPTION: True})

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in a write transaction, committed on success.

        Raises ServiceUnavailable when the database fails.
        """
        with self._session(self._writer) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._session(self.engine) as session:
            yield session

    @contextmanager
    def read_one(self) -> Iterator[Session]:
        """A session for exactly one SELECT, the hot path of polling clients: on
        SQLite it spares the BEGIN and COMMIT a ``read()`` costs. Never use it
        for two statements that must agree with each other."""
        with self._session(self._single_reader) as session:
            yield session

    def ping(self) -> None:
        with self.read() as session:
            session.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _session(self, bind: Engine) -> Iterator[Session]:
        try:
            with Session(bind, expire_on_commit=False) as session, session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise unavailable(exc) from exc


def unavailable(exc: Exception) -> DatabaseUnavailable:
    """A database failure as clients see it: the service is unavailable."""
    return DatabaseUnavailable(f"database error: {exc.__class__.__name__}")
