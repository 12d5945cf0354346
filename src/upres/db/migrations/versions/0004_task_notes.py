"""Task notes: what the engine decided for the user about a completed task's output.

Revision ID: 0004
Revises: 0003

One nullable text column (notes separated by newlines); rows written before
this revision get NULL, which reads as no notes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("notes", sa.Text(), nullable=True))


def downgrade() -> None:
    # A plain ALTER TABLE (SQLite 3.35+ drops a column in place): a batch copy of
    # ``tasks`` would have to drop the table that ledger rows point at.
    op.drop_column("tasks", "notes")
