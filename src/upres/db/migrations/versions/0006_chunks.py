"""Chunks: the frame ranges of a long task, each leased and run on its own.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "chunks",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("first_frame", sa.Integer(), nullable=False),
        sa.Column("frame_count", sa.Integer(), nullable=False),
        sa.Column("start_s", sa.Double(), nullable=False),
        sa.Column("end_s", sa.Double(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
        sa.Column("not_before", sa.DateTime(), nullable=True),
        sa.Column("frames_done", sa.Integer(), nullable=False),
        sa.Column("fps", sa.Double(), nullable=True),
        sa.Column("part_key", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_chunks_task_id_tasks")),
        sa.PrimaryKeyConstraint("task_id", "chunk_index", name=op.f("pk_chunks")),
    )
    op.create_index("ix_chunks_status_not_before", "chunks", ["status", "not_before"])
    op.create_index("ix_chunks_status_lease_expires_at", "chunks", ["status", "lease_expires_at"])


def downgrade() -> None:
    op.drop_index("ix_chunks_status_lease_expires_at", table_name="chunks")
    op.drop_index("ix_chunks_status_not_before", table_name="chunks")
    op.drop_table("chunks")
