"""The output megapixels of one frame of a running task, so that the workers'
speeds can be told in megapixels per second as well as frames.

Revision ID: 0010
Revises: 0009

One nullable column, written by the heartbeats; rows written before this
revision (or before a heartbeat reported it) get NULL: no megapixel speed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("frame_mpx", sa.Double(), nullable=True))


def downgrade() -> None:
    # A plain ALTER TABLE, as 0004's and 0008's.
    op.drop_column("tasks", "frame_mpx")
