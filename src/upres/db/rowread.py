"""Single-row SELECTs compiled once and run on the driver's own cursor: the polls' reads.

SQLAlchemy's Core execution of a statement (its cache key walked, an execution
context, events, a transaction begun and rolled back around it) costs several
times an indexed lookup on SQLite: about 70 µs against 15 µs here, most of a
poll's database time (docs/BENCHMARKS.md). A ``RowRead`` compiles its statement
once for the engine's dialect, runs the SQL on a pooled connection's DBAPI
cursor, and converts each column with the result processor SQLAlchemy itself
would use for the column's type, so its row holds the values a Core select
returns. On SQLite (autocommit at the driver) the one SELECT runs in no
transaction; on PostgreSQL the pool's rollback on return ends the one it opened.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, Select
from sqlalchemy.exc import SQLAlchemyError

from upres.db.unit import unavailable


class RowRead:
    """``statement``, a SELECT of at most one row, ready to run on ``engine``.

    Its parameters are plain values (strings, numbers): a parameter whose type
    processes bound values (a datetime stored as text) is refused up front.
    Raises ValueError for such a statement.
    """

    def __init__(self, engine: Engine, statement: Select[Any]) -> None:
        dialect = engine.dialect
        compiled = statement.compile(dialect=dialect)
        for name, bind in compiled.binds.items():
            if bind.type.dialect_impl(dialect).bind_processor(dialect) is not None:
                raise ValueError(f"parameter {name!r} needs bind processing")
        self._engine = engine
        self._sql = compiled.string
        self._order = compiled.positiontup if compiled.positional else None
        self._columns = list(statement.selected_columns)
        # Known once the driver has described a result: a processor may depend on the
        # type the database reports (PostgreSQL's numeric types).
        self._processors: list[tuple[int, Callable[[Any], Any]]] | None = None
        self._row: Any = namedtuple("SelectedRow", [column.name for column in self._columns])  # type: ignore[misc]
        self._driver_error: type[Exception] = dialect.loaded_dbapi.Error

    def __call__(self, **params: object) -> Any | None:
        """The row as a named tuple of the selected columns, or None when there is none.

        Raises ServiceUnavailable when the database fails.
        """
        fetched = self._fetch([params[name] for name in self._order] if self._order else params)
        if fetched is None:
            return None
        values, processors = fetched
        converted = list(values)
        for index, processor in processors:
            converted[index] = processor(converted[index])
        return self._row._make(converted)

    def _fetch(
        self, parameters: Sequence[object] | Mapping[str, object]
    ) -> tuple[tuple[Any, ...], list[tuple[int, Callable[[Any], Any]]]] | None:
        """The row's raw values and the processors of its columns; None for no row."""
        try:
            connection = self._engine.raw_connection()
            try:
                cursor = connection.cursor()
                cursor.execute(self._sql, parameters)
                found: tuple[Any, ...] | None = cursor.fetchone()
                processors = self._processors or self._processors_of(cursor.description)
                cursor.close()
            finally:
                connection.close()
        except (SQLAlchemyError, self._driver_error) as exc:
            raise unavailable(exc) from exc
        return None if found is None else (found, processors)

    def _processors_of(self, description: Any) -> list[tuple[int, Callable[[Any], Any]]]:
        """SQLAlchemy's result processor of each column that has one, for the
        database types the driver reported (remembered: they never change)."""
        dialect = self._engine.dialect
        self._processors = [
            (index, processor)
            for index, (column, described) in enumerate(
                zip(self._columns, description, strict=True)
            )
            if (
                processor := column.type.dialect_impl(dialect).result_processor(
                    dialect, described[1]
                )
            )
        ]
        return self._processors
