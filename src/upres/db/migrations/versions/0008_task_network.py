"""The look a task chose: its network and the network's denoise level.

Revision ID: 0008
Revises: 0007

Two nullable columns; rows written before this revision get NULL, which a
worker runs with its default network (UPRES_MODEL or the registry's).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("network", sa.String(length=64), nullable=True))
    op.add_column("tasks", sa.Column("denoise", sa.Integer(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLEs, as 0004's: a batch copy of ``tasks`` would have to drop
    # the table that ledger rows point at.
    op.drop_column("tasks", "denoise")
    op.drop_column("tasks", "network")
