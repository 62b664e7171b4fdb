"""inbox.digest: the SHA-256 of a received message without its signing time and
signature, to tell a redelivery (same digest) from a replay (another digest).

Revision ID: incoming_0002
Revises: incoming_0001
Create Date: 2026-11-25 05:53:35.307199
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "incoming_0002"
down_revision = "incoming_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("digest", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_column("digest")
