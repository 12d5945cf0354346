"""The frame rate a task chose, and its slow motion.

Revision ID: 0009
Revises: 0008

Two nullable columns; NULL (rows written before this revision, and tasks that
chose neither) keeps the source's timing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("frame_rate", sa.Double(), nullable=True))
    op.add_column("tasks", sa.Column("slowmo", sa.Integer(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLEs, as 0008's: a batch copy of ``tasks`` would have to drop
    # the table that ledger rows point at.
    op.drop_column("tasks", "slowmo")
    op.drop_column("tasks", "frame_rate")
