"""Persistence: tables, engines and migrations."""

from upres.db.migrate import migrate
from upres.db.session import create_db_engine

__all__ = ["create_db_engine", "migrate"]
