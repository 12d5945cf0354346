"""Alembic environment: runs online against the connection ``upres.db.migrate`` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from upres.db.tables import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through upres.db.migrate, which passes a connection")
    _run(connection)


_main()
