"""Throughput per factor and network: networks differ by several times in speed.

Revision ID: 0011
Revises: 0010

``throughput.network`` joins the key. Rows written before this revision were
measured on whatever networks ran, not told apart: they keep their factor and
get network ``''`` (``upres.db.throughput.UNKNOWN_NETWORK``), the factor's
fallback until a network has a measurement of its own. Going back keeps each
factor's most recently measured row, whatever its network.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None

# A row of another network at the same factor measured later (or at the same
# time, and sorting after it): the row that downgrading drops.
_NEWER_AT_SAME_FACTOR = (
    "DELETE FROM throughput WHERE EXISTS (SELECT 1 FROM throughput AS newer"
    " WHERE newer.factor = throughput.factor AND (newer.updated_at > throughput.updated_at"
    " OR (newer.updated_at = throughput.updated_at AND newer.network > throughput.network)))"
)


def upgrade() -> None:
    op.add_column("throughput", sa.Column("network", sa.String(length=64), nullable=True))
    op.execute("UPDATE throughput SET network = ''")
    with op.batch_alter_table("throughput") as batch:
        batch.alter_column("network", existing_type=sa.String(length=64), nullable=False)
        batch.drop_constraint("pk_throughput", type_="primary")
        batch.create_primary_key("pk_throughput", ["factor", "network"])


def downgrade() -> None:
    op.execute(_NEWER_AT_SAME_FACTOR)
    with op.batch_alter_table("throughput") as batch:
        batch.drop_constraint("pk_throughput", type_="primary")
        batch.drop_column("network")
        batch.create_primary_key("pk_throughput", ["factor"])
