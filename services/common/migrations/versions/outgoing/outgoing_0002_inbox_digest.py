"""inbox.digest: the SHA-256 of a received message without its signing time and
signature, to tell a redelivery (same digest) from a replay (another digest).

Revision ID: outgoing_0002
Revises: outgoing_0001
Create Date: 2026-11-25 05:53:36.624792
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "outgoing_0002"
down_revision = "outgoing_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("digest", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_column("digest")
