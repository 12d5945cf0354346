"""Schema migrations, applied programmatically at start-up (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from upres.db.session import WRITE_OPTION, create_db_engine
from upres.errors import ServiceUnavailable

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_KEY = 0x75707265  # "upre": the advisory lock serialising migrations on PostgreSQL


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migration scripts."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(target: str | Engine) -> None:
    """Bring the database at ``target`` (URL or engine) to the newest schema.

    Raises ServiceUnavailable when the database cannot be reached or migrated.
    """
    engine = create_db_engine(target) if isinstance(target, str) else target
    config = alembic_config()
    try:
        # Several processes (API, workers) may start at once: the first to take
        # the lock migrates, the others then find the schema at head.
        with engine.execution_options(**{WRITE_OPTION: True}).begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise ServiceUnavailable(f"database migration failed: {exc}") from exc
    finally:
        if isinstance(target, str):
            engine.dispose()
