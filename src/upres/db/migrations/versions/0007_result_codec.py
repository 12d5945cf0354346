"""Result codec: the video codec a completed task's result was written in.

Revision ID: 0007
Revises: 0006

Whether the page gets a browser-playable copy of a result follows the codec
the result has (an unset UPRES_ENCODE_CODEC writes h264, or h265 for an HDR
source), so the task keeps it. One nullable column; rows completed before
this revision get NULL, which reads as unknown: their results get no link to
a playable copy.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("result_codec", sa.String(length=8), nullable=True))


def downgrade() -> None:
    # A plain ALTER TABLE, as 0004: a batch copy of ``tasks`` would have to drop
    # the table that ledger rows point at.
    op.drop_column("tasks", "result_codec")
