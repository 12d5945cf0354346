"""Callback message ids, unique across databases; a retry's delay on pending tasks.

Revision ID: 0003
Revises: 0002

``callback_outbox.message_id`` is each row's ``webhook-id``. Rows written
before this revision keep the id they may already have been sent with
(``msg_<row id>``), so a receiver still dedupes their retries; new rows get
``msg_<random uuid>``. A unique index holds the ids apart.

``tasks.not_before`` holds a pending task back after a transient failure;
NULL (every older row) means claimable at once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("not_before", sa.DateTime(), nullable=True))
    op.add_column("callback_outbox", sa.Column("message_id", sa.String(length=64), nullable=True))
    op.execute("UPDATE callback_outbox SET message_id = 'msg_' || CAST(id AS VARCHAR(20))")
    with op.batch_alter_table("callback_outbox") as batch:
        batch.alter_column("message_id", existing_type=sa.String(length=64), nullable=False)
    op.create_index("ix_callback_outbox_message_id", "callback_outbox", ["message_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_callback_outbox_message_id", table_name="callback_outbox")
    with op.batch_alter_table("callback_outbox") as batch:
        batch.drop_column("message_id")
    # Not a batch (a copy of the table): ledger rows point at tasks.
    op.drop_column("tasks", "not_before")
