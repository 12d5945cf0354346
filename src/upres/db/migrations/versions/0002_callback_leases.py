"""Callback leases: the dispatcher holding an outbox row for an attempt, and until when.

Revision ID: 0002
Revises: 0001

Both columns are nullable and rows written before this revision get NULL
(nobody holds them), so they stay due. The due query needs no new index:
``ix_callback_outbox_due`` (done_at, next_attempt_at) narrows it to the due
rows, and the few of those under a lease are filtered out after.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("callback_outbox", sa.Column("lease_owner", sa.String(length=128), nullable=True))
    op.add_column("callback_outbox", sa.Column("lease_expires_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("callback_outbox") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")
