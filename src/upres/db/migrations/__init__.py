"""Alembic migrations of the upres schema, applied by ``upres.db.migrate``."""
